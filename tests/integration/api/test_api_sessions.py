"""Ending sessions: a password change, a deactivation or a logout ends what was issued before;
refresh tokens rotate and a replayed one ends its login; login attempts are limited per account
and per client."""

import time
from concurrent.futures import ThreadPoolExecutor

from fastapi.testclient import TestClient

from api.deps import USER_CACHE_TTL_S
from cropai.config import Settings
from cropai.db import Role
from tests.api_fixtures import PASSWORD, Account, make_client, new_account

NEW_PASSWORD = "another-long-password"


def log_in(client: TestClient, email: str, password: str = PASSWORD) -> dict[str, str]:
    """A fresh login's access and refresh tokens."""
    response = client.post("/auth/token", data={"username": email, "password": password})
    assert response.status_code == 200, response.text
    return response.json()


def bearer(tokens: dict[str, str]) -> dict[str, str]:
    return {"Authorization": f"Bearer {tokens['access_token']}"}


def refresh(client: TestClient, tokens: dict[str, str]):
    return client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})


def change_password(client: TestClient, admin: Account, user_id: int) -> None:
    response = client.patch(f"/users/{user_id}", json={"password": NEW_PASSWORD}, headers=admin.headers)
    assert response.status_code == 200, response.text


def test_access_token_is_refused_after_an_admin_changes_the_password(
    client: TestClient, api_app_settings: Settings
) -> None:
    admin, analyst = new_account(client, api_app_settings, Role.admin), new_account(client, api_app_settings)
    change_password(client, admin, analyst.id)
    refused = client.get("/auth/me", headers=analyst.headers)
    assert refused.status_code == 401 and "session was ended" in refused.json()["detail"]
    assert client.get("/auth/me", headers=bearer(log_in(client, analyst.email, NEW_PASSWORD))).status_code == 200


def test_refresh_token_is_refused_after_an_admin_changes_the_password(
    client: TestClient, api_app_settings: Settings
) -> None:
    admin, analyst = new_account(client, api_app_settings, Role.admin), new_account(client, api_app_settings)
    tokens = log_in(client, analyst.email)
    change_password(client, admin, analyst.id)
    refused = refresh(client, tokens)
    assert refused.status_code == 401 and "session was ended" in refused.json()["detail"]


def test_refresh_rotates_the_refresh_token(client: TestClient, api_app_settings: Settings) -> None:
    analyst = new_account(client, api_app_settings)
    first = log_in(client, analyst.email)
    second = refresh(client, first).json()
    assert second["refresh_token"] != first["refresh_token"]
    assert refresh(client, second).status_code == 200  # the new one is good for one more round


def test_replayed_refresh_token_revokes_its_family(client: TestClient, api_app_settings: Settings) -> None:
    analyst = new_account(client, api_app_settings)
    stolen = log_in(client, analyst.email)
    newer = refresh(client, stolen).json()
    replayed = refresh(client, stolen)
    assert replayed.status_code == 401 and "reused" in replayed.json()["detail"]
    assert "every session of this login was ended" in replayed.json()["detail"]
    assert refresh(client, newer).status_code == 401  # the family's newest token is ended too


def test_racing_refreshes_of_one_token_do_not_both_succeed(client: TestClient, api_app_settings: Settings) -> None:
    analyst = new_account(client, api_app_settings)
    tokens = log_in(client, analyst.email)
    with ThreadPoolExecutor(max_workers=4) as pool:
        codes = sorted(pool.map(lambda _: refresh(client, tokens).status_code, range(4)))
    assert codes == [200, 401, 401, 401]


def test_logout_ends_that_login_only(client: TestClient, api_app_settings: Settings) -> None:
    analyst = new_account(client, api_app_settings)
    laptop, phone = log_in(client, analyst.email), log_in(client, analyst.email)
    logout = client.post("/auth/logout", json={"refresh_token": laptop["refresh_token"]}, headers=bearer(laptop))
    assert logout.status_code == 204
    refused = refresh(client, laptop)
    assert refused.status_code == 401 and "revoked" in refused.json()["detail"]
    assert refresh(client, phone).status_code == 200


