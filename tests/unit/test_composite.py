import csv
import warnings
from collections.abc import Callable
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest
import rasterio

from cropai.composite import (
    TimeBin,
    clear_mask,
    clear_median,
    composite,
    fill_gaps,
    monthly_bins,
    sort_observations,
)
from cropai.sentinel2 import SCL
from cropai.synth import SynthSpec, synthesize
from testkit.realdata import realdata


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
    ).cube
    assert cube.shape == (1, 10, 2, 2)
    assert cube[0, 0, 0, 0] == pytest.approx(0.2)  # median of 0.1, 0.3, 0.2; the cloud is ignored


def test_scenes_outside_every_bin_are_never_read() -> None:
    def must_not_load():
        raise AssertionError("loaded a scene outside the bins")

    cube = composite(
        [observation(1, 1000, SCL.VEGETATION), (datetime(2025, 8, 1, tzinfo=UTC), must_not_load)],
        monthly_bins(2025, [5]),
    ).cube
    assert cube.shape == (1, 10, 2, 2)


def test_a_bin_without_clear_observations_is_nan() -> None:
    cube = composite([observation(1, 1000, SCL.CLOUD_SHADOW)], monthly_bins(2025, [5, 6])).cube
    assert np.isnan(cube).all()


def partly_cloudy(day: int, value: int, month: int, cloudy: list[tuple[int, int]]) -> tuple[datetime, Callable]:
    """A clear 2 x 2 observation with clouds over the ``cloudy`` (y, x) pixels."""
    moment, load = observation(day, value, SCL.VEGETATION, month)
    stack = load().copy()
    for y, x in cloudy:
        stack[10, y, x] = SCL.CLOUD_MEDIUM_PROBABILITY
    return moment, lambda: stack


def test_clear_observations_are_counted_per_bin_and_pixel() -> None:
    made = composite(
        [
            partly_cloudy(2, 1000, 5, cloudy=[(0, 0)]),
            partly_cloudy(12, 2000, 5, cloudy=[(0, 0), (0, 1)]),
            partly_cloudy(22, 3000, 5, cloudy=[]),
            partly_cloudy(5, 1000, 6, cloudy=[(0, 0), (0, 1), (1, 0), (1, 1)]),
            partly_cloudy(15, 1000, 6, cloudy=[(0, 0), (0, 1), (1, 0)]),
        ],
        monthly_bins(2025, [5, 6, 7]),
    )
    assert made.clear_counts.dtype == np.uint8
    assert made.clear_counts.tolist() == [
        [[1, 2], [3, 3]],  # May: three observations, the top row clouded in some
        [[0, 0], [0, 1]],  # June: one pixel seen once
        [[0, 0], [0, 0]],  # July: no observation at all
    ]


def test_counting_clear_observations_leaves_the_values_as_they_were() -> None:
    made = composite(
        [partly_cloudy(2, 1000, 5, cloudy=[(0, 0)]), partly_cloudy(12, 3000, 5, cloudy=[])],
        monthly_bins(2025, [5, 6]),
    )
    assert made.cube[0, :, 0, 0].tolist() == [np.float32(0.3)] * 10  # the one clear view, not the median of two
    assert made.cube[0, 0, 1, 1] == np.float32(0.2)  # median of 0.1 and 0.3
    assert np.isnan(made.cube[1]).all()


def test_clear_counts_saturate_at_255() -> None:
    many = [
        (datetime(2025, 5, 1 + i % 28, i % 24, tzinfo=UTC), observation(1, 1000, SCL.VEGETATION)[1]) for i in range(300)
    ]
    assert composite(many, monthly_bins(2025, [5])).clear_counts.max() == 255


def test_gaps_are_filled_linearly_in_time_then_from_the_ends() -> None:
    series = np.array([np.nan, 0.2, np.nan, np.nan, 0.5, np.nan], dtype=np.float32)
    cube = np.broadcast_to(series[:, None, None, None], (6, 1, 1, 1)).copy()
    filled = fill_gaps(cube, [0.9])[:, 0, 0, 0]
    assert filled == pytest.approx([0.2, 0.2, 0.3, 0.4, 0.5, 0.5])


def test_a_pixel_never_seen_clear_takes_the_band_mean() -> None:
    cube = np.full((3, 2, 1, 1), np.nan, dtype=np.float32)
    assert fill_gaps(cube, [0.1, 0.3])[:, :, 0, 0].tolist() == [[pytest.approx(0.1), pytest.approx(0.3)]] * 3


