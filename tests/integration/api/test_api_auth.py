"""Logging in, refreshing, API keys, roles: what a user of the API meets first."""

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import update

from api.security import issue_token
from cropai.config import Settings
from cropai.db import ApiKey, Role
from cropai.services import services
from tests.api_fixtures import PASSWORD, login, new_account


def test_login_returns_tokens_that_identify_the_user(client: TestClient, api_app_settings: Settings) -> None:
    account = new_account(client, api_app_settings)
    me = client.get("/auth/me", headers=account.headers)
    assert me.status_code == 200
    assert me.json()["email"] == account.email and me.json()["role"] == "analyst"


def test_wrong_password_and_unknown_account_get_the_same_401(client: TestClient, api_app_settings: Settings) -> None:
    account = new_account(client, api_app_settings)
    wrong = client.post("/auth/token", data={"username": account.email, "password": "not-the-password"})
    unknown = client.post("/auth/token", data={"username": "nobody@example.org", "password": PASSWORD})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()


def test_requests_without_credentials_are_401_with_a_hint(client: TestClient) -> None:
    response = client.get("/analyses")
    assert response.status_code == 401
    assert "POST /auth/token" in response.json()["detail"]
    assert response.headers["www-authenticate"] == "Bearer"


def test_refresh_token_gives_new_tokens_but_is_not_an_access_token(
    client: TestClient, api_app_settings: Settings
) -> None:
    account = new_account(client, api_app_settings)
    tokens = client.post("/auth/token", data={"username": account.email, "password": PASSWORD}).json()
    refreshed = client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200
    assert (
        client.get("/auth/me", headers={"Authorization": f"Bearer {refreshed.json()['access_token']}"}).status_code
        == 200
    )
    as_access = client.get("/auth/me", headers={"Authorization": f"Bearer {tokens['refresh_token']}"})
    assert as_access.status_code == 401 and "refresh token" in as_access.json()["detail"]
    as_refresh = client.post("/auth/refresh", json={"refresh_token": tokens["access_token"]})
    assert as_refresh.status_code == 401


def test_expired_and_forged_tokens_are_refused(client: TestClient, api_app_settings: Settings) -> None:
    account = new_account(client, api_app_settings)
    expired = issue_token(api_app_settings.model_copy(update={"access_token_minutes": -1}), account.id, "access", 0)
    response = client.get("/auth/me", headers={"Authorization": f"Bearer {expired.token}"})
    assert response.status_code == 401 and "expired" in response.json()["detail"]
    other_secret = api_app_settings.model_copy(update={"secret_key": SecretStr("x" * 40)})
    forged = issue_token(other_secret, account.id, "access", 0)
    assert client.get("/auth/me", headers={"Authorization": f"Bearer {forged.token}"}).status_code == 401


def test_api_key_works_until_revoked(client: TestClient, api_app_settings: Settings) -> None:
    account = new_account(client, api_app_settings)
    created = client.post("/auth/api-keys", json={"name": "nightly job"}, headers=account.headers)
    assert created.status_code == 201
    key = created.json()["key"]
    assert client.get("/auth/me", headers={"X-API-Key": key}).json()["email"] == account.email
    assert client.get("/auth/me", headers={"Authorization": f"Bearer {key}"}).status_code == 200
    listed = client.get("/auth/api-keys", headers=account.headers).json()
    assert [k["name"] for k in listed] == ["nightly job"] and "key" not in listed[0]  # the secret is shown once

    assert client.delete(f"/auth/api-keys/{created.json()['id']}", headers=account.headers).status_code == 204
    refused = client.get("/auth/me", headers={"X-API-Key": key})
    assert refused.status_code == 401 and "revoked" in refused.json()["detail"]


