"""The stratified estimators against the worked example of Olofsson et al. 2014, section 5:
a change map of four classes on 30 m pixels (0.09 ha), 640 reference points."""

import pytest

from cropai.accuracy import allocate, sample_size, stratified_assessment
from cropai.errors import InvalidInput

CLASSES = ("deforestation", "forest gain", "stable forest", "stable non-forest")
MAPPED_PIXELS = (200_000, 150_000, 3_200_000, 6_450_000)
COUNTS = [  # rows: map class; columns: reference class (the paper's Table 8)
    [66, 0, 5, 4],
    [0, 55, 8, 12],
    [1, 0, 153, 11],
    [2, 1, 9, 313],
]
PIXEL_HA = 0.09


@pytest.fixture(scope="module")
def example():
    return stratified_assessment(COUNTS, [p * PIXEL_HA for p in MAPPED_PIXELS], CLASSES)


def test_error_adjusted_areas_and_their_intervals_are_the_published_ones(example) -> None:
    assert [round(a.value) for a in example.areas] == [21_158, 11_686, 285_770, 581_386]
    assert [round(a.half_width) for a in example.areas] == [6_158, 3_756, 15_510, 16_282]


def test_users_producers_and_overall_accuracy_with_intervals_are_the_published_ones(example) -> None:
    assert [round(u.value, 2) for u in example.users_accuracy] == [0.88, 0.73, 0.93, 0.96]
    assert [round(u.half_width, 2) for u in example.users_accuracy] == [0.07, 0.10, 0.04, 0.02]
    assert [round(p.value, 2) for p in example.producers_accuracy] == [0.75, 0.85, 0.93, 0.96]
    assert [round(p.half_width, 2) for p in example.producers_accuracy] == [0.21, 0.25, 0.03, 0.02]
    assert (round(example.overall_accuracy.value, 2), round(example.overall_accuracy.half_width, 2)) == (0.95, 0.02)


def test_the_area_weighted_matrix_sums_to_one_with_map_proportions_as_rows(example) -> None:
    assert example.proportions.sum() == pytest.approx(1.0)
    assert list(example.proportions.sum(axis=1)) == pytest.approx([0.02, 0.015, 0.32, 0.645])


def test_sample_size_for_a_target_standard_error_of_overall_accuracy() -> None:
    # Section 5.1: expected user's accuracies 0.7, 0.6, 0.9, 0.95 and S(O) = 0.01 give n = 641.
    assert sample_size(MAPPED_PIXELS, (0.7, 0.6, 0.9, 0.95), 0.01) == 641


def test_small_strata_get_the_minimum_and_the_rest_follows_area() -> None:
    counts = allocate(641, MAPPED_PIXELS, minimum=75)
    assert counts[:2] == [75, 75] and sum(counts) == pytest.approx(641, abs=1)
    assert counts[3] / counts[2] == pytest.approx(6_450_000 / 3_200_000, rel=0.02)


def test_a_stratum_with_fewer_than_two_points_is_refused_by_name() -> None:
    with pytest.raises(InvalidInput, match="forest gain"):
        stratified_assessment([[66, 0, 5, 4], [0, 1, 0, 0], [1, 0, 153, 11], [2, 1, 9, 313]], MAPPED_PIXELS, CLASSES)


def test_intervals_cover_the_true_areas_at_their_stated_confidence() -> None:
    """A map of known truth with 15 % of its pixels wrong, sampled 200 times: the 95 % intervals
    of the error-adjusted areas hold the true areas about 95 % of the time."""
    import numpy as np

    rng = np.random.default_rng(7)
    truth = rng.choice(4, size=200_000, p=[0.5, 0.3, 0.15, 0.05])
    wrong = rng.uniform(size=truth.size) < 0.15
    mapped = np.where(wrong, rng.choice(4, size=truth.size), truth)
    true_areas = np.bincount(truth, minlength=4)
    mapped_areas = np.bincount(mapped, minlength=4)
    per_stratum = allocate(sample_size(mapped_areas, (0.85, 0.85, 0.85, 0.6), 0.01), mapped_areas, minimum=50)
    members = [np.flatnonzero(mapped == k) for k in range(4)]
    covered = []
    for _ in range(200):
        counts = np.zeros((4, 4), int)
        for k, size in enumerate(per_stratum):
            np.add.at(counts[k], truth[rng.choice(members[k], size, replace=False)], 1)
        areas = stratified_assessment(counts, mapped_areas, "abcd").areas
        covered += [
            low <= true <= high for (low, high), true in zip((a.interval for a in areas), true_areas, strict=True)
        ]
    assert 0.92 <= np.mean(covered) <= 0.98
