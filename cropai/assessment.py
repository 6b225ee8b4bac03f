"""How far to trust a crop map: its accuracy and error-adjusted class areas, from reference data.

Two kinds of reference data are read:

* the labelled points of a sample design (:mod:`cropai.sample_design`): a stratified random
  sample with the map's classes as strata, so the estimators of :mod:`cropai.accuracy`
  (Olofsson et al. 2014) give unbiased areas and accuracies with 95 % confidence intervals;
* reference fields (``FieldParcel.purpose == reference``): polygons whose crop is known. Their
  pixels are compared with the map's; the same estimators treat the pixels as the sample within
  each map class, but fields are not a probability sample, so those intervals are indicative.

The result is one JSON record (``assessment_record``), stored per analysis and shown by the viewer.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from affine import Affine
from sqlalchemy import delete, exists, insert, select
from sqlalchemy.orm import Session, sessionmaker

from cropai.accuracy import Estimate, stratified_assessment
from cropai.analysis_records import model_legend
from cropai.db import Analysis, Assessment, FieldParcel, FieldPurpose, ReferenceSample, session_scope
from cropai.errors import InvalidInput
from cropai.legend import Legend, LegendClass
from cropai.reference_labels import MAX_NAMED, LabelledPoint, class_of_label, read_sample_labels, unknown_labels_error
from cropai.storage import ObjectStore

NO_REFERENCE_DATA = (
    "no reference data in the AOI: upload reference fields (POST /fields?purpose=reference) or label a "
    "sample design (POST /analyses/{id}/sample-labels)"
)
SAMPLE_NOTE = (
    "Estimated from a stratified random sample of the map (Olofsson et al. 2014): the intervals are 95 % "
    "confidence intervals."
)
FIELDS_NOTE = (
    "Reference fields are not a probability sample: their pixels stand in for one within each map class, "
    "so the intervals are indicative only."
)


@dataclass(frozen=True)
class ClassMap:
    """A crop map's class band: ``labels`` (y, x) uint8 class ids (0 = no data) on ``transform``
    in ``crs``."""

    labels: npt.NDArray[np.uint8]
    transform: Affine
    crs: str

    @property
    def pixel_area_ha(self) -> float:
        t = self.transform
        return abs(t.a * t.e - t.b * t.d) / 10_000

    def mapped_area_ha(self, class_ids: Sequence[int]) -> npt.NDArray[np.float64]:
        counts = np.bincount(self.labels.ravel(), minlength=256)
        return np.array([counts[k] for k in class_ids], dtype=np.float64) * self.pixel_area_ha

    def classes_at(self, lons: Sequence[float], lats: Sequence[float]) -> npt.NDArray[np.int64]:
        """The class id at each EPSG:4326 point; -1 outside the map."""
        from rasterio.warp import transform as transform_points  # GDAL loads when a map is read, not with the API

        xs, ys = transform_points("EPSG:4326", self.crs, list(lons), list(lats))
        cols, rows = ~self.transform * (np.asarray(xs), np.asarray(ys))
        rows, cols = np.floor(rows).astype(np.int64), np.floor(cols).astype(np.int64)
        height, width = self.labels.shape
        inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
        found = np.full(len(rows), -1, dtype=np.int64)
        found[inside] = self.labels[rows[inside], cols[inside]]
        return found


def read_class_map(store: ObjectStore, map_key: str) -> ClassMap:
    """The class band of a stored crop-map COG, whole."""
    import rasterio

    with store.gdal_env(), rasterio.open(store.gdal_path(map_key)) as src:
        return ClassMap(src.read(1), src.transform, src.crs.to_string())


@dataclass(frozen=True)
class ReferenceField:
    """A reference field: its polygon (GeoJSON, EPSG:4326) and its crop as uploaded."""

    field_id: int
    geometry: dict[str, Any]
    label: str


@dataclass(frozen=True)
class FieldAgreement:
    """Each assessed reference field's majority map class against its label (fields that cover
    no mapped pixel are not assessed); ``disagreeing`` as (field id, reference, predicted) names."""

    assessed: int
    agreeing: int
    disagreeing: tuple[tuple[int, str, str], ...]

    def as_record(self) -> dict[str, Any]:
        return {
            "assessed": self.assessed,
            "agreeing": self.agreeing,
            "agreement": self.agreeing / self.assessed if self.assessed else None,
            "disagreeing": [
                {"field_id": field_id, "reference": reference, "predicted": predicted}
                for field_id, reference, predicted in self.disagreeing
            ],
        }


def check_strata(points: Sequence[LabelledPoint], class_map: ClassMap) -> None:
    """Each point's stratum must be the map's class at the point: otherwise the file belongs to
    another map's design."""
    found = class_map.classes_at([p.lon for p in points], [p.lat for p in points])
    foreign = [p.point_id for p, k in zip(points, found, strict=True) if k != p.stratum_id or k <= 0]
    if foreign:
        named = ", ".join(map(str, foreign[:MAX_NAMED])) + (
            f" and {len(foreign) - MAX_NAMED} more" if len(foreign) > MAX_NAMED else ""
        )
        raise InvalidInput(
            f"points {named} do not lie on their map class in this analysis' map: the file is the sample design "
            "of another map; label a design drawn from this one (POST /analyses/{id}/sample-design)"
        )