def test_api_keys_are_stored_hashed_and_expire(client: TestClient, api_app_settings: Settings) -> None:
    account = new_account(client, api_app_settings)
    created = client.post(
        "/auth/api-keys", json={"name": "short", "expires_in_days": 1}, headers=account.headers
    ).json()
    with services(api_app_settings).sessions.begin() as session:
        row = session.get_one(ApiKey, created["id"])
        assert created["key"] not in (row.key_hash, row.prefix)
        session.execute(
            update(ApiKey).where(ApiKey.id == row.id).values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )
    response = client.get("/auth/me", headers={"X-API-Key": created["key"]})
    assert response.status_code == 401 and "expired" in response.json()["detail"]


def test_one_cannot_revoke_another_users_key(client: TestClient, api_app_settings: Settings) -> None:
    alice, bob = new_account(client, api_app_settings), new_account(client, api_app_settings)
    key_id = client.post("/auth/api-keys", json={"name": "alice"}, headers=alice.headers).json()["id"]
    assert client.delete(f"/auth/api-keys/{key_id}", headers=bob.headers).status_code == 404


def test_admin_registers_users_and_others_may_not(client: TestClient, api_app_settings: Settings) -> None:
    admin = new_account(client, api_app_settings, Role.admin)
    analyst = new_account(client, api_app_settings)
    body = {"email": "New.Person@Example.org", "password": "another-long-password", "role": "viewer"}
    assert client.post("/users", json=body, headers=analyst.headers).status_code == 403
    created = client.post("/users", json=body, headers=admin.headers)
    assert created.status_code == 201 and created.json()["role"] == "viewer"
    assert client.post("/users", json=body, headers=admin.headers).status_code == 409
    assert login(client, "new.person@example.org", "another-long-password")


def test_deactivated_user_is_locked_out_at_once(client: TestClient, api_app_settings: Settings) -> None:
    admin = new_account(client, api_app_settings, Role.admin)
    analyst = new_account(client, api_app_settings)
    assert client.patch(f"/users/{analyst.id}", json={"is_active": False}, headers=admin.headers).status_code == 200
    assert client.get("/auth/me", headers=analyst.headers).status_code == 401
    relogin = client.post("/auth/token", data={"username": analyst.email, "password": PASSWORD})
    assert relogin.status_code == 401


def test_admin_cannot_demote_themselves(client: TestClient, api_app_settings: Settings) -> None:
    admin = new_account(client, api_app_settings, Role.admin)
    response = client.patch(f"/users/{admin.id}", json={"role": "viewer"}, headers=admin.headers)
    assert response.status_code == 409


def test_login_attempts_are_rate_limited(api_app_settings: Settings) -> None:
    from tests.api_fixtures import make_client

    with make_client(api_app_settings.model_copy(update={"login_attempts_per_minute": 3})) as limited:
        codes = [
            limited.post("/auth/token", data={"username": "a@example.org", "password": "guess-number-x"}).status_code
            for _ in range(4)
        ]
        assert codes == [401, 401, 401, 429]
        last = limited.post("/auth/token", data={"username": "a@example.org", "password": "guess"})
        assert 1 <= int(last.headers["retry-after"]) <= 60 and "login attempts" in last.json()["detail"]


@pytest.mark.parametrize("scheme", ["OAuth2PasswordBearer", "APIKeyHeader"])
def test_swagger_offers_both_ways_to_authorize(client: TestClient, scheme: str) -> None:
    schemes = client.get("/openapi.json").json()["components"]["securitySchemes"]
    assert scheme in schemes
    if scheme == "OAuth2PasswordBearer":
        assert schemes[scheme]["flows"]["password"]["tokenUrl"] == "/auth/token"


def test_text_the_database_cannot_store_is_a_422(client: TestClient, api_app_settings: Settings) -> None:
    account = new_account(client, api_app_settings)
    response = client.post("/auth/api-keys", json={"name": "nul\u0000byte"}, headers=account.headers)
    assert response.status_code == 422 and "cannot be stored" in response.json()["detail"]
    assert client.get("/auth/api-keys", headers=account.headers).json() == []
