"""Storing field parcels in the catalogue, once per idempotency key, on each database; reference
fields apart from training ones."""

import pytest
from sqlalchemy import func, select

from cropai.accounts import create_user
from cropai.config import Settings
from cropai.db import FieldParcel, FieldPurpose, make_engine, session_factory, upgrade_database
from cropai.errors import InvalidInput
from cropai.fields import add_fields, labelled_fields, uploaded_fields
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


def labelled(name: str, x: float, crop: str) -> dict:
    feature = parcel(x, 48.20, name)
    feature["properties"]["crop"] = crop
    return feature


def test_training_leaves_reference_fields_out_and_refuses_them_by_id(database_settings: Settings) -> None:
    engine = make_engine(database_settings)
    upgrade_database(engine)
    sessions = session_factory(engine)
    owner = create_user(sessions, "trainer@example.org", "a-long-test-password").id
    trained = add_fields(sessions, collection(labelled("a", 1.60, "1110"), labelled("b", 1.61, "1500")), owner)
    kept = add_fields(
        sessions, collection(labelled("c", 1.62, "1110")), owner, purpose=FieldPurpose.reference, label_property="crop"
    )
    assert labelled_fields(sessions, owner, "crop").labels == ("1110", "1500")
    with pytest.raises(InvalidInput, match=f"fields {kept[0]} are reference fields"):
        labelled_fields(sessions, owner, "crop", [*trained, *kept])


def test_reference_fields_keep_their_label_as_text(database_settings: Settings) -> None:
    engine = make_engine(database_settings)
    upgrade_database(engine)
    sessions = session_factory(engine)
    feature = parcel(1.60, 48.20, "numbered")
    feature["properties"]["crop"] = 1110
    (field_id,) = add_fields(sessions, collection(feature), None, purpose=FieldPurpose.reference, label_property="crop")
    with sessions() as session:
        row = session.get_one(FieldParcel, field_id)
        assert (row.purpose, row.reference_label) == (FieldPurpose.reference, "1110")
