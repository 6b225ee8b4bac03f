// The viewer's pages, one per address: #/login, #/analyses, #/analyses/<id>, #/new.
// Each page is a <template> of index.html filled from the API; a page that polls
// stops when the user leaves it.
import * as api from "./api.js";
import { showAssessment } from "./assessment.js";
import {
  AoiDrawer, aoiLayer, classLabel, CONFIDENCE_RAMP, createMap, cropLayer, FIELD_FILL_OPACITY, fieldsLayer,
  layerSwitcher,
} from "./map.js"; // prettier-ignore

const POLL_MS = 2000;
const FINAL = new Set(["completed", "failed", "cancelled"]);
const view = document.getElementById("view");
const banner = document.getElementById("error");

let config = null; // /app/config.json: the base map
let me = null; // /auth/me: who is logged in, with their role
let leave = () => {}; // undoes the current page: stops polling, removes its map

function showError(message) {
  banner.textContent = message;
  banner.hidden = false;
}

function hideError() {
  banner.hidden = true;
  banner.textContent = "";
}

/** Shows an API error in words; an ended session goes back to the login. */
function report(error) {
  if (!(error instanceof api.ApiError)) throw error;
  if (error.status === 401) {
    me = null;
    api.logOut();
    location.hash = "#/login";
  }
  showError(error.message);
}

/** Runs a page's work, reporting an API error instead of throwing it. */
async function guarded(work) {
  try {
    return await work();
  } catch (error) {
    report(error);
    return undefined;
  }
}

function mount(templateId) {
  view.replaceChildren(document.getElementById(templateId).content.cloneNode(true));
  view.dataset.page = templateId;
  return view;
}

/** Calls `refresh` every POLL_MS until it returns false, the page is left, or the API
 * refuses for good (a 4xx); an unreachable or failing API is tried again. */
function poll(refresh) {
  let timer = null;
  let stopped = false;
  const tick = async () => {
    let again;
    try {
      again = await refresh();
    } catch (error) {
      report(error);
      again = error.status === 0 || error.status === 429 || error.status >= 500;
    }
    if (again && !stopped && api.loggedIn()) timer = setTimeout(tick, POLL_MS);
  };
  tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

async function route() {
  leave();
  leave = () => {};
  const hash = location.hash || "#/analyses";
  if (!api.loggedIn()) {
    me = null;
    document.getElementById("session").hidden = true;
    if (hash !== "#/login") location.hash = "#/login";
    else showLogin();
    return;
  }
  hideError();
  if (me === null) {
    me = await guarded(() => api.call("/auth/me"));
    if (me === undefined) {
      me = null;
      return;
    }
  }
  document.getElementById("who").textContent = `${me.email} (${me.role})`;
  document.getElementById("session").hidden = false;
  const analysis = hash.match(/^#\/analyses\/([0-9a-f-]{36})$/);
  if (hash === "#/analyses") showAnalyses();
  else if (analysis) showAnalysis(analysis[1]);
  else if (hash === "#/new") showNew();
  else location.hash = "#/analyses";
}

// --- log in -------------------------------------------------------------------------------

function showLogin() {
  const page = mount("login-view");
  const form = page.querySelector("form");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const fields = new FormData(form);
    form.querySelector("button").disabled = true;
    try {
      await api.logIn(fields.get("username"), fields.get("password"));
      hideError();
      location.hash = "#/analyses";
    } catch (error) {
      showError(error.message);
    } finally {
      form.querySelector("button").disabled = false;
    }
  });
}

function logOut() {
  api.logOut();
  me = null;
  location.hash = "#/login";
}

// --- my analyses -------------------------------------------------------------------------

function canSubmit() {
  return me.role !== "viewer";
}

function showAnalyses() {
  const page = mount("analyses-view");
  page.querySelector("#new-analysis").hidden = !canSubmit();
  page.querySelector("#viewer-note").hidden = canSubmit();
  const rows = page.querySelector("#analyses tbody");
  leave = poll(async () => {
    const list = await api.call("/analyses?limit=100");
    rows.replaceChildren(...list.items.map(analysisRow));
    page.querySelector("#no-analyses").hidden = list.items.length > 0;
    return list.items.some((analysis) => !FINAL.has(analysis.status));
  });
}

function cell(content) {
  const td = document.createElement("td");
  td.append(content);
  return td;
}

function statusBadge(status) {
  const badge = document.createElement("span");
  badge.className = `status status-${status}`;
  badge.textContent = status;
  return badge;
}

