"""A training request names its parcels one way (a file or the catalogue's fields) and its legend
at most one way (a CSV file or rows of one), and inline rows follow the CSV's rules."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from pydantic import ValidationError

from cropai.errors import InvalidInput
from cropai.legend import Legend
from cropai.training_season import ParcelTraining

SEASON = {"start": date(2018, 10, 1), "end": date(2019, 9, 30), "label_column": "crop_code"}


@pytest.mark.parametrize(
    ("sources", "words"),
    [
        ({}, "one of fields_path"),
        ({"fields_path": "parcels.gpkg", "owner_id": 3}, "one of fields_path"),
        ({"fields_path": "parcels.gpkg", "field_ids": [1]}, "need owner_id"),
        ({"owner_id": 3, "legend_path": "legend.csv", "legend_records": []}, "not both"),
    ],
)
def test_a_request_names_its_parcels_once_and_its_legend_at_most_once(sources: dict[str, Any], words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        ParcelTraining(**SEASON, **sources)


def test_inline_legend_rows_merge_codes_of_one_class_and_ignore_codes() -> None:
    rows: list[dict[str, Any]] = [
        {"code": 1110, "class": "winter_wheat", "colour": "#e6c229"},
        {"code": "1500", "class": "barley"},
        {"code": 1510.0, "class": "barley"},
        {"code": 9999, "class": "ignore"},
    ]
    legend = ParcelTraining(owner_id=3, legend_records=rows, **SEASON).legend()
    assert legend is not None
    assert [(c.name, c.codes) for c in legend.classes] == [("winter_wheat", ("1110",)), ("barley", ("1500", "1510"))]
    assert legend.ignored == {"9999"} and legend.classes[0].colour == "#e6c229"


def test_a_bad_legend_row_is_named_by_its_number() -> None:
    with pytest.raises(InvalidInput, match=r"legend row 2: code '1110' is mapped to two classes.*\(legend row 1\)"):
        Legend.from_rows([{"code": 1110, "class": "wheat"}, {"code": "1110", "class": "barley"}])


def test_without_a_legend_each_value_is_a_class() -> None:
    assert ParcelTraining(owner_id=3, **SEASON).legend() is None
