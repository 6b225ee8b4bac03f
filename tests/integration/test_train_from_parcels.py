"""Training on a real labelled season the way a user brings it: declared parcels in a
GeoPackage with national crop codes, a legend, and the catalogue's ingested scenes, on the
real PostgreSQL catalogue. Errors name what is wrong and nothing is half-made."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pytest

from cropai.errors import InvalidInput
from cropai.ingest import ingest_candidate
from cropai.legend import Legend
from cropai.parcels import ClassifiedParcels, classify_parcels, read_parcels
from cropai.services import Services
from cropai.sources import discover
from cropai.training_season import LabelledSeason, labelled_season
from models.train import TrainConfig, train_model
from models.training_data import TrainingData
from testkit.labelled_parcels import FLANDERS, FLANDERS_SEASON, write_declared_parcels, write_legend
from testkit.realdata import realdata

WINTER_SEASON = (date.fromisoformat(FLANDERS_SEASON[0]), date.fromisoformat(FLANDERS_SEASON[1]))
QUICK = TrainConfig(seed=0, epochs=12, steps_per_epoch=8, batch_size=8, patch_px=32, patience=6)


def ingested(svc: Services) -> Services:
    for candidate in discover(str(realdata(FLANDERS, "scenes")), svc.store):
        assert ingest_candidate(candidate, svc.store, svc.sessions).status == "ingested"
    return svc


def declared(tmp_path: Path, merge_rare: bool = True) -> ClassifiedParcels:
    gpkg = write_declared_parcels(realdata(FLANDERS, "parcels.geojson"), tmp_path / "declarations.gpkg")
    legend = Legend.from_csv(write_legend(tmp_path / "legend.csv"))
    return classify_parcels(read_parcels(gpkg, "crop_code"), legend, min_fields=2, merge_rare=merge_rare)


@pytest.fixture
def season(postgres_catalogue: Services, tmp_path: Path) -> LabelledSeason:
    svc = ingested(postgres_catalogue)
    from cropai.season import Season

    return labelled_season(svc.sessions, svc.store, declared(tmp_path), Season.spanning(*WINTER_SEASON), WINTER_SEASON)


def test_rare_classes_are_named_unless_merged_into_other(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"potato.*1.*sugar_beet.*1|sugar_beet.*1.*potato.*1"):
        declared(tmp_path, merge_rare=False)
    merged = declared(tmp_path)
    assert merged.fields_per_class == {"winter_wheat": 4, "maize": 4, "barley": 2, "grassland": 7, "other": 2}


def test_a_winter_season_from_the_catalogue_has_twelve_monthly_bins_on_the_parcels(season: LabelledSeason) -> None:
    assert season.cube.shape[:2] == (12, 10)
    assert season.bins[0].start == date(2018, 10, 1) and season.bins[-1].end == date(2019, 9, 30)
    assert len(season.input_scenes) >= 12
    labelled = season.labels > 0
    assert labelled.sum() > 3000 and len(np.unique(season.labels[labelled])) == 5
    assert not np.isnan(season.cube[:, :, labelled]).all(axis=(0, 1)).any()


def test_a_model_trained_on_real_parcels_carries_their_legend_season_and_honest_metrics(
    season: LabelledSeason, tmp_path: Path
) -> None:
    from cropai.season import Season

    data = TrainingData.of_season(season, Season.spanning(*WINTER_SEASON))
    parcels = declared(tmp_path)
    result = train_model(data, QUICK, parcels.legend)
    contract, metrics = result.contract, result.metrics
    assert contract.class_names == ["winter_wheat", "maize", "barley", "other", "grassland"]
    assert contract.classes[2].codes == ["1500", "1510"]
    assert contract.season == Season(start_month=10, bins=12)
    assert metrics["fields_per_class"]["grassland"] == 7
    assert metrics["validation_fields"] >= 3 and metrics["training_fields"] >= 10
    assert set(metrics["baseline"]["per_class"]) == set(metrics["per_class"])
    assert 1 <= metrics["best_epoch"] <= QUICK.epochs
    # what its inputs looked like, kept with the version for each analysis' input check
    from tasks.train import model_card

    statistics = result.input_statistics
    assert statistics is not None and statistics.bands == tuple(contract.bands)
    assert statistics.bins[0] == "2018-10" and len(statistics.bins) == 12 and (statistics.count > 0).all()
    kept = model_card(data, result, QUICK, "declared parcels", False)["input_statistics"]
    assert kept == statistics.as_record()


def test_parcels_outside_every_scene_are_refused_naming_their_box(postgres_catalogue: Services, tmp_path: Path) -> None:
    import shapely

    from cropai.parcels import ClassifiedParcels
    from cropai.season import Season

    svc = ingested(postgres_catalogue)
    parcels = declared(tmp_path)
    far = ClassifiedParcels(
        parcels.crs,
        tuple(shapely.affinity.translate(g, xoff=50_000) for g in parcels.geometries),
        parcels.class_ids,
        parcels.legend,
        parcels.ignored,
    )
    with pytest.raises(InvalidInput, match=r"no usable scenes for the AOI \(bbox \(4\.7"):
        labelled_season(svc.sessions, svc.store, far, Season.spanning(*WINTER_SEASON), WINTER_SEASON)


def test_a_season_bin_without_a_scene_is_named(postgres_catalogue: Services, tmp_path: Path) -> None:
    from cropai.season import Season

    svc = ingested(postgres_catalogue)
    window = (date(2019, 10, 1), date(2020, 1, 31))  # the scenes end in November 2019
    with pytest.raises(
        InvalidInput, match=r"no scene of the parcels in 2 time bin.*2019-12-01 to 2019-12-31, 2020-01-01 to 2020-01-31"
    ):
        labelled_season(svc.sessions, svc.store, declared(tmp_path), Season.spanning(*window), window)


def test_a_bin_in_which_no_labelled_pixel_was_seen_clear_is_named() -> None:
    from cropai.composite import TimeBin
    from cropai.training_season import check_every_bin_seen

    cube = np.ones((3, 10, 4, 4), np.float32)
    labelled = np.zeros((4, 4), bool)
    labelled[1:3, 1:3] = True
    cube[1][:, labelled] = np.nan  # clouds over every parcel in May
    bins = tuple(TimeBin(date(2025, m, 1), date(2025, m, 28)) for m in (4, 5, 6))
    with pytest.raises(InvalidInput, match=r"no clear observation of the parcels in 1 time bin\(s\) .*2025-05-01 to"):
        check_every_bin_seen(cube, labelled, bins)
    cube[1][:, 1, 1] = 0.2  # one clear look at one parcel pixel is enough
    check_every_bin_seen(cube, labelled, bins)