function title(analysis) {
  return analysis.name || `analysis ${analysis.id.slice(0, 8)}`;
}

function hectares(value) {
  return `${value.toLocaleString("en", { maximumFractionDigits: 1 })} ha`;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

function analysisRow(analysis) {
  const row = document.createElement("tr");
  row.dataset.id = analysis.id;
  const link = document.createElement("a");
  link.href = `#/analyses/${analysis.id}`;
  link.textContent = title(analysis);
  const progress = analysis.batches_total ? `${analysis.batches_done} / ${analysis.batches_total} batches` : "";
  row.append(
    cell(link), cell(statusBadge(analysis.status)), cell(progress), cell(hectares(analysis.aoi_area_ha)),
    cell(`${analysis.start_date} – ${analysis.end_date}`), cell(analysis.model_version || analysis.model),
    cell(when(analysis.created_at)),
  ); // prettier-ignore
  return row;
}

// --- one analysis ------------------------------------------------------------------------

function showAnalysis(id) {
  const page = mount("analysis-view");
  const map = createMap(page.querySelector("#map"), config);
  let outlined = false;
  const stopPolling = poll(async () => {
    const analysis = await api.call(`/analyses/${id}`);
    describeAnalysis(page, analysis);
    if (!outlined) {
      const outline = aoiLayer(analysis.aoi).addTo(map);
      map.fitBounds(outline.getBounds(), { padding: [20, 20] });
      outlined = true;
    }
    if (analysis.status === "completed") await showResults(page, map, analysis);
    return !FINAL.has(analysis.status);
  });
  page.querySelector("#cancel").addEventListener("click", () =>
    guarded(async () => describeAnalysis(page, await api.call(`/analyses/${id}`, { method: "DELETE" }))),
  );
  leave = () => {
    stopPolling();
    map.remove();
  };
}

function describeAnalysis(page, analysis) {
  page.querySelector("#title").textContent = title(analysis);
  page.querySelector("#status").replaceChildren(statusBadge(analysis.status));
  const bar = page.querySelector("#progress");
  bar.hidden = FINAL.has(analysis.status) || !analysis.batches_total;
  bar.max = analysis.batches_total || 1;
  bar.value = analysis.batches_done;
  page.querySelector("#progress-text").textContent =
    analysis.batches_total && !FINAL.has(analysis.status)
      ? `${analysis.batches_done} of ${analysis.batches_total} batches done`
      : "";
  const reason = page.querySelector("#reason");
  reason.textContent = analysis.status_reason || "";
  reason.hidden = !analysis.status_reason;
  const warnings = page.querySelector("#warnings");
  warnings.replaceChildren(
    ...(analysis.warnings || []).map((text) => {
      const item = document.createElement("li");
      item.textContent = text;
      return item;
    }),
  );
  warnings.hidden = !(analysis.warnings || []).length;
  page.querySelector("#cancel").hidden = FINAL.has(analysis.status) || !canSubmit();
  const facts = [
    ["Model", analysis.model_version || analysis.model],
    ["Window", `${analysis.start_date} – ${analysis.end_date}`],
    ["AOI", hectares(analysis.aoi_area_ha)],
    ["Submitted", when(analysis.created_at)],
    ["Finished", when(analysis.finished_at)],
  ];
  page.querySelector("#facts").replaceChildren(
    ...facts.filter(([, value]) => value).flatMap(([term, value]) => {
      const dt = document.createElement("dt");
      dt.textContent = term;
      const dd = document.createElement("dd");
      dd.textContent = value;
      return [dt, dd];
    }),
  );
}

async function showResults(page, map, analysis) {
  const legend = page.querySelector("#legend");
  legend.replaceChildren(...analysis.classes.map(legendEntry));
  page.querySelector("#results").hidden = false;
  const crops = cropLayer(analysis.id).addTo(map);
  crops.once("tileerror", (event) => showError(`crop map tiles: ${event.error.message}`));
  const fields = fieldsLayer(await api.call(analysis.links.fields)).addTo(map);
  chooseLayer(page, crops, fields);
  layerSwitcher({ "Crop map": crops, "Field parcels": fields }).addTo(map);
  page.querySelector("#field-count").textContent = `${fields.getLayers().length} field parcels: click one for its crop.`;
  for (const [selector, path, name] of [
    ["#download-map", analysis.links.map, `cropmap-${analysis.id}.tif`],
    ["#download-quicklook", analysis.links.quicklook, `quicklook-${analysis.id}.png`],
    ["#download-fields", analysis.links.fields, `fields-${analysis.id}.geojson`],
  ]) {
    page.querySelector(selector).addEventListener("click", () => guarded(() => download(path, name)));
  }
  page.dataset.results = "shown";
  await showAssessment(page.querySelector("#assessment"), analysis.id, canSubmit(), report);
}

/** The "Crop classes / Confidence" choice: which tiles the crop layer shows, and the ramp's legend.
 * Over confidence the field parcels are outlines only, so their crop colours hide none of it. */
function chooseLayer(page, crops, fields) {
  const legend = page.querySelector("#confidence-legend");
  legend.querySelector("ul").replaceChildren(...CONFIDENCE_RAMP.map(rampEntry));
  for (const choice of page.querySelectorAll("#layer-choice input[name=layer]")) {
    choice.addEventListener("change", () => {
      const confidence = choice.value === "confidence";
      crops.showLayer(choice.value);
      legend.hidden = !confidence;
      fields.setStyle({ fillOpacity: confidence ? 0 : FIELD_FILL_OPACITY });
    });
  }
}

function rampEntry(step) {
  const item = document.createElement("li");
  item.dataset.step = `${step.lower}-${step.upper}`;
  const swatch = document.createElement("span");
  swatch.className = "swatch";
  swatch.style.background = step.colour;
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = `${step.lower}–${step.upper} %`;
  item.append(swatch, name);
  return item;
}

// A model's card in one line: held-out accuracy, season, classes, and whether it saw real scenes.
function modelLabel(model) {
  const card = model.card;
  const accuracy = model.metrics.overall_accuracy;
  const facts = [
    typeof accuracy === "number" ? `held-out accuracy ${Math.round(accuracy * 100)} %` : null,
    card.season_described,
    `${card.classes.length} classes`,
    card.synthetic_only ? "synthetic scenes only" : null,
  ];
  return `${model.ref} (${facts.filter(Boolean).join("; ")})`;
}

function legendEntry(stat) {
  const item = document.createElement("li");
  item.dataset.class = stat.class_name;
  const swatch = document.createElement("span");
  swatch.className = "swatch";
  swatch.style.background = stat.colour;
  const name = document.createElement("span");
  name.className = "name";
  name.textContent = classLabel(stat.class_name);
  const area = document.createElement("span");
  area.className = "area";
  area.textContent = hectares(stat.area_ha);
  item.append(swatch, name, area);
  if (typeof stat.low_evidence_ha === "number" && stat.low_evidence_ha > 0) {
    const low = document.createElement("span");
    low.className = "low-evidence";
    low.textContent = `of which low evidence: ${hectares(stat.low_evidence_ha)}`;
    item.append(low);
  }
  return item;
}

async function download(path, filename) {
  const url = URL.createObjectURL(await api.blob(path));
  const link = document.createElement("a");
  link.href = url;
  link.download = filename;
  link.click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

// --- a new analysis ---------------------------------------------------------------------

function lastSeason() {
  const today = new Date();
  const year = today.getMonth() >= 9 ? today.getFullYear() : today.getFullYear() - 1; // October on: this year's
  return [`${year}-04-01`, `${year}-09-30`];
}

async function readGeoJson(file) {
  try {
    return JSON.parse(await file.text());
  } catch (error) {
    throw new api.ApiError(`${file.name} is not GeoJSON: ${error.message}`, 0);
  }
}

/** The AOI in a GeoJSON document: a (Multi)Polygon, or a Feature / FeatureCollection of them. */
function aoiOf(document, filename) {
  const polygons = [];
  const collect = (item) => {
    if (item && item.type === "FeatureCollection") (item.features || []).forEach(collect);
    else if (item && item.type === "Feature") collect(item.geometry);
    else if (item && item.type === "Polygon") polygons.push(item.coordinates);
    else if (item && item.type === "MultiPolygon") polygons.push(...item.coordinates);
    else throw new api.ApiError(`${filename} holds ${item && item.type ? `a ${item.type}` : "no geometry"}: an AOI is a Polygon or MultiPolygon, or a Feature or FeatureCollection of them`, 0); // prettier-ignore
  };
  collect(document);
  if (polygons.length === 0) throw new api.ApiError(`${filename} holds no polygon`, 0);
  return polygons.length === 1
    ? { type: "Polygon", coordinates: polygons[0] }
    : { type: "MultiPolygon", coordinates: polygons };
}

/** Roughly the area in km² of a (Multi)Polygon in degrees, for the form's summary only. */
function approximateKm2(geometry) {
  const polygons = geometry.type === "Polygon" ? [geometry.coordinates] : geometry.coordinates;
  let total = 0;
  for (const rings of polygons) {
    rings.forEach((ring, index) => {
      const lat0 = (ring.reduce((sum, [, lat]) => sum + lat, 0) / ring.length) * (Math.PI / 180);
      let twice = 0;
      for (let i = 0; i < ring.length - 1; i += 1) {
        const [x1, y1] = ring[i];
        const [x2, y2] = ring[i + 1];
        twice += x1 * Math.cos(lat0) * 111.32 * (y2 * 110.57) - x2 * Math.cos(lat0) * 111.32 * (y1 * 110.57);
      }
      total += (index === 0 ? 1 : -1) * Math.abs(twice / 2);
    });
  }
  return total;
}

function corners(geometry) {
  const polygons = geometry.type === "Polygon" ? [geometry.coordinates] : geometry.coordinates;
  return polygons.reduce((sum, rings) => sum + rings[0].length - 1, 0);
}

async function showNew() {
  const page = mount("new-view");
  const form = page.querySelector("form");
  const map = createMap(page.querySelector("#map"), config);
  leave = () => map.remove();
  let aoi = null;
  const summary = page.querySelector("#aoi-summary");
  const drawer = new AoiDrawer(map, (geometry) => {
    aoi = geometry;
    summary.textContent = geometry
      ? `AOI: ${corners(geometry)} corners, about ${approximateKm2(geometry).toFixed(2)} km²`
      : "No AOI yet: draw one (click its corners, then Finish) or upload a GeoJSON polygon.";
    summary.dataset.corners = geometry ? corners(geometry) : 0;
  });
  const [start, end] = lastSeason();
  form.elements.start_date.value = start;
  form.elements.end_date.value = end;
  if (!canSubmit()) {
    form.querySelectorAll("input, select, button").forEach((control) => (control.disabled = true));
    page.querySelector("#viewer-cannot-submit").hidden = false;
  }

  const drawButton = page.querySelector("#draw");
  const finishButton = page.querySelector("#finish");
  drawButton.addEventListener("click", () => {
    drawer.start();
    finishButton.hidden = false;
    summary.textContent = "Click the AOI's corners on the map, then Finish.";
  });
  finishButton.addEventListener("click", () => {
    if (drawer.finish()) finishButton.hidden = true;
    else showError("an AOI needs at least three corners: click more points on the map");
  });
  page.querySelector("#clear").addEventListener("click", () => {
    drawer.clear();
    finishButton.hidden = true;
  });
  page.querySelector("#aoi-file").addEventListener("change", (event) =>
    guarded(async () => {
      const file = event.target.files[0];
      if (!file) return;
      hideError();
      drawer.show(aoiOf(await readGeoJson(file), file.name));
      finishButton.hidden = true;
    }),
  );

  const models = await guarded(() => api.call("/models"));
  const select = form.elements.model;
  for (const model of models || []) {
    const option = new Option(modelLabel(model), model.ref);
    option.title = model.card.trained_on || "";
    select.add(option);
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    guarded(async () => {
      hideError();
      if (drawer.drawing) drawer.finish();
      if (aoi === null) throw new api.ApiError("draw or upload an AOI first", 0);
      const submit = form.querySelector("button[type=submit]");
      submit.disabled = true;
      try {
        const parcels = page.querySelector("#fields-file");
        if (parcels.files[0]) {
          const made = await api.call("/fields", { method: "POST", json: await readGeoJson(parcels.files[0]) });
          parcels.value = ""; // uploaded: a second submit must not upload them again
          page.querySelector("#fields-summary").textContent = `${made.count} field parcels uploaded.`;
        }
        const analysis = await api.call("/analyses", {
          method: "POST",
          json: {
            name: form.elements.name.value, aoi, start_date: form.elements.start_date.value,
            end_date: form.elements.end_date.value, model: form.elements.model.value,
          }, // prettier-ignore
        });
        location.hash = `#/analyses/${analysis.id}`;
      } finally {
        submit.disabled = false;
      }
    });
  });
}

// --- start -------------------------------------------------------------------------------

document.getElementById("logout").addEventListener("click", logOut);
window.addEventListener("hashchange", route);
fetch("config.json")
  .then((response) => response.json())
  .catch(() => ({ basemap_url: "" }))
  .then((loaded) => {
    config = loaded;
    route();
  });