# --- assessing ------------------------------------------------------------------------------------


def assess_sample(
    points: Sequence[LabelledPoint], class_map: ClassMap, legend: Legend, analysis_id: uuid.UUID
) -> dict[str, Any]:
    """The assessment from labelled sample points: counts per (stratum, label), the strata's
    mapped areas as weights. A stratum with fewer than two points is an InvalidInput naming it."""
    mapped = np.bincount(class_map.labels.ravel(), minlength=256)
    classes = _classes(legend, {k for k in legend.by_id() if mapped[k]} | {p.label_class_id for p in points})
    index = {c.id: i for i, c in enumerate(classes)}
    foreign = sorted({p.stratum_id for p in points} - index.keys())
    if foreign:
        raise InvalidInput(f"map class ids {foreign} of the sample are not classes of the map's legend")
    counts = np.zeros((len(classes), len(classes)), dtype=np.int64)
    for p in points:
        counts[index[p.stratum_id], index[p.label_class_id]] += 1
    areas = class_map.mapped_area_ha([c.id for c in classes])
    return assessment_record(analysis_id, "sample", "points", classes, counts, areas, areas, None, SAMPLE_NOTE)


def assess_fields(
    fields: Sequence[ReferenceField], class_map: ClassMap, legend: Legend, analysis_id: uuid.UUID
) -> dict[str, Any]:
    """The assessment from reference fields: each field's pixels in the map against its label.

    The estimators take the reference pixels of each map class as that stratum's sample; a map
    class with fewer than two reference pixels cannot be estimated and its area is left out of
    them (the note names it). Labels the legend does not know are an InvalidInput naming them."""
    labelled, unknown = [], []
    for field in fields:
        try:
            cls = class_of_label(legend, field.label)
        except LookupError:
            unknown.append(field.label)
            continue
        if cls is not None:
            labelled.append((field, cls))
    if unknown:
        raise unknown_labels_error(unknown, legend)
    pairs = np.zeros((256, 256), dtype=np.int64)  # map class x reference class, in pixels
    agreeing, disagreeing, assessed = 0, [], 0
    names = {c.id: c.name for c in legend.classes}
    for field, cls in labelled:
        mapped = field_pixels(field.geometry, class_map)
        mapped = mapped[mapped > 0]
        if not mapped.size:
            continue
        per_class = np.bincount(mapped, minlength=256)
        pairs[:, cls.id] += per_class
        assessed += 1
        majority = int(per_class.argmax())
        if majority == cls.id:
            agreeing += 1
        else:
            disagreeing.append((field.field_id, cls.name, names.get(majority, str(majority))))
    if not assessed:
        raise InvalidInput(
            "the reference fields in the AOI cover no mapped pixel of the map: upload reference fields inside it"
        )
    on_map = np.bincount(class_map.labels.ravel(), minlength=256)
    referenced = {k for k in range(256) if pairs[:, k].any()}
    classes = _classes(legend, {k for k in legend.by_id() if on_map[k]} | referenced)
    ids = [c.id for c in classes]
    counts = pairs[np.ix_(ids, ids)]
    areas = class_map.mapped_area_ha(ids)
    unsampled = [c.name for c, row, area in zip(classes, counts, areas, strict=True) if area > 0 and row.sum() < 2]
    note = FIELDS_NOTE + (
        f" Map class(es) {', '.join(unsampled)} have fewer than 2 reference pixels: their mapped area is left out "
        "of the estimated areas and accuracies."
        if unsampled
        else ""
    )
    weights = np.where(counts.sum(axis=1) >= 2, areas, 0.0)
    if not weights.any():
        raise InvalidInput(
            "the reference fields cover fewer than 2 pixels of each map class: too few to assess the map; "
            "upload larger reference fields"
        )
    agreement = FieldAgreement(assessed, agreeing, tuple(disagreeing))
    return assessment_record(analysis_id, "fields", "pixels", classes, counts, areas, weights, agreement, note)