def nanmedian_composite(
    observations: list[tuple[datetime, Callable[[], np.ndarray]]], bins: list[TimeBin]
) -> np.ndarray:
    """The composite as the plain formula gives it: NaN for unclear observations, np.nanmedian."""
    cube = np.full((len(bins), 10, *observations[0][1]().shape[1:]), np.nan, dtype=np.float32)
    for index, time_bin in enumerate(bins):
        stacks = []
        for moment, load in observations:
            if time_bin.contains(moment):
                stack = load()
                reflectance = stack[:10].astype(np.float32) / 10_000
                reflectance[:, ~clear_mask(stack[10])] = np.nan
                stacks.append(reflectance)
        if stacks:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                cube[index] = np.nanmedian(np.stack(stacks), axis=0)
    return cube


def scene_files(paths: list[tuple[datetime, Path]]) -> list[tuple[datetime, Callable[[], np.ndarray]]]:
    def loader(path: Path) -> Callable[[], np.ndarray]:
        def load() -> np.ndarray:
            with rasterio.open(path) as src:
                return src.read()

        return load

    return [(moment, loader(path)) for moment, path in paths]


@pytest.mark.parametrize("on", ["cpu", "torch"])
def test_composites_of_a_real_season_equal_the_nanmedian_of_clear_reflectances_bit_for_bit(on: str) -> None:
    from models.gpu_composite import device_clear_median

    median = device_clear_median("cpu") if on == "torch" else None  # torch: the CUDA workers' code path
    season = realdata("worldcereal-flanders-2019")
    rows = list(csv.DictReader((season / "scenes.csv").open()))
    observations = scene_files(
        [(datetime.fromisoformat(r["acquired_at"].replace("Z", "+00:00")), season / r["file"]) for r in rows]
    )
    bins = [b for year in (2018, 2019) for b in monthly_bins(year, range(1, 13))]
    made = composite(observations, bins, median=median).cube
    assert np.isfinite(made).any() and np.isnan(made).any()  # clear and unseen pixels both occur
    assert np.array_equal(made, nanmedian_composite(observations, bins), equal_nan=True)


def test_composites_of_a_cloudy_generated_season_equal_the_nanmedian_bit_for_bit(tmp_path: Path) -> None:
    spec = SynthSpec((1.600, 48.200, 1.610, 48.207), date(2025, 3, 25), date(2025, 10, 5), seed=3, mean_cloud_cover=0.5)
    made = synthesize(spec, tmp_path)
    observations = scene_files([(scene.acquired_at, scene.path) for scene in made.scenes])
    bins = monthly_bins(2025, range(4, 10))
    assert np.array_equal(composite(observations, bins).cube, nanmedian_composite(observations, bins), equal_nan=True)


@pytest.mark.parametrize("clear_views", [0, 1, 2, 3, 4, 7])
def test_the_median_of_odd_and_even_numbers_of_clear_views_is_numpys(clear_views: int) -> None:
    rng = np.random.default_rng(clear_views)
    numbers = rng.integers(0, 65535, size=(7, 10, 16, 16), dtype=np.uint16)
    clear = np.zeros((7, 16, 16), dtype=bool)
    clear[:clear_views] = True
    rng.shuffle(clear, axis=0)
    reflectance = numbers.astype(np.float32) / 10_000
    reflectance[np.broadcast_to(~clear[:, None], reflectance.shape)] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = np.nanmedian(reflectance, axis=0)
    assert np.array_equal(clear_median(numbers.copy(), clear), expected, equal_nan=True)


@pytest.mark.parametrize("observations", [1, 2, 3, 5, 7, 8, 13, 16, 17, 40])
def test_observations_sort_as_numpy_sorts_them(observations: int) -> None:
    numbers = np.random.default_rng(observations).integers(0, 65536, (observations, 3, 9, 11), dtype=np.uint16)
    numbers[:, 0, 0, 0] = 7  # ties
    sorted_by_numpy = np.sort(numbers, axis=0)
    sort_observations(numbers)
    assert np.array_equal(numbers, sorted_by_numpy)


def test_the_median_on_a_torch_device_gives_the_cpu_values() -> None:
    """The code path CUDA workers take, run on the CPU device: the same numbers."""
    from models.gpu_composite import device_clear_median

    rng = np.random.default_rng(5)
    for observations in (1, 2, 6, 7, 20):
        numbers = rng.integers(0, 12000, (observations, 10, 33, 41), dtype=np.uint16)
        clear = rng.random((observations, 33, 41)) < 0.6
        expected = clear_median(numbers.copy(), clear)
        on_device = device_clear_median("cpu")(numbers.copy(), clear)
        assert on_device.dtype == np.float32 and on_device.shape == expected.shape
        assert np.array_equal(on_device, expected, equal_nan=True)
