"""API tests run the app in-process (TestClient) on PostgreSQL, with Prefect's harness."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from cropai.config import Settings
from cropai.db import upgrade_database
from cropai.services import services
from cropai.storage import S3Store
from tests.api_fixtures import api_settings, ensure_default_model_registered, make_client, register_unserved_deployment
from tests.conftest import s3_settings


@pytest.fixture(scope="session")
def unserved_deployment(prefect_api: str) -> str:
    register_unserved_deployment(prefect_api)
    return prefect_api


@pytest.fixture
def api_app_settings(settings: Settings, postgres_url: str, unserved_deployment: str) -> Settings:
    """PostgreSQL, a folder store, Prefect's harness; the default model registered."""
    configured = api_settings(settings, postgres_url, unserved_deployment)
    upgrade_database(services(configured).engine)
    ensure_default_model_registered(configured)
    return configured


@pytest.fixture
def client(api_app_settings: Settings) -> Iterator[TestClient]:
    with make_client(api_app_settings) as test_client:
        yield test_client


@pytest.fixture
def s3_api_settings(api_app_settings: Settings, s3_endpoint: str) -> Settings:
    """The API's settings on a fresh bucket of the loopback S3 server (the MinIO code path)."""
    configured = s3_settings(api_app_settings, s3_endpoint, f"api-{uuid.uuid4().hex[:10]}")
    store = services(configured).store
    assert isinstance(store, S3Store)
    store.ensure_bucket()
    return configured