def field_pixels(geometry: dict[str, Any], class_map: ClassMap) -> npt.NDArray[np.uint8]:
    """The map's class ids of the pixels whose centres lie in a polygon (GeoJSON, EPSG:4326)."""
    from rasterio.features import rasterize
    from rasterio.warp import transform_geom

    local = transform_geom("EPSG:4326", class_map.crs, geometry)
    minx, miny, maxx, maxy = shapely.geometry.shape(local).bounds
    cols, rows = ~class_map.transform * (np.array([minx, maxx, minx, maxx]), np.array([miny, miny, maxy, maxy]))
    height, width = class_map.labels.shape
    col0, col1 = max(0, math.floor(cols.min())), min(width, math.ceil(cols.max()))
    row0, row1 = max(0, math.floor(rows.min())), min(height, math.ceil(rows.max()))
    if col0 >= col1 or row0 >= row1:
        return np.zeros(0, dtype=np.uint8)  # off the map
    inside = rasterize(
        [(local, 1)],
        out_shape=(row1 - row0, col1 - col0),
        transform=class_map.transform * Affine.translation(col0, row0),
        fill=0,
        dtype="uint8",
    )
    found: npt.NDArray[np.uint8] = class_map.labels[row0:row1, col0:col1][inside > 0]
    return found


def _classes(legend: Legend, ids: set[int]) -> list[LegendClass]:
    """The legend's classes among ``ids``, in legend order: the matrix's rows and columns."""
    return [c for c in legend.classes if c.id in ids]


def assessment_record(
    analysis_id: uuid.UUID,
    source: str,
    unit: str,
    classes: Sequence[LegendClass],
    counts: npt.NDArray[np.int64],
    mapped_area_ha: npt.NDArray[np.float64],
    stratum_weights_ha: npt.NDArray[np.float64],
    fields: FieldAgreement | None,
    note: str,
) -> dict[str, Any]:
    """The stored and served JSON of an assessment. ``counts`` rows are map classes, columns
    reference classes, both ``classes``; ``stratum_weights_ha`` are the mapped areas the
    estimators weigh each row with (0 leaves a stratum out). Undefined values are null: the user's
    accuracy of a class without mapped area, the producer's of one without reference, F1 of either."""
    estimated = stratified_assessment(counts, stratum_weights_ha, [c.name for c in classes])
    has_reference = estimated.proportions.sum(axis=0) > 0
    per_class = []
    for j, cls in enumerate(classes):
        users = _accuracy(estimated.users_accuracy[j]) if stratum_weights_ha[j] > 0 else None
        producers = _accuracy(estimated.producers_accuracy[j]) if has_reference[j] else None
        per_class.append(
            {
                "id": cls.id,
                "name": cls.name,
                "mapped_area_ha": float(mapped_area_ha[j]),
                "estimated_area_ha": _interval(estimated.areas[j], 0.0, math.inf),
                "users_accuracy": users,
                "producers_accuracy": producers,
                "f1": _f1(users, producers),
                "reference_count": int(counts[:, j].sum()),
            }
        )
    return {
        "analysis_id": str(analysis_id),
        "source": source,
        "created_at": datetime.now(UTC).isoformat(),
        "unit": unit,
        "sample_size": int(counts.sum()),
        "classes": [{"id": c.id, "name": c.name, "colour": c.colour} for c in classes],
        "confusion_matrix": counts.tolist(),
        "area_weighted_matrix": estimated.proportions.tolist(),
        "overall_accuracy": _accuracy(estimated.overall_accuracy),
        "per_class": per_class,
        "fields": fields.as_record() if fields is not None else None,
        "note": note,
    }


