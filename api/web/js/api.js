// Talking to the Crop AI API: tokens from POST /auth/token kept for this browser tab,
// one refresh when the access token has expired, and every failure turned into words.

const TOKENS = "cropai.tokens";

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

export function loggedIn() {
  return sessionStorage.getItem(TOKENS) !== null;
}

export function logOut() {
  sessionStorage.removeItem(TOKENS);
}

export async function logIn(email, password) {
  const form = new URLSearchParams({ username: email, password });
  const response = await send("/auth/token", { method: "POST", body: form }, false);
  sessionStorage.setItem(TOKENS, JSON.stringify(await response.json()));
}

/** JSON from the API; `json` is sent as the request body. Throws ApiError. */
export async function call(path, { method = "GET", json } = {}) {
  const init = { method };
  if (json !== undefined) {
    init.body = JSON.stringify(json);
    init.headers = { "Content-Type": "application/json" };
  }
  const response = await send(path, init, true);
  return response.status === 204 ? null : response.json();
}

/** The response body as a Blob (map tiles, downloads). Throws ApiError. */
export async function blob(path) {
  return (await send(path, { method: "GET" }, true)).blob();
}

async function send(path, init, authorised, retried = false) {
  const headers = new Headers(init.headers || {});
  if (authorised) {
    const tokens = JSON.parse(sessionStorage.getItem(TOKENS) || "null");
    if (tokens === null) throw new ApiError("you are not logged in", 401);
    headers.set("Authorization", `Bearer ${tokens.access_token}`);
  }
  let response;
  try {
    response = await fetch(path, { ...init, headers });
  } catch {
    throw new ApiError("cannot reach the Crop AI API: check your connection, or ask the operator whether it is running", 0);
  }
  if (response.status === 401 && authorised && !retried && (await refreshed())) {
    return send(path, init, authorised, true);
  }
  if (!response.ok) {
    if (response.status === 401 && authorised) logOut();
    throw new ApiError(await describe(response), response.status);
  }
  return response;
}

// A refresh token works once: requests that find the access token expired together share
// one refresh instead of each spending the same token (which the API takes for a theft).
let refreshing = null;

function refreshed() {
  refreshing ??= refreshOnce().finally(() => {
    refreshing = null;
  });
  return refreshing;
}

async function refreshOnce() {
  const tokens = JSON.parse(sessionStorage.getItem(TOKENS) || "null");
  if (tokens === null) return false;
  const response = await fetch("/auth/refresh", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ refresh_token: tokens.refresh_token }),
  }).catch(() => null);
  if (response === null || !response.ok) return false;
  sessionStorage.setItem(TOKENS, JSON.stringify(await response.json()));
  return true;
}

/** The API's own explanation: `detail` is a sentence, or a list of invalid fields (422). */
async function describe(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON: a proxy's error page, say
  }
  const detail = body && body.detail;
  if (Array.isArray(detail)) {
    return detail
      .map((problem) => {
        const field = (problem.loc || []).filter((part) => part !== "body").join(".");
        return field ? `${field}: ${problem.msg}` : problem.msg;
      })
      .join("; ");
  }
  if (typeof detail === "string") return detail;
  return `the API answered ${response.status} ${response.statusText || ""}`.trim();
}
