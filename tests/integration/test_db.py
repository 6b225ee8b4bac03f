import uuid
from datetime import date

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError, StatementError

from cropai.config import Settings
from cropai.db import (
    Analysis,
    AnalysisClassStat,
    AnalysisStatus,
    Base,
    Role,
    Scene,
    User,
    alembic_config,
    check_database,
    current_revision,
    make_engine,
    session_factory,
    session_scope,
    upgrade_database,
)
from cropai.errors import ServiceUnavailable

TABLES = {
    "users",
    "api_keys",
    "scenes",
    "model_versions",
    "analyses",
    "analysis_class_stats",
    "fields",
    "field_predictions",
    "ingest_runs",
}


def test_upgrade_creates_every_table(database_settings: Settings) -> None:
    engine = make_engine(database_settings)
    upgrade_database(engine)
    assert set(inspect(engine).get_table_names()) >= TABLES
    assert current_revision(engine) is not None


def test_upgrade_twice_changes_nothing(database_settings: Settings) -> None:
    engine = make_engine(database_settings)
    upgrade_database(engine)
    first = current_revision(engine)
    upgrade_database(engine)
    assert current_revision(engine) == first


def test_migrations_match_the_models_with_no_drift(database_settings: Settings) -> None:
    engine = make_engine(database_settings)
    command.upgrade(alembic_config(engine), "head")
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}), Base.metadata)
    assert diff == []


def test_downgrade_to_base_removes_the_catalogue(database_settings: Settings) -> None:
    engine = make_engine(database_settings)
    upgrade_database(engine)
    command.downgrade(alembic_config(engine), "base")
    assert not TABLES & set(inspect(engine).get_table_names())


@pytest.fixture
def sessions(database_settings: Settings):
    engine = make_engine(database_settings)
    upgrade_database(engine)
    return session_factory(engine)


def _analysis(owner: User, **values) -> Analysis:
    defaults = dict(
        owner_id=owner.id,
        aoi_geojson={"type": "Polygon", "coordinates": [[[1.6, 48.2], [1.64, 48.2], [1.64, 48.23], [1.6, 48.2]]]},
        aoi_area_ha=990.0,
        minx=1.6,
        miny=48.2,
        maxx=1.64,
        maxy=48.23,
        start_date=date(2025, 4, 1),
        end_date=date(2025, 9, 30),
        model_ref="cropnet@latest",
    )
    return Analysis(**{**defaults, **values})


def test_an_analysis_round_trips_with_its_geojson_and_uuid(sessions) -> None:
    with session_scope(sessions) as session:
        owner = User(email="ana@example.org", hashed_password="x", role=Role.analyst)
        session.add(owner)
        session.flush()
        analysis = _analysis(owner, options={"max_cloud_fraction": 0.6})
        session.add(analysis)
        session.flush()
        analysis_id = analysis.id
    with sessions() as session:
        stored = session.get(Analysis, analysis_id)
        assert isinstance(stored.id, uuid.UUID)
        assert stored.status is AnalysisStatus.queued
        assert stored.aoi_geojson["type"] == "Polygon"
        assert stored.options == {"max_cloud_fraction": 0.6}


def test_deleting_an_analysis_deletes_its_class_stats(sessions) -> None:
    with session_scope(sessions) as session:
        owner = User(email="a@example.org", hashed_password="x")
        session.add(owner)
        session.flush()
        analysis = _analysis(owner)
        session.add(analysis)
        session.flush()
        session.add(
            AnalysisClassStat(
                analysis_id=analysis.id, class_id=1, class_name="winter_wheat", pixel_count=10, area_ha=0.1
            )
        )
    with session_scope(sessions) as session:
        session.delete(session.get(Analysis, analysis.id))
    with sessions() as session:
        assert session.scalars(select(AnalysisClassStat)).all() == []


def test_the_same_scene_version_cannot_be_stored_twice(sessions) -> None:
    def scene(content_hash: str) -> Scene:
        return Scene(
            scene_id="S2A_X",
            version=1,
            content_hash=content_hash,
            object_key=f"scenes/{content_hash}.tif",
            source_uri="file:///x.tif",
            acquired_at=date(2025, 5, 1),
            crs="EPSG:32631",
            resolution_m=10,
            width=10,
            height=10,
            bands=["B02"],
            footprint_geojson={},
            minx=0,
            miny=0,
            maxx=1,
            maxy=1,
        )

    with session_scope(sessions) as session:
        session.add(scene("a" * 64))
    with pytest.raises(IntegrityError), session_scope(sessions) as session:
        session.add(scene("b" * 64))


def test_unknown_role_values_are_refused(sessions) -> None:
    with pytest.raises(StatementError, match="not among the defined enum values"), session_scope(sessions) as session:
        session.add(User(email="x@example.org", hashed_password="x", role="superuser"))
        session.flush()


def test_unreachable_database_fails_fast_with_a_masked_url(settings: Settings) -> None:
    from tests.conftest import free_port

    url = f"postgresql+psycopg://crop:s3cret@127.0.0.1:{free_port()}/cropai"
    engine = make_engine(settings.model_copy(update={"database_url": url}))
    with pytest.raises(ServiceUnavailable) as caught:
        check_database(engine)
    message = str(caught.value)
    assert "crop:***@127.0.0.1" in message and "s3cret" not in message
    assert "CROPAI_DATABASE_URL" in message
