"""Accuracy and area from a stratified reference sample: the estimators of Olofsson et al. 2014.

Counting a map's pixels gives its areas with the map's errors in them. A stratified random
sample of reference labels, with the map's classes as strata, gives unbiased estimates of
each class's area and of the map's accuracies, with their standard errors (Olofsson, Foody,
Herold, Stehman, Woodcock & Wulder, "Good practices for estimating area and assessing
accuracy of land change", Remote Sensing of Environment 148:42-57, 2014; equations 2-10).
Rows are map classes (the strata), columns reference classes, in the same class order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cropai.errors import InvalidInput

Z_95 = 1.96  # the normal quantile of a two-sided 95 % interval, as the paper uses


@dataclass(frozen=True)
class Estimate:
    """A value with its standard error; ``half_width`` is the 95 % interval's half-width."""

    value: float
    standard_error: float

    @property
    def half_width(self) -> float:
        return Z_95 * self.standard_error

    @property
    def interval(self) -> tuple[float, float]:
        return self.value - self.half_width, self.value + self.half_width


@dataclass(frozen=True)
class StratifiedAssessment:
    """What a stratified sample says of a map: ``proportions`` is the area-weighted error
    matrix (p_ij, rows map, columns reference, summing to 1); areas are in the unit of the
    mapped areas given (pixels, hectares)."""

    classes: tuple[str, ...]
    proportions: npt.NDArray[np.float64]
    areas: tuple[Estimate, ...]  # error-adjusted area of each reference class
    users_accuracy: tuple[Estimate, ...]
    producers_accuracy: tuple[Estimate, ...]
    overall_accuracy: Estimate


def stratified_assessment(
    counts: npt.ArrayLike, mapped_areas: npt.ArrayLike, classes: Sequence[str]
) -> StratifiedAssessment:
    """The estimators from ``counts`` (sample counts, rows map class, columns reference class)
    and the mapped area of each map class (its stratum's size)."""
    n = np.asarray(counts, dtype=np.float64)
    area = np.asarray(mapped_areas, dtype=np.float64)
    _check(n, area, classes)
    total = area.sum()
    weights = area / total  # W_i
    per_stratum = n.sum(axis=1)  # n_i.
    # A class the map never shows can still be a reference class: its stratum has no area, weighs
    # nothing, and its user's accuracy is undefined (NaN).
    mapped_stratum = area > 0
    share = np.divide(n, per_stratum[:, None], out=np.zeros_like(n), where=mapped_stratum[:, None])  # n_ij / n_i.
    p = weights[:, None] * share  # equation 4
    mapped = p.sum(axis=1)
    reference = p.sum(axis=0)
    users = np.divide(np.diag(p), mapped, out=np.full(len(classes), np.nan), where=mapped_stratum)  # equation 2
    producers = np.divide(np.diag(p), reference, out=np.zeros(len(classes)), where=reference > 0)  # equation 3
    within = np.divide(
        share * (1 - share), per_stratum[:, None] - 1, out=np.zeros_like(n), where=mapped_stratum[:, None]
    )
    area_se = np.sqrt((weights[:, None] ** 2 * within).sum(axis=0)) * total  # equation 10, scaled
    users_var = np.divide(users * (1 - users), per_stratum - 1, out=np.full(len(classes), np.nan), where=mapped_stratum)
    users_se = np.sqrt(users_var)  # equation 6
    overall_se = math.sqrt(float((weights**2 * users_var)[mapped_stratum].sum()))  # equation 5
    return StratifiedAssessment(
        tuple(classes),
        p,
        tuple(Estimate(float(a), float(s)) for a, s in zip(reference * total, area_se, strict=True)),
        tuple(Estimate(float(u), float(s)) for u, s in zip(users, users_se, strict=True)),
        tuple(
            Estimate(float(producers[j]), _producers_se(n, area, per_stratum, users, producers, j))
            for j in range(len(classes))
        ),
        Estimate(float(np.trace(p)), overall_se),
    )


def _producers_se(
    n: npt.NDArray[np.float64],
    area: npt.NDArray[np.float64],
    per_stratum: npt.NDArray[np.float64],
    users: npt.NDArray[np.float64],
    producers: npt.NDArray[np.float64],
    j: int,
) -> float:
    """Equation 7: the producer's accuracy of class ``j``, its variance from every stratum."""
    reference_total = float(
        (area * np.divide(n[:, j], per_stratum, out=np.zeros(len(area)), where=area > 0)).sum()
    )  # N-hat_.j
    if reference_total == 0:
        return 0.0
    own = area[j] ** 2 * (1 - producers[j]) ** 2 * users[j] * (1 - users[j]) / (per_stratum[j] - 1) if area[j] else 0.0
    others = sum(
        area[i] ** 2 * (n[i, j] / per_stratum[i]) * (1 - n[i, j] / per_stratum[i]) / (per_stratum[i] - 1)
        for i in range(len(area))
        if i != j and area[i] > 0
    )
    return math.sqrt(float(own + producers[j] ** 2 * others)) / reference_total


def _check(n: npt.NDArray[np.float64], area: npt.NDArray[np.float64], classes: Sequence[str]) -> None:
    size = len(classes)
    if n.shape != (size, size) or area.shape != (size,):
        raise InvalidInput(
            f"a {size}-class assessment needs a {size} x {size} matrix of sample counts and {size} mapped "
            f"areas: got {n.shape} and {area.shape}"
        )
    thin = [classes[i] for i in range(size) if area[i] > 0 and n[i].sum() < 2]
    if thin:
        raise InvalidInput(
            f"map class(es) {', '.join(thin)} have fewer than 2 sample points: every stratum needs at least two "
            "to estimate its variance"
        )
    if (n < 0).any() or (area < 0).any() or area.sum() <= 0:
        raise InvalidInput("sample counts and mapped areas must be non-negative, with some mapped area")


def sample_size(mapped_areas: npt.ArrayLike, expected_users_accuracy: Sequence[float], target_overall_se: float) -> int:
    """Total sample size for a target standard error of overall accuracy (equation 13:
    n = (sum W_i S_i / S(O))^2 with S_i = sqrt(U_i (1 - U_i)))."""
    area = np.asarray(mapped_areas, dtype=np.float64)
    users = np.asarray(expected_users_accuracy, dtype=np.float64)
    if not 0 < target_overall_se < 1 or ((users <= 0) | (users >= 1)).any():
        raise InvalidInput("the target standard error and the expected user's accuracies must lie between 0 and 1")
    spread = float((area / area.sum() * np.sqrt(users * (1 - users))).sum())
    return math.ceil((spread / target_overall_se) ** 2)


def allocate(total: int, mapped_areas: npt.ArrayLike, minimum: int) -> list[int]:
    """Sample points per stratum: ``minimum`` for each small stratum, the rest in proportion to
    area (section 5.1.2: rare classes get enough points for their user's accuracy)."""
    area = np.asarray(mapped_areas, dtype=np.float64)
    counts = np.full(len(area), minimum)
    large = area / area.sum() * total > minimum
    while True:
        rest = total - minimum * int((~large).sum())
        proportional = np.round(area * large / max(area[large].sum(), 1e-12) * rest).astype(int)
        now_small = large & (proportional < minimum)
        if not now_small.any():
            break
        large &= ~now_small
    counts[large] = proportional[large]
    return [int(c) for c in counts]
