"""Reference labels as people give them back: a class name or a code of a model's legend, on the
labelled points of a sample design (its CSV or GeoJSON with the label column filled in)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cropai.errors import InvalidInput
from cropai.legend import Legend, LegendClass, normalise_code

LABEL_COLUMNS = ("label", "reference_class")  # the filled-in column; the design exports the second empty
MAX_NAMED = 10  # points or values named in one message


@dataclass(frozen=True)
class LabelledPoint:
    """A labelled point of a sample design (EPSG:4326): the map class it was drawn from (its
    stratum) and the class a labeller saw there."""

    point_id: int
    lon: float
    lat: float
    stratum_id: int
    label_class_id: int


def class_of_label(legend: Legend, value: object) -> LegendClass | None:
    """The legend class a reference label stands for: a class name (any case) or one of its
    codes; None when the legend ignores the code. Raises LookupError for any other value."""
    text = normalise_code(value)
    named = {c.name.casefold(): c for c in legend.classes}.get(text.casefold())
    return named if named is not None else legend.class_for(text)


def unknown_labels_error(values: Iterable[str], legend: Legend) -> InvalidInput:
    named = ", ".join(repr(v) for v in sorted(set(values))[:MAX_NAMED])
    classes = ", ".join(
        c.name + (f" (codes {', '.join(c.codes)})" if c.codes and list(c.codes) != [c.name] else "")
        for c in legend.classes
    )
    return InvalidInput(f"labels {named} are not classes of the map's legend: use a class name or code of {classes}")


def read_sample_labels(content: bytes, legend: Legend) -> tuple[LabelledPoint, ...]:
    """The labelled points of a sample design file: the design's CSV with a filled ``label``
    column, or its GeoJSON with a ``label`` property (``reference_class``, as exported, works
    too). A label is a class name or code of ``legend``; points without one are not labelled yet
    and left out. InvalidInput names what is wrong: a missing column, unknown labels, no label."""
    try:
        text = content.decode("utf-8-sig")  # Excel writes a byte-order mark
    except UnicodeDecodeError:
        raise InvalidInput("the sample labels are not UTF-8 text: save the file as UTF-8") from None
    records = _geojson_records(text) if text.lstrip().startswith("{") else _csv_records(text)
    by_name = legend.by_name()
    points, unknown, seen = [], [], set()
    for number, record in enumerate(records, start=1):
        label = normalise_code(next((record[c] for c in LABEL_COLUMNS if record.get(c) not in (None, "")), ""))
        if not label:
            continue
        try:
            labelled = class_of_label(legend, label)
        except LookupError:
            unknown.append(label)
            continue
        if labelled is None:
            continue  # a code the legend ignores: no class to compare with
        point = _point(record, number, labelled.id, by_name)
        if point.point_id in seen:
            raise InvalidInput(f"point {point.point_id} appears twice: keep one label per point")
        seen.add(point.point_id)
        points.append(point)
    if unknown:
        raise unknown_labels_error(unknown, legend)
    if not points:
        raise InvalidInput(
            "no point has a label: fill the label column (CSV) or property (GeoJSON) with the class seen at each point"
        )
    return tuple(points)


def _csv_records(text: str) -> list[dict[str, Any]]:
    reader = csv.DictReader(io.StringIO(text))
    columns = [c.strip() for c in reader.fieldnames or ()]
    missing = [c for c in ("point_id", "lon", "lat") if c not in columns]
    if missing or not ({"map_class_id", "map_class"} & set(columns)):
        raise InvalidInput(
            f"the sample labels lack the column(s) {', '.join(missing) or 'map_class_id'}: found "
            f"{', '.join(columns) or 'none'}; send the design's CSV (point_id, lon, lat, map_class, map_class_id) "
            "with a label column filled in"
        )
    return [{k.strip(): (v or "").strip() for k, v in row.items() if k is not None} for row in reader]


def _geojson_records(text: str) -> list[dict[str, Any]]:
    try:
        collection = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"the sample labels are not valid JSON: {exc}") from None
    if not isinstance(collection, dict) or collection.get("type") != "FeatureCollection":
        raise InvalidInput("the sample labels must be the design's GeoJSON FeatureCollection or its CSV")
    records = []
    for number, feature in enumerate(collection.get("features") or [], start=1):
        geometry = (feature or {}).get("geometry") or {}
        if geometry.get("type") != "Point":
            raise InvalidInput(f"feature {number} is not a Point: send the design's points")
        lon, lat = geometry["coordinates"][:2]
        records.append({**(feature.get("properties") or {}), "lon": lon, "lat": lat})
    return records


def _point(record: Mapping[str, Any], number: int, label_id: int, by_name: Mapping[str, LegendClass]) -> LabelledPoint:
    try:
        stratum = record.get("map_class_id")
        if stratum in (None, ""):
            stratum = by_name[str(record.get("map_class"))].id
        return LabelledPoint(
            int(record["point_id"]), float(record["lon"]), float(record["lat"]), int(stratum), label_id
        )
    except (KeyError, TypeError, ValueError):
        raise InvalidInput(
            f"point {number}: point_id, lon, lat and map_class_id must be numbers as the design exported them"
        ) from None
