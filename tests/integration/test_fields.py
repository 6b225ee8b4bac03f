"""Storing field parcels in the catalogue, once per idempotency key, on each database."""

from sqlalchemy import func, select

from cropai.accounts import create_user
from cropai.config import Settings
from cropai.db import FieldParcel, make_engine, session_factory, upgrade_database
from cropai.fields import add_fields, uploaded_fields
from tests.integration.api.test_api_catalogue import collection, parcel

PARCELS = collection(parcel(1.60, 48.20, "north"), parcel(1.61, 48.21, "south"))


def test_an_upload_that_loses_the_race_for_its_key_returns_the_winners_fields(database_settings: Settings) -> None:
    engine = make_engine(database_settings)
    upgrade_database(engine)
    sessions = session_factory(engine)
    owner = create_user(sessions, "owner@example.org", "a-long-test-password").id
    first = add_fields(sessions, PARCELS, owner, idempotency_key="upload-1")
    # No look-up first: the second insert meets the first's key in the database, as a racing request would.
    second = add_fields(sessions, PARCELS, owner, idempotency_key="upload-1")
    assert second == first == uploaded_fields(sessions, owner, "upload-1")
    with sessions() as session:
        assert session.scalar(select(func.count()).select_from(FieldParcel)) == 2