def _interval(estimate: Estimate, low: float, high: float) -> dict[str, Any]:
    lower, upper = estimate.interval
    return {
        "value": estimate.value,
        "standard_error": estimate.standard_error,
        "ci95": [max(low, lower), min(high, upper)],
    }


def _accuracy(estimate: Estimate) -> dict[str, Any]:
    return _interval(estimate, 0.0, 1.0)


def _f1(users: Mapping[str, Any] | None, producers: Mapping[str, Any] | None) -> float | None:
    """The harmonic mean of the (estimated) user's and producer's accuracies."""
    if users is None or producers is None:
        return None
    total = users["value"] + producers["value"]
    return 2 * users["value"] * producers["value"] / total if total > 0 else 0.0


# --- the catalogue ------------------------------------------------------------------------------


@dataclass(frozen=True)
class MapToAssess:
    """What an assessment reads of an analysis: its map, legend, owner and AOI."""

    analysis_id: uuid.UUID
    map_key: str
    legend: Legend
    owner_id: int | None
    aoi_geojson: dict[str, Any]
    bounds: tuple[float, float, float, float]  # the AOI's (minx, miny, maxx, maxy), degrees


def map_to_assess(sessions: sessionmaker[Session], analysis_id: uuid.UUID) -> MapToAssess:
    with sessions() as session:
        analysis = session.get(Analysis, analysis_id)
        if analysis is None or analysis.map_key is None:
            raise InvalidInput(f"analysis {analysis_id} has no crop map yet: assess it once it is completed")
        return MapToAssess(
            analysis.id,
            analysis.map_key,
            model_legend(session, analysis.model_version_id),
            analysis.owner_id,
            analysis.aoi_geojson,
            (analysis.minx, analysis.miny, analysis.maxx, analysis.maxy),
        )


def import_sample_labels(
    sessions: sessionmaker[Session], store: ObjectStore, analysis_id: uuid.UUID, content: bytes
) -> tuple[LabelledPoint, ...]:
    """Read a labelled sample design of the analysis' map, check it against the map and store
    its points in place of any earlier ones, in one transaction."""
    target = map_to_assess(sessions, analysis_id)
    points = read_sample_labels(content, target.legend)
    check_strata(points, read_class_map(store, target.map_key))
    with session_scope(sessions) as session:
        session.execute(delete(ReferenceSample).where(ReferenceSample.analysis_id == analysis_id))
        session.execute(
            insert(ReferenceSample),
            [
                {
                    "analysis_id": analysis_id,
                    "point_id": p.point_id,
                    "lon": p.lon,
                    "lat": p.lat,
                    "stratum_id": p.stratum_id,
                    "label_class_id": p.label_class_id,
                }
                for p in points
            ],
        )
    return points


def sample_points(sessions: sessionmaker[Session], analysis_id: uuid.UUID) -> tuple[LabelledPoint, ...]:
    with sessions() as session:
        rows = session.scalars(
            select(ReferenceSample).where(ReferenceSample.analysis_id == analysis_id).order_by(ReferenceSample.point_id)
        ).all()
        return tuple(LabelledPoint(r.point_id, r.lon, r.lat, r.stratum_id, r.label_class_id) for r in rows)


def reference_fields(sessions: sessionmaker[Session], target: MapToAssess) -> list[ReferenceField]:
    """The owner's reference fields that intersect the AOI."""
    aoi = shapely.geometry.shape(target.aoi_geojson)
    minx, miny, maxx, maxy = target.bounds
    with sessions() as session:
        rows = session.scalars(
            select(FieldParcel)
            .where(
                FieldParcel.owner_id.is_(None) if target.owner_id is None else FieldParcel.owner_id == target.owner_id,
                FieldParcel.purpose == FieldPurpose.reference,
                FieldParcel.maxx >= minx,
                FieldParcel.minx <= maxx,
                FieldParcel.maxy >= miny,
                FieldParcel.miny <= maxy,
            )
            .order_by(FieldParcel.id)
        ).all()
    return [
        ReferenceField(row.id, row.geometry_geojson, row.reference_label or "")
        for row in rows
        if shapely.geometry.shape(row.geometry_geojson).intersects(aoi)
    ]