def test_logout_keeps_api_keys_working(client: TestClient, api_app_settings: Settings) -> None:
    analyst = new_account(client, api_app_settings)
    tokens = log_in(client, analyst.email)
    key = client.post("/auth/api-keys", json={"name": "nightly job"}, headers=bearer(tokens)).json()["key"]
    client.post("/auth/logout", json={"refresh_token": tokens["refresh_token"]}, headers=bearer(tokens))
    assert client.get("/auth/me", headers={"X-API-Key": key}).status_code == 200


def test_logout_everywhere_ends_every_access_token(client: TestClient, api_app_settings: Settings) -> None:
    analyst = new_account(client, api_app_settings)
    laptop, phone = log_in(client, analyst.email), log_in(client, analyst.email)
    assert client.post("/auth/logout", params={"everywhere": "true"}, headers=bearer(laptop)).status_code == 204
    for tokens in (laptop, phone):
        refused = client.get("/auth/me", headers=bearer(tokens))
        assert refused.status_code == 401 and "session was ended" in refused.json()["detail"]
    assert refresh(client, phone).status_code == 401


def test_logout_with_another_users_refresh_token_is_refused(client: TestClient, api_app_settings: Settings) -> None:
    alice, bob = new_account(client, api_app_settings), new_account(client, api_app_settings)
    bobs = log_in(client, bob.email)
    response = client.post("/auth/logout", json={"refresh_token": bobs["refresh_token"]}, headers=alice.headers)
    assert response.status_code == 404
    assert refresh(client, bobs).status_code == 200


def test_api_key_made_before_a_password_change_is_refused(client: TestClient, api_app_settings: Settings) -> None:
    admin, analyst = new_account(client, api_app_settings, Role.admin), new_account(client, api_app_settings)
    old_key = client.post("/auth/api-keys", json={"name": "old"}, headers=analyst.headers).json()["key"]
    change_password(client, admin, analyst.id)
    refused = client.get("/auth/me", headers={"X-API-Key": old_key})
    assert refused.status_code == 401 and "create a new one" in refused.json()["detail"]

    fresh = bearer(log_in(client, analyst.email, NEW_PASSWORD))
    new_key = client.post("/auth/api-keys", json={"name": "new"}, headers=fresh).json()["key"]
    assert client.get("/auth/me", headers={"X-API-Key": new_key}).status_code == 200


def test_reactivation_does_not_revive_tokens_issued_before(client: TestClient, api_app_settings: Settings) -> None:
    admin, analyst = new_account(client, api_app_settings, Role.admin), new_account(client, api_app_settings)
    tokens = log_in(client, analyst.email)
    for active in (False, True):
        response = client.patch(f"/users/{analyst.id}", json={"is_active": active}, headers=admin.headers)
        assert response.status_code == 200
    assert client.get("/auth/me", headers=bearer(tokens)).status_code == 401
    assert refresh(client, tokens).status_code == 401
    assert client.get("/auth/me", headers=bearer(log_in(client, analyst.email))).status_code == 200


def admin_panel_login(client: TestClient, email: str) -> None:
    response = client.post("/admin/login", data={"username": email, "password": PASSWORD}, follow_redirects=False)
    assert response.status_code == 302, response.text


def test_admin_panel_session_ends_with_a_password_change(client: TestClient, api_app_settings: Settings) -> None:
    admin = new_account(client, api_app_settings, Role.admin)
    other_admin = new_account(client, api_app_settings, Role.admin)
    admin_panel_login(client, admin.email)
    assert client.get("/admin/user/list", follow_redirects=False).status_code == 200
    change_password(client, other_admin, admin.id)
    assert client.get("/admin/user/list", follow_redirects=False).status_code == 302  # back to the login page


