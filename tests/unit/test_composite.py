from collections.abc import Callable
from datetime import UTC, date, datetime

import numpy as np
import pytest

from cropai.composite import TimeBin, composite, fill_gaps, monthly_bins
from cropai.sentinel2 import SCL


def test_monthly_bins_cover_whole_months() -> None:
    bins = monthly_bins(2024, [2, 12])
    assert bins == [TimeBin(date(2024, 2, 1), date(2024, 2, 29)), TimeBin(date(2024, 12, 1), date(2024, 12, 31))]


def observation(day: int, value: int, scl: int, month: int = 5) -> tuple[datetime, Callable[[], np.ndarray]]:
    stack = np.full((11, 2, 2), value, dtype=np.uint16)
    stack[10] = scl
    return datetime(2025, month, day, 10, 30, tzinfo=UTC), lambda: stack


def test_composite_is_the_median_of_clear_observations_only() -> None:
    bins = monthly_bins(2025, [5])
    cube = composite(
        [
            observation(1, 1000, SCL.VEGETATION),
            observation(6, 3000, SCL.VEGETATION),
            observation(11, 2000, SCL.NOT_VEGETATED),
            observation(16, 9000, SCL.CLOUD_HIGH_PROBABILITY),
        ],
        bins,
    )
    assert cube.shape == (1, 10, 2, 2)
    assert cube[0, 0, 0, 0] == pytest.approx(0.2)  # median of 0.1, 0.3, 0.2; the cloud is ignored


def test_scenes_outside_every_bin_are_never_read() -> None:
    def must_not_load():
        raise AssertionError("loaded a scene outside the bins")

    cube = composite(
        [observation(1, 1000, SCL.VEGETATION), (datetime(2025, 8, 1, tzinfo=UTC), must_not_load)],
        monthly_bins(2025, [5]),
    )
    assert cube.shape == (1, 10, 2, 2)


def test_a_bin_without_clear_observations_is_nan() -> None:
    cube = composite([observation(1, 1000, SCL.CLOUD_SHADOW)], monthly_bins(2025, [5, 6]))
    assert np.isnan(cube).all()


def test_gaps_are_filled_linearly_in_time_then_from_the_ends() -> None:
    series = np.array([np.nan, 0.2, np.nan, np.nan, 0.5, np.nan], dtype=np.float32)
    cube = np.broadcast_to(series[:, None, None, None], (6, 1, 1, 1)).copy()
    filled = fill_gaps(cube, [0.9])[:, 0, 0, 0]
    assert filled == pytest.approx([0.2, 0.2, 0.3, 0.4, 0.5, 0.5])


def test_a_pixel_never_seen_clear_takes_the_band_mean() -> None:
    cube = np.full((3, 2, 1, 1), np.nan, dtype=np.float32)
    assert fill_gaps(cube, [0.1, 0.3])[:, :, 0, 0].tolist() == [[pytest.approx(0.1), pytest.approx(0.3)]] * 3
