"""A model's season: when it starts, how many time bins it has and how long each is.

Seasons are a property of a region and its crops, not of the calendar: winter
cereals in western Europe are sown in October and harvested the next July, the
southern hemisphere's summer crops grow from October to March, and dekadal
(10-day) composites are common where crops grow fast. A season therefore starts
on any month (and, for 10- and 15-day bins, on a bin boundary of the month) and
may cross the year. Bins are whole days, both ends inclusive (UTC dates).
"""

from __future__ import annotations

import calendar
import itertools
from collections.abc import Mapping, Sequence
from datetime import date, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cropai.composite import TimeBin
from cropai.errors import InvalidInput

BinLength = Literal["month", "15d", "10d"]
# Where a bin of each length may start within a month: 10-day bins are dekads (1-10, 11-20,
# 21-end of month), 15-day bins halves of the month (1-15, 16-end).
BIN_STARTS: dict[str, tuple[int, ...]] = {"10d": (1, 11, 21), "15d": (1, 16)}
MAX_BINS = 36


def _reason(exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    return str(errors()[0]["msg"]).removeprefix("Value error, ") if callable(errors) else str(exc)


class Season(BaseModel):
    """``bins`` consecutive time bins of ``bin_length``, the first starting on ``start_day``
    of ``start_month``; the season "of year Y" is the one that starts in Y."""

    model_config = ConfigDict(frozen=True)

    start_month: int = Field(ge=1, le=12)
    start_day: int = Field(default=1, ge=1, le=28)
    bins: int = Field(ge=1, le=MAX_BINS)
    bin_length: BinLength = "month"

    @model_validator(mode="after")
    def _start_on_a_bin_boundary(self) -> Season:
        starts = BIN_STARTS.get(self.bin_length)
        if starts and self.start_day not in starts:
            raise ValueError(f"{self.bin_length} bins start on day {' or '.join(map(str, starts))} of a month")
        return self

    @classmethod
    def of_months(cls, months: Sequence[int]) -> Season:
        """The monthly season of a list of consecutive calendar months (how older contracts say it)."""
        if not months or any((b - a) % 12 != 1 for a, b in itertools.pairwise(months)):
            raise InvalidInput(f"months {list(months)}: a season is consecutive calendar months")
        return cls(start_month=months[0], bins=len(months))

    @classmethod
    def of_contract(cls, contract: Mapping[str, Any]) -> Season:
        """A stored model contract's season; contracts written before seasons list calendar months."""
        if "season" in contract:
            return cls.model_validate(contract["season"])
        return cls.of_months(contract["months"])

    @classmethod
    def spanning(cls, start: date, end: date, bin_length: BinLength = "month") -> Season:
        """The season of the whole bins from ``start`` that end by ``end``: how a user says it,
        e.g. 2018-10-01 to 2019-07-31 for a winter cereal season."""
        try:
            first = cls(start_month=start.month, start_day=start.day, bins=1, bin_length=bin_length)
        except ValueError as exc:
            raise InvalidInput(f"season start {start}: {_reason(exc)}") from None
        whole = [b for b in first.model_copy(update={"bins": MAX_BINS}).time_bins(start.year) if b.end <= end]
        if not whole:
            raise InvalidInput(f"season {start} to {end} is shorter than one {bin_length} bin")
        return first.model_copy(update={"bins": len(whole)})

    def describe(self) -> str:
        length = {"month": "monthly", "15d": "15-day", "10d": "10-day"}[self.bin_length]
        return f"{self.bins} {length} bins from {self.start_day} {calendar.month_name[self.start_month]}"

    def time_bins(self, year: int) -> list[TimeBin]:
        """The bins of the season that starts in ``year``."""
        bins = []
        start = date(year, self.start_month, self.start_day)
        for _ in range(self.bins):
            following = self._next_start(start)
            bins.append(TimeBin(start, following - timedelta(days=1)))
            start = following
        return bins

    def _next_start(self, start: date) -> date:
        if self.bin_length == "month":
            month = start.month % 12 + 1
            return date(start.year + (month == 1), month, start.day)
        starts = BIN_STARTS[self.bin_length]
        later = [day for day in starts if day > start.day]
        if later:
            return start.replace(day=later[0])
        month = start.month % 12 + 1
        return date(start.year + (month == 1), month, starts[0])

    def window(self, year: int) -> tuple[date, date]:
        """First and last day of the season that starts in ``year``."""
        bins = self.time_bins(year)
        return bins[0].start, bins[-1].end

    def year_of(self, start: date, end: date) -> int:
        """The season that a date window is about: of those starting the year before, during or
        after the window's start, the one it overlaps most (the later one on a tie)."""

        def overlap(year: int) -> int:
            first, last = self.window(year)
            return (min(last, end) - max(first, start)).days

        return max((start.year - 1, start.year, start.year + 1), key=lambda year: (overlap(year), year))

    def bins_in(self, start: date, end: date) -> tuple[TimeBin, ...]:
        """The season's bins for a date window, clipped to it. The model needs every bin: a bin
        the window misses entirely is an error naming each missing bin."""
        year = self.year_of(start, end)
        bins = [TimeBin(max(b.start, start), min(b.end, end)) for b in self.time_bins(year)]
        missing = [b for b, clipped in zip(self.time_bins(year), bins, strict=True) if clipped.start > clipped.end]
        if missing:
            named = ", ".join(f"{b.start} to {b.end}" for b in missing)
            first, last = self.window(year)
            raise InvalidInput(
                f"date window {start} to {end} misses {len(missing)} of the season's bins ({named}): the model "
                f"composites {self.describe()}; widen the window to {first} to {last}"
            )
        return tuple(bins)