def test_deactivation_and_reactivation_in_the_admin_panel_do_not_revive_tokens(
    client: TestClient, api_app_settings: Settings
) -> None:
    admin, analyst = new_account(client, api_app_settings, Role.admin), new_account(client, api_app_settings)
    tokens = log_in(client, analyst.email)
    assert client.get("/auth/me", headers=bearer(tokens)).status_code == 200  # the API caches the account
    admin_panel_login(client, admin.email)
    for is_active in ({}, {"is_active": "y"}):  # an unticked checkbox is not sent at all
        form = {"full_name": "", "role": "analyst", **is_active}
        edited = client.post(f"/admin/user/edit/{analyst.id}", data=form, follow_redirects=False)
        assert edited.status_code == 302, edited.text
        assert client.get(f"/users/{analyst.id}", headers=admin.headers).json()["is_active"] is bool(is_active)
        assert client.get("/auth/me", headers=bearer(tokens)).status_code == 401  # at once, not after the cache's TTL
    assert refresh(client, tokens).status_code == 401


def test_admin_login_answers_429_past_the_limit(api_app_settings: Settings) -> None:
    with make_client(api_app_settings.model_copy(update={"login_attempts_per_minute": 2})) as limited:
        codes = [
            limited.post(
                "/admin/login", data={"username": "a@example.org", "password": "guess-number-x"}, follow_redirects=False
            ).status_code
            for _ in range(3)
        ]
        assert codes == [400, 400, 429]
        last = limited.post("/admin/login", data={"username": "a@example.org", "password": "guess"})
        assert 1 <= int(last.headers["retry-after"]) <= 60 and "login attempts" in last.text


def test_spraying_many_accounts_from_one_client_gets_429(api_app_settings: Settings) -> None:
    with make_client(api_app_settings.model_copy(update={"login_attempts_per_client_per_minute": 5})) as limited:
        codes = [
            limited.post(
                "/auth/token", data={"username": f"user{n}@example.org", "password": "Summer2026!"}
            ).status_code
            for n in range(25)
        ]
        assert codes[:5] == [401] * 5 and set(codes[5:]) == {429}


def test_forwarded_for_from_an_untrusted_client_does_not_escape_the_limit(api_app_settings: Settings) -> None:
    with make_client(api_app_settings.model_copy(update={"login_attempts_per_client_per_minute": 2})) as limited:
        codes = [
            limited.post(
                "/auth/token",
                data={"username": f"user{n}@example.org", "password": "guess-number-x"},
                headers={"X-Forwarded-For": f"198.51.100.{n}"},
            ).status_code
            for n in range(3)
        ]
        assert codes == [401, 401, 429]


def test_forwarded_for_from_a_trusted_proxy_counts_each_client_apart(api_app_settings: Settings) -> None:
    # TestClient connects from the peer address "testclient", trusted here as if it were the proxy.
    behind_proxy = api_app_settings.model_copy(
        update={"login_attempts_per_client_per_minute": 2, "trusted_proxies": "testclient"}
    )
    with make_client(behind_proxy) as limited:
        codes = [
            limited.post(
                "/auth/token",
                data={"username": f"user{n}@example.org", "password": "guess-number-x"},
                headers={"X-Forwarded-For": f"198.51.100.{n}"},
            ).status_code
            for n in range(3)
        ]
        assert codes == [401, 401, 401]


def test_a_new_login_works_at_once_on_a_replica_that_cached_the_user(
    client: TestClient, api_app_settings: Settings
) -> None:
    admin, analyst = new_account(client, api_app_settings, Role.admin), new_account(client, api_app_settings)
    with make_client(api_app_settings) as other_replica:
        assert other_replica.get("/auth/me", headers=analyst.headers).status_code == 200  # caches the user
        change_password(client, admin, analyst.id)
        fresh = bearer(log_in(client, analyst.email, NEW_PASSWORD))
        assert other_replica.get("/auth/me", headers=fresh).status_code == 200


def test_another_replica_refuses_the_old_token_within_the_cache_ttl(
    client: TestClient, api_app_settings: Settings
) -> None:
    admin, analyst = new_account(client, api_app_settings, Role.admin), new_account(client, api_app_settings)
    with make_client(api_app_settings) as other_replica:
        assert other_replica.get("/auth/me", headers=analyst.headers).status_code == 200  # caches the user
        change_password(client, admin, analyst.id)
        deadline = time.monotonic() + 3 * USER_CACHE_TTL_S
        while other_replica.get("/auth/me", headers=analyst.headers).status_code != 401:
            assert time.monotonic() < deadline, "the other replica still accepts the old token"
            time.sleep(0.2)