def has_reference_data(sessions: sessionmaker[Session], analysis_id: uuid.UUID) -> bool:
    """Whether an analysis has labelled sample points or its owner reference fields in its AOI."""
    with sessions() as session:
        if session.scalar(select(exists().where(ReferenceSample.analysis_id == analysis_id))):
            return True
    return bool(reference_fields(sessions, map_to_assess(sessions, analysis_id)))


def assess_analysis(sessions: sessionmaker[Session], store: ObjectStore, analysis_id: uuid.UUID) -> dict[str, Any]:
    """Assess an analysis' map and store the result in place of the earlier one: from its
    labelled sample points when it has them, else from its owner's reference fields in the AOI.
    InvalidInput when there are neither; nothing is stored when assessing fails."""
    target = map_to_assess(sessions, analysis_id)
    points = sample_points(sessions, analysis_id)
    fields = [] if points else reference_fields(sessions, target)
    if not points and not fields:
        raise InvalidInput(NO_REFERENCE_DATA)
    class_map = read_class_map(store, target.map_key)
    if points:
        check_strata(points, class_map)  # the map may have been made again since the points were labelled
        result = assess_sample(points, class_map, target.legend, analysis_id)
    else:
        result = assess_fields(fields, class_map, target.legend, analysis_id)
    with session_scope(sessions) as session:
        session.execute(delete(Assessment).where(Assessment.analysis_id == analysis_id))
        session.add(Assessment(analysis_id=analysis_id, source=result["source"], result=result))
    return result


def stored_assessment(session: Session, analysis_id: uuid.UUID) -> dict[str, Any] | None:
    row = session.get(Assessment, analysis_id)
    return row.result if row is not None else None


# --- reading it -------------------------------------------------------------------------------------


def summary_markdown(result: Mapping[str, Any]) -> str:
    """Overall accuracy, the confusion matrix and the area table of an assessment, as Markdown."""
    names = [c["name"] for c in result["classes"]]
    overall = result["overall_accuracy"]
    header = "| map \\ reference | " + " | ".join(names) + " |\n|" + " --- |" * (len(names) + 1) + "\n"
    matrix = "".join(
        f"| {name} | " + " | ".join(f"{v:,}" for v in row) + " |\n"
        for name, row in zip(names, result["confusion_matrix"], strict=True)
    )
    areas = "".join(
        f"| {c['name']} | {c['mapped_area_ha']:,.1f} | {_shown(c['estimated_area_ha'], 1)} | "
        f"{_shown(c['users_accuracy'], 3)} | {_shown(c['producers_accuracy'], 3)} |\n"
        for c in result["per_class"]
    )
    agreement = result["fields"]
    fields = (
        f"\n{agreement['agreeing']} of {agreement['assessed']} reference fields agree with the map's majority class.\n"
        if agreement
        else ""
    )
    return (
        f"# Assessment of analysis {result['analysis_id']}\n\n"
        f"Overall accuracy **{_shown(overall, 3)}** from {result['sample_size']:,} reference "
        f"{result['unit']} ({result['source']}).\n\n> {result['note']}\n{fields}\n"
        f"## Confusion matrix ({result['unit']})\n\n{header}{matrix}\n"
        "## Areas (ha)\n\n| class | mapped | estimated (95 % CI) | user's accuracy | producer's accuracy |\n"
        f"| --- | --- | --- | --- | --- |\n{areas}"
    )


def _shown(estimate: Mapping[str, Any] | None, digits: int) -> str:
    if estimate is None:
        return "n/a"
    low, high = estimate["ci95"]
    return f"{estimate['value']:,.{digits}f} [{low:,.{digits}f}, {high:,.{digits}f}]"
