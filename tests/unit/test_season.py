"""Seasons: monthly, 15- and 10-day bins, crossing the year, and windows checked against them."""

from datetime import date

import pytest
from pydantic import ValidationError

from cropai.errors import InvalidInput
from cropai.season import Season
from models.contract import ModelContract


def test_monthly_season_bins_are_whole_calendar_months() -> None:
    bins = Season(start_month=4, bins=6).time_bins(2025)
    assert [(b.start, b.end) for b in bins[:2]] == [
        (date(2025, 4, 1), date(2025, 4, 30)),
        (date(2025, 5, 1), date(2025, 5, 31)),
    ]
    assert bins[-1].end == date(2025, 9, 30)


def test_a_winter_cereal_season_crosses_the_year() -> None:
    bins = Season(start_month=10, bins=10).time_bins(2018)
    assert bins[0].start == date(2018, 10, 1)
    assert bins[3].start == date(2019, 1, 1)
    assert bins[-1].end == date(2019, 7, 31)


def test_ten_day_bins_are_dekads_ending_with_the_month() -> None:
    bins = Season(start_month=2, start_day=11, bins=3, bin_length="10d").time_bins(2024)
    assert [(b.start, b.end) for b in bins] == [
        (date(2024, 2, 11), date(2024, 2, 20)),
        (date(2024, 2, 21), date(2024, 2, 29)),
        (date(2024, 3, 1), date(2024, 3, 10)),
    ]


def test_fifteen_day_bins_split_each_month_in_two() -> None:
    bins = Season(start_month=12, start_day=16, bins=3, bin_length="15d").time_bins(2025)
    assert [(b.start, b.end) for b in bins] == [
        (date(2025, 12, 16), date(2025, 12, 31)),
        (date(2026, 1, 1), date(2026, 1, 15)),
        (date(2026, 1, 16), date(2026, 1, 31)),
    ]


def test_a_bin_must_start_on_a_bin_boundary() -> None:
    with pytest.raises(ValidationError, match="10d bins start on day 1 or 11 or 21"):
        Season(start_month=5, start_day=5, bins=3, bin_length="10d")


def test_a_window_is_matched_to_the_season_it_overlaps_most() -> None:
    season = Season(start_month=10, bins=12)
    bins = season.bins_in(date(2018, 9, 15), date(2019, 9, 30))
    assert bins[0].start == date(2018, 10, 1)
    assert bins[-1].end == date(2019, 9, 30)


def test_a_window_missing_bins_is_refused_naming_each_of_them() -> None:
    season = Season(start_month=10, bins=12)
    with pytest.raises(InvalidInput) as refused:
        season.bins_in(date(2019, 1, 1), date(2019, 9, 30))
    message = str(refused.value)
    assert "misses 3 of the season's bins (2018-10-01 to 2018-10-31, 2018-11-01 to 2018-11-30, 2018-12-01" in message
    assert "widen the window to 2018-10-01 to 2019-09-30" in message


def test_bins_are_clipped_to_the_window() -> None:
    bins = Season(start_month=4, bins=6).bins_in(date(2025, 4, 10), date(2025, 9, 20))
    assert (bins[0].start, bins[-1].end) == (date(2025, 4, 10), date(2025, 9, 20))


def test_contracts_written_with_calendar_months_read_as_a_monthly_season() -> None:
    contract = ModelContract.model_validate({"months": [4, 5, 6, 7, 8, 9], "band_means": [0.1], "band_stds": [0.1]})
    assert contract.season == Season(start_month=4, bins=6)
    assert "months" not in contract.model_dump()


def test_a_season_is_given_as_the_window_of_its_whole_bins() -> None:
    season = Season.spanning(date(2018, 10, 1), date(2019, 7, 31))
    assert season == Season(start_month=10, bins=10)
    assert Season.spanning(date(2025, 4, 1), date(2025, 4, 29), "10d").bins == 2


def test_a_season_starting_between_bin_boundaries_is_refused() -> None:
    with pytest.raises(InvalidInput, match="season start 2025-04-05: 15d bins start on day 1 or 16"):
        Season.spanning(date(2025, 4, 5), date(2025, 9, 30), "15d")
