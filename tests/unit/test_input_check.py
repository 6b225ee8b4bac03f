"""An analysis' inputs against its model's training inputs, on generated seasons: the same
kind of data passes, a radiometric fault is flagged and named."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from cropai.input_check import (
    DEFAULT_SHIFT_THRESHOLD,
    MIN_CLEAR_VALUES,
    InputMoments,
    TrainingInputStatistics,
    bin_labels,
    check_inputs,
)
from models.training_data import TrainingData
from tests.model_fixtures import season_data

B04, JUNE = 2, 2  # band and bin indexes


def clear_cube(data: TrainingData) -> npt.NDArray[np.float32]:
    """The season's composites as they were before their gaps were filled: NaN where unseen."""
    assert data.clear is not None
    return np.where(data.clear[:, None], data.cube, np.nan).astype(np.float32)


@pytest.fixture(scope="module")
def training(tmp_path_factory: pytest.TempPathFactory) -> TrainingInputStatistics:
    data = season_data(tmp_path_factory.mktemp("training"), seed=3)
    bands = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]
    return TrainingInputStatistics.of_cube(
        clear_cube(data), data.labels > 0, bands, bin_labels(data.season.time_bins(data.year))
    )


@pytest.fixture(scope="module")
def another_season(tmp_path_factory: pytest.TempPathFactory) -> npt.NDArray[np.float32]:
    """A season of the same kind elsewhere: other fields, other crops, other clouds."""
    return clear_cube(season_data(tmp_path_factory.mktemp("analysis"), seed=4))


def test_statistics_read_back_from_json_are_the_same(training: TrainingInputStatistics, tmp_path: Path) -> None:
    (tmp_path / "statistics.json").write_text(json.dumps(training.as_record()))
    read = TrainingInputStatistics.from_record(json.loads((tmp_path / "statistics.json").read_text()))
    assert read.as_record() == training.as_record()
    assert read.bins == ("2025-04", "2025-05", "2025-06", "2025-07", "2025-08", "2025-09")


def test_statistics_keep_only_the_masked_clear_values() -> None:
    cube = np.full((2, 1, 2, 2), 0.2, np.float32)
    cube[0, 0, 0, 0] = 0.8  # outside the mask
    cube[1, 0, 1, 1] = np.nan  # not seen clear
    mask = np.array([[False, True], [True, True]])
    statistics = TrainingInputStatistics.of_cube(cube, mask, ["B04"], ["2025-04", "2025-05"])
    assert statistics.count.tolist() == [[3], [2]]
    assert statistics.mean[:, 0] == pytest.approx([0.2, 0.2])
    assert statistics.as_record()["p98"] == [[0.2], [0.2]]


def test_a_season_of_the_kind_the_model_learnt_from_is_not_flagged(
    training: TrainingInputStatistics, another_season: npt.NDArray[np.float32]
) -> None:
    check = check_inputs(training, InputMoments.of_cube(another_season), DEFAULT_SHIFT_THRESHOLD)
    assert not check.flagged and check.warning() is None and check.worst == ()
    assert check.compared == 60


@pytest.mark.parametrize(
    "fault", [lambda cube: cube - 0.1, lambda cube: cube * 1.3], ids=["offset -0.1 reflectance", "gain x1.3"]
)
def test_a_radiometric_fault_over_every_band_is_flagged(
    training: TrainingInputStatistics,
    another_season: npt.NDArray[np.float32],
    fault: Callable[[npt.NDArray[np.float32]], npt.NDArray[np.float32]],
) -> None:
    check = check_inputs(training, InputMoments.of_cube(fault(another_season)), DEFAULT_SHIFT_THRESHOLD)
    worst = check.worst[0]
    assert check.flagged and worst.distance == check.score == np.nanmax(check.distances)
    assert f"{worst.band} in {worst.bin}" in (check.warning() or "")


def test_the_warning_names_the_shifted_band_and_bin(
    training: TrainingInputStatistics, another_season: npt.NDArray[np.float32]
) -> None:
    shifted = another_season.copy()
    shifted[JUNE, B04] -= 0.1
    check = check_inputs(training, InputMoments.of_cube(shifted), DEFAULT_SHIFT_THRESHOLD)
    assert [(s.band, s.bin) for s in check.worst] == [("B04", "2025-06")]
    warning = check.warning() or ""
    assert warning.startswith("inputs differ from the model's training data: B04 in 2025-06 (mean ")
    assert "results may be unreliable" in warning


def test_the_warning_names_the_analysis_own_bins_when_given(
    training: TrainingInputStatistics, another_season: npt.NDArray[np.float32]
) -> None:
    shifted = another_season.copy()
    shifted[JUNE, B04] -= 0.1
    bins = ["2026-04", "2026-05", "2026-06", "2026-07", "2026-08", "2026-09"]
    check = check_inputs(training, InputMoments.of_cube(shifted), DEFAULT_SHIFT_THRESHOLD, bins)
    assert "B04 in 2026-06" in (check.warning() or "")


def test_bins_the_analysis_never_saw_are_skipped_not_scored(
    training: TrainingInputStatistics, another_season: npt.NDArray[np.float32]
) -> None:
    clouded = another_season.copy()
    clouded[JUNE:] = np.nan  # clouds from June on
    clouded[JUNE + 1, :, 0, : MIN_CLEAR_VALUES - 1] = 0.9  # but for a glimpse too small to judge
    check = check_inputs(training, InputMoments.of_cube(clouded), DEFAULT_SHIFT_THRESHOLD)
    assert np.isnan(check.distances[JUNE:]).all() and check.compared == JUNE * 10
    assert not check.flagged


def test_the_record_says_whether_and_why_it_was_flagged(
    training: TrainingInputStatistics, another_season: npt.NDArray[np.float32]
) -> None:
    record = json.loads(
        json.dumps(
            check_inputs(training, InputMoments.of_cube(another_season * 1.3), DEFAULT_SHIFT_THRESHOLD).as_record()
        )
    )
    assert record["flagged"] and record["score"] > record["threshold"] == DEFAULT_SHIFT_THRESHOLD
    assert record["warning"].startswith("inputs differ") and len(record["worst"]) == 3
    assert set(record["worst"][0]) == {"bin", "band", "distance", "analysis_mean", "training_mean"}
