"""Labelled field parcels, the training labels users bring: read from any common vector
format, classified under a legend, and burnt onto a raster grid.

The three steps follow the data: ``read_parcels`` (a file -> polygons and raw label values in
the file's CRS), ``classify_parcels`` (label values -> class ids of a legend, rare classes
refused or merged) and ``rasterise_parcels`` (polygons -> a class-id raster and a field-id
raster on a target grid).
"""

from __future__ import annotations

import json
import logging
import zipfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pyogrio  # type: ignore[import-untyped]
import pyproj
import shapely
from affine import Affine
from pyogrio import raw
from pyogrio.errors import DataLayerError, DataSourceError  # type: ignore[import-untyped]
from rasterio.features import rasterize
from rasterio.warp import transform_bounds

from cropai.errors import InvalidInput
from cropai.legend import Legend, LegendClass, normalise_code

logger = logging.getLogger(__name__)

WGS84 = "EPSG:4326"
# Suffix -> the GDAL driver that reads it; a .zip is read as the Shapefile inside it.
DRIVERS = {
    ".gpkg": "GPKG",
    ".shp": "ESRI Shapefile",
    ".zip": "ESRI Shapefile",
    ".geojson": "GeoJSON",
    ".json": "GeoJSON",
    ".fgb": "FlatGeobuf",
}
FORMATS = (
    "GeoPackage (.gpkg), GeoParquet (.parquet, .geoparquet), Shapefile (.shp, or a .zip holding one), "
    "GeoJSON (.geojson, .json), FlatGeobuf (.fgb)"
)
# Read with pyarrow, not GDAL: pyogrio's bundled GDAL has no Parquet driver.
GEOPARQUET_SUFFIXES = (".parquet", ".geoparquet")
POLYGONAL = (shapely.GeometryType.POLYGON, shapely.GeometryType.MULTIPOLYGON)
MAX_NAMED = 10  # unknown label values named in one message
OTHER_COLOUR = "#9e9e9e"


@dataclass(frozen=True)
class LabelledParcels:
    """Parcels as read: polygons (shapely Polygon or MultiPolygon, 2D, in ``crs``), their raw
    label values (normalised text, see ``normalise_code``), and the file they came from.

    ``dropped`` counts the file's features left out: no or empty geometry, no label value,
    or a polygon that collapsed to a line or point when repaired."""

    source: str  # the file's path as given
    crs: str  # as the file declares it: "EPSG:xxxx" or WKT, usable by rasterio and pyproj
    geometries: tuple[shapely.Geometry, ...]
    labels: tuple[str, ...]
    dropped: int = 0


@dataclass(frozen=True)
class ClassifiedParcels:
    """Parcels with the class id of each under ``legend``; ignored and dropped parcels removed.
    Geometries are in ``crs``; ``ignored`` counts parcels whose label the legend ignores."""

    crs: str
    geometries: tuple[shapely.Geometry, ...]
    class_ids: tuple[int, ...]
    legend: Legend
    ignored: int

    @property
    def fields_per_class(self) -> dict[str, int]:
        """Class name -> number of parcels, for every class of the legend (0 if none)."""
        counts = Counter(self.class_ids)
        return {c.name: counts[c.id] for c in self.legend.classes}


@dataclass(frozen=True)
class _RawParcels:
    """A file's features as a reader gives them, before any is checked: geometries as WKB
    (None where a feature has none) and the label column's values as stored."""

    crs: str  # "EPSG:xxxx" or WKT
    wkb: npt.NDArray[Any]  # object array of bytes or None, one per feature
    values: Sequence[object]
    column: str


def read_parcels(path: Path, label_column: str, layer: str | None = None) -> LabelledParcels:
    """Read labelled polygons from a GeoPackage, GeoParquet, Shapefile (or a .zip holding one),
    GeoJSON or FlatGeobuf file; ``layer`` picks one layer of a file that has several.

    Invalid polygons are repaired (``shapely.make_valid``, polygonal parts kept). Raises
    InvalidInput naming the file, and what to do, for anything that cannot become parcels."""
    path = Path(path)
    if not path.exists():
        raise InvalidInput(f"parcel file {path} does not exist: check the path")
    suffix = path.suffix.lower()
    if suffix in GEOPARQUET_SUFFIXES:
        raw_parcels = _read_geoparquet(path, label_column, layer)
    elif suffix in DRIVERS:
        raw_parcels = _read_ogr(path, DRIVERS[suffix], label_column, layer)
    else:
        raise InvalidInput(f"parcel file {path} is not in a format Crop AI reads: use {FORMATS}")
    try:
        geometries = np.asarray(shapely.from_wkb(raw_parcels.wkb), dtype=object)
    except shapely.errors.GEOSException as exc:
        raise InvalidInput(f"{path} holds a geometry that is not valid WKB ({exc}): write the file again") from None
    labels = np.array([normalise_code(v) for v in raw_parcels.values], dtype=object)
    return _usable_parcels(path, raw_parcels.crs, geometries, labels, raw_parcels.column)


def classify_parcels(
    parcels: LabelledParcels, legend: Legend | None = None, min_fields: int = 1, merge_rare: bool = False
) -> ClassifiedParcels:
    """The class id of each parcel under ``legend`` (without one, each distinct label value is a
    class); parcels whose label the legend ignores are left out and counted.

    Every class needs ``min_fields`` parcels; with ``merge_rare`` the classes short of it are
    merged into one class named ``other``. Raises InvalidInput for label values the legend does
    not know, classes short of parcels, and fewer than two classes."""
    if min_fields < 0:
        raise InvalidInput(f"min_fields is {min_fields}: give a number of fields of 0 or more")
    legend = legend if legend is not None else Legend.from_values(parcels.labels)
    geometries, class_ids, ignored = _classes_of_labels(parcels, legend)
    counts = Counter(class_ids)
    rare = [c for c in legend.classes if counts[c.id] < min_fields]
    if rare and not merge_rare:
        named = ", ".join(f"{c.name} ({counts[c.id]})" for c in rare)
        raise InvalidInput(
            f"classes with fewer than {min_fields} fields in {parcels.source}: {named}; "
            "merge them into 'other' with --merge-rare, or use a legend with fewer classes"
        )
    if rare:
        legend, new_ids = _merge_rare(legend, rare)
        class_ids = [new_ids.get(i, i) for i in class_ids]
        other = legend.by_name()[Legend.OTHER]
        merged = class_ids.count(other.id)
        if merged < min_fields:
            raise InvalidInput(
                f"class 'other', merged from {', '.join(c.name for c in rare)}, still has {merged} fields, "
                f"fewer than {min_fields}: remove those classes from the legend or lower the minimum"
            )
    if len(legend.classes) < 2:
        raise InvalidInput(
            f"the parcels of {parcels.source} leave {len(legend.classes)} class ({legend.classes[0].name}): "
            "a classifier needs at least two; add parcels of other crops"
        )
    return ClassifiedParcels(parcels.crs, tuple(geometries), tuple(class_ids), legend, ignored)


def rasterise_parcels(
    parcels: ClassifiedParcels,
    crs: str | object,
    transform: Affine,
    shape: tuple[int, int],
    inner_buffer_m: float = 0.0,
) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.int32]]:
    """Burn the parcels onto a grid (``crs``, ``transform``, ``shape`` = (y, x) pixels).

    Each parcel is reprojected to the grid's CRS and shrunk by ``inner_buffer_m`` metres, so
    that pixels mixing a field with its border do not teach; a parcel that vanishes is left
    out. A pixel is burnt when its centre lies inside a parcel.

    Returns class ids (uint8, (y, x), 0 = unlabelled) and field ids (int32, (y, x), 0 = none,
    else 1 + the parcel's index in ``parcels.geometries``). Pixels under parcels of different
    classes are 0 in both: an ambiguous label teaches nothing."""
    if inner_buffer_m < 0:
        raise InvalidInput(f"inner buffer {inner_buffer_m} m is negative: give 0 or a positive number of metres")
    target = _crs(crs, "the grid")
    geometries = np.asarray(_reproject(parcels.geometries, _crs(parcels.crs, "the parcels"), target), dtype=object)
    if inner_buffer_m > 0:
        if not target.is_projected or target.axis_info[0].unit_name not in ("metre", "meter"):
            raise InvalidInput(f"an inner buffer in metres needs a grid in metres; the grid's CRS is {target.name}")
        geometries = shapely.buffer(geometries, -inner_buffer_m)
    kept = ~shapely.is_empty(geometries)
    if not kept.all():
        logger.info("%d of %d parcels vanished inside a %g m inner buffer", (~kept).sum(), kept.size, inner_buffer_m)
    labels = np.zeros(shape, dtype=np.uint8)
    fields = np.zeros(shape, dtype=np.int32)
    if not kept.any():
        return labels, fields
    indices = np.flatnonzero(kept)
    class_ids = np.asarray(parcels.class_ids, dtype=np.int64)[indices]
    shapes = geometries[indices]
    burn = {"out_shape": shape, "transform": transform, "fill": 0}
    labels = rasterize(zip(shapes, class_ids.tolist(), strict=True), dtype="uint8", **burn)
    fields = rasterize(zip(shapes, (indices + 1).tolist(), strict=True), dtype="int32", **burn)
    classes_here = np.zeros(shape, dtype=np.uint16)
    for class_id in np.unique(class_ids):
        classes_here += rasterize(((g, 1) for g in shapes[class_ids == class_id]), dtype="uint8", **burn)
    ambiguous = classes_here > 1
    labels[ambiguous] = 0
    fields[ambiguous] = 0
    return labels, fields


def parcels_bounds_wgs84(parcels: ClassifiedParcels | LabelledParcels) -> tuple[float, float, float, float]:
    """(minx, miny, maxx, maxy) of all parcels in EPSG:4326 degrees."""
    minx, miny, maxx, maxy = shapely.total_bounds(np.asarray(parcels.geometries, dtype=object))
    west, south, east, north = transform_bounds(parcels.crs, WGS84, minx, miny, maxx, maxy, densify_pts=21)
    return float(west), float(south), float(east), float(north)


def check_parcels_cover(labels: npt.NDArray[np.uint8], parcels: ClassifiedParcels) -> None:
    """Refuse a label raster in which no parcel burnt a pixel."""
    if not labels.any():
        raise InvalidInput(
            f"none of the {len(parcels.geometries)} parcels labels a pixel: they lie outside the grid, or are all "
            "smaller than a pixel (after the inner buffer); check the parcels' area and CRS, or lower the buffer"
        )


def _read_ogr(path: Path, driver: str, label_column: str, layer: str | None) -> _RawParcels:
    """The features of a file GDAL reads (through pyogrio), in 2D."""
    if driver not in pyogrio.list_drivers():
        raise InvalidInput(
            f"parcel file {path}: this installation's GDAL cannot read {driver} files; "
            "convert it to GeoPackage or FlatGeobuf (e.g. ogr2ogr parcels.gpkg <file>)"
        )
    dataset, layer = _zip_member(path, layer) if path.suffix.lower() == ".zip" else (str(path), layer)
    layer = _choose_layer(dataset, path, layer)
    info = _ogr(pyogrio.read_info, dataset, path, layer=layer)
    column = _check_label_column(list(info["fields"]), label_column, path)
    meta, _, wkb, (values,) = _ogr(raw.read, dataset, path, layer=layer, columns=[column], force_2d=True)
    crs = meta["crs"]
    if not crs:
        if driver != "GeoJSON":
            raise _no_crs(path)
        crs = WGS84  # RFC 7946: GeoJSON without a crs member is WGS 84 longitude, latitude
    return _RawParcels(crs, wkb, values, column)


def _read_geoparquet(path: Path, label_column: str, layer: str | None) -> _RawParcels:
    """The features of a GeoParquet 1.0/1.1 file (https://geoparquet.org/releases/v1.1.0/):
    its primary geometry column, WKB-encoded, and the label column; only those two are read."""
    import pyarrow  # type: ignore[import-untyped]  # heavy: imported only when a GeoParquet file is read
    import pyarrow.parquet  # type: ignore[import-untyped]

    if layer is not None and layer != path.stem:
        raise InvalidInput(f"{path} has no layer {layer!r}; its layers: {path.stem}")
    try:
        schema = pyarrow.parquet.read_schema(path)
    except (pyarrow.ArrowException, OSError) as exc:
        raise InvalidInput(f"cannot read parcel file {path} ({exc}): Crop AI reads {FORMATS}") from None
    geo = _geo_metadata(path, schema.metadata)
    geometry_columns = geo["columns"]
    primary = geo["primary_column"]
    encoding = geometry_columns[primary].get("encoding")
    if encoding != "WKB":
        raise InvalidInput(
            f"{path} stores its geometries in the {encoding!r} encoding; Crop AI reads WKB-encoded GeoParquet: "
            "write it with WKB geometries (e.g. geopandas to_parquet(geometry_encoding='WKB')) or as GeoPackage"
        )
    crs = _geoparquet_crs(path, geometry_columns[primary])
    column = _check_label_column([n for n in schema.names if n not in geometry_columns], label_column, path)
    try:
        table = pyarrow.parquet.read_table(path, columns=[primary, column])
    except (pyarrow.ArrowException, OSError) as exc:
        raise InvalidInput(f"cannot read parcel file {path} ({exc}): Crop AI reads {FORMATS}") from None
    # An object array, not np.asarray of the bytes: a fixed-width bytes array would cut WKB's trailing zeros.
    wkb = np.empty(table.num_rows, dtype=object)
    wkb[:] = table.column(primary).to_pylist()
    return _RawParcels(crs, wkb, table.column(column).to_pylist(), column)


def _geo_metadata(path: Path, metadata: dict[bytes, bytes] | None) -> dict[str, Any]:
    """The file's GeoParquet ``geo`` metadata, checked to name a primary column that is in it."""
    text = (metadata or {}).get(b"geo")
    if text is None:
        raise InvalidInput(
            f"{path} is a Parquet file but not GeoParquet: it has no 'geo' metadata naming its geometry column; "
            "write it as GeoParquet (e.g. geopandas to_parquet) or as GeoPackage"
        )
    try:
        geo = json.loads(text)
    except ValueError as exc:
        raise InvalidInput(f"{path} has GeoParquet 'geo' metadata that is not JSON ({exc}): write it again") from None
    columns = geo.get("columns") if isinstance(geo, dict) else None
    primary = geo.get("primary_column") if isinstance(geo, dict) else None
    if not isinstance(columns, dict) or not isinstance(columns.get(primary), dict):
        raise InvalidInput(
            f"{path} has GeoParquet 'geo' metadata without its primary geometry column "
            f"(primary_column {primary!r}): write it again as GeoParquet"
        )
    return dict(geo)


def _geoparquet_crs(path: Path, column: dict[str, Any]) -> str:
    """The CRS of a GeoParquet geometry column, in the form pyogrio gives ("EPSG:xxxx", else WKT)."""
    if "crs" not in column:
        return WGS84  # GeoParquet: a column without a crs key is OGC:CRS84, longitude, latitude
    projjson = column["crs"]
    if projjson is None:  # GeoParquet: an explicit null is an unknown CRS
        raise _no_crs(path)
    try:
        # A PROJJSON object in GeoParquet 1.x; from_user_input also reads the WKT text of early drafts.
        crs = pyproj.CRS.from_user_input(projjson)
    except pyproj.exceptions.CRSError as exc:
        raise InvalidInput(f"{path} declares a CRS that PROJ cannot read ({exc}): declare an EPSG CRS") from None
    epsg = crs.to_epsg(min_confidence=100)
    return f"EPSG:{epsg}" if epsg is not None else str(crs.to_wkt())


def _no_crs(path: Path) -> InvalidInput:
    return InvalidInput(
        f"parcels in no CRS: {path} does not declare its coordinate reference system; "
        "declare one, e.g. ogr2ogr -a_srs EPSG:4326 out.gpkg in.gpkg"
    )


def _zip_member(path: Path, layer: str | None) -> tuple[str, str | None]:
    """The GDAL path of the Shapefile inside a .zip (``layer`` names one of several by its stem);
    the layer is then that file's only one."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = [n for n in archive.namelist() if n.lower().endswith(".shp") and not n.startswith("__MACOSX")]
    except zipfile.BadZipFile:
        raise InvalidInput(f"parcel file {path} is not a readable .zip: zip the Shapefile's files again") from None
    if not members:
        raise InvalidInput(f"{path} holds no Shapefile (.shp): zip the .shp with its .shx, .dbf and .prj")
    stems = {Path(m).stem: m for m in members}
    if layer is None and len(members) == 1:
        member = members[0]
    elif layer in stems:
        member = stems[layer]
    else:
        raise InvalidInput(
            f"{path} holds {len(members)} Shapefiles ({', '.join(sorted(stems))})"
            + (f", none named {layer!r}" if layer is not None else "")
            + ": name the one to read with --layer"
        )
    return f"/vsizip/{path.absolute()}/{member}", None


def _choose_layer(dataset: str, path: Path, layer: str | None) -> str:
    layers = _ogr(pyogrio.list_layers, dataset, path)
    names = [str(name) for name, _ in layers]
    if layer is not None:
        if layer not in names:
            raise InvalidInput(f"{path} has no layer {layer!r}; its layers: {', '.join(names)}")
        return layer
    # Attribute-only tables of a GeoPackage are no candidates: they hold no parcels.
    spatial = [str(name) for name, geometry_type in layers if geometry_type is not None]
    if len(spatial) == 1:
        return spatial[0]
    if not spatial:
        raise InvalidInput(f"{path} has no layer with geometries: it holds no parcels")
    raise InvalidInput(f"{path} has {len(spatial)} layers ({', '.join(spatial)}): name the one to read with --layer")


def _ogr(read: Callable[..., Any], dataset: str, path: Path, **options: Any) -> Any:
    """Call a pyogrio reader, turning GDAL's errors into InvalidInput naming the file."""
    try:
        return read(dataset, **options)
    except (DataSourceError, DataLayerError) as exc:
        raise InvalidInput(f"cannot read parcel file {path} ({exc}): Crop AI reads {FORMATS}") from None


def _check_label_column(columns: list[str], label_column: str, path: Path) -> str:
    if label_column in columns:
        return label_column
    # Never matched silently: "Code" and "code" may both exist, and the user must know which was read.
    similar = [c for c in columns if c.casefold() == label_column.casefold()]
    hint = f"did you mean {similar[0]!r}? " if similar else ""
    raise InvalidInput(
        f"{path} has no label column {label_column!r}: {hint}its columns are {', '.join(columns) or 'none'}"
    )


def _usable_parcels(
    path: Path, crs: str, geometries: npt.NDArray[Any], labels: npt.NDArray[Any], column: str
) -> LabelledParcels:
    """Drop features without geometry or label, refuse non-polygons, repair invalid polygons."""
    no_geometry = shapely.is_missing(geometries) | shapely.is_empty(geometries)
    no_label = labels == ""
    present = ~no_geometry & ~no_label
    _check_polygons(path, geometries, present)
    repaired = np.array(geometries, dtype=object)
    invalid = present & ~shapely.is_valid(geometries)
    repaired[invalid] = [_polygonal_part(g) for g in shapely.make_valid(geometries[invalid])]
    collapsed = invalid & shapely.is_empty(repaired)
    kept = present & ~collapsed
    dropped = int(no_geometry.sum() + (no_label & ~no_geometry).sum() + collapsed.sum())
    if dropped or invalid.any():
        logger.info(
            "%s: %d features without geometry, %d without a label in %r, %d invalid polygons repaired (%d collapsed)",
            path,
            no_geometry.sum(),
            (no_label & ~no_geometry).sum(),
            column,
            invalid.sum(),
            collapsed.sum(),
        )
    if not kept.any():
        raise InvalidInput(
            f"{path} has no usable parcels: of {labels.size} features, {no_geometry.sum()} have no geometry, "
            f"{(no_label & ~no_geometry).sum()} no value in {column!r} and {collapsed.sum()} collapse when repaired; "
            "check the file and the label column"
        )
    return LabelledParcels(str(path), crs, tuple(repaired[kept]), tuple(labels[kept]), dropped)


def _check_polygons(path: Path, geometries: npt.NDArray[Any], present: npt.NDArray[np.bool_]) -> None:
    types = shapely.get_type_id(geometries)
    wrong = present & ~np.isin(types, [int(t) for t in POLYGONAL])
    if wrong.any():
        found = Counter(g.geom_type for g in geometries[wrong])
        named = ", ".join(f"{count} {name}" for name, count in found.most_common())
        raise InvalidInput(
            f"{path} holds {named} geometries (first: feature {np.flatnonzero(wrong)[0]}): parcels must be "
            "polygons, points or lines cannot be rasterised as fields; give the field outlines"
        )


def _polygonal_part(geometry: shapely.Geometry) -> shapely.Geometry:
    """The polygons of a repaired geometry (make_valid may add lines where a ring touched itself)."""
    if shapely.get_type_id(geometry) in POLYGONAL:
        return geometry
    parts = [p for p in shapely.get_parts(geometry) if shapely.get_type_id(p) in POLYGONAL]
    return shapely.union_all(parts) if parts else shapely.Polygon()


def _classes_of_labels(parcels: LabelledParcels, legend: Legend) -> tuple[list[shapely.Geometry], list[int], int]:
    """The parcels the legend classifies, their class ids, and the number it ignores; one
    InvalidInput naming every label value it does not know."""
    geometries: list[shapely.Geometry] = []
    class_ids: list[int] = []
    unknown: Counter[str] = Counter()
    ignored = 0
    for geometry, label in zip(parcels.geometries, parcels.labels, strict=True):
        try:
            cls = legend.class_for(label)
        except LookupError:
            unknown[label] += 1
            continue
        if cls is None:
            ignored += 1
        else:
            geometries.append(geometry)
            class_ids.append(int(cls.id))
    if unknown:
        named = ", ".join(f"{value!r} ({count} parcels)" for value, count in unknown.most_common(MAX_NAMED))
        more = f" and {len(unknown) - MAX_NAMED} more" if len(unknown) > MAX_NAMED else ""
        raise InvalidInput(
            f"label values of {parcels.source} not in the legend: {named}{more}; "
            "map each to a class in the legend, or to 'ignore' to leave those parcels out"
        )
    return geometries, class_ids, ignored


def _merge_rare(legend: Legend, rare: Sequence[LegendClass]) -> tuple[Legend, dict[int, int]]:
    """The legend with the ``rare`` classes merged into 'other' (an 'other' of the legend that is
    not rare keeps its id; else the lowest freed id), and old id -> new id for the merged ones."""
    existing = legend.by_name().get(Legend.OTHER)
    into = [existing] if existing is not None and existing not in rare else []
    merged = [*into, *rare]
    other = LegendClass(
        into[0].id if into else min(c.id for c in rare),
        Legend.OTHER,
        into[0].colour if into else OTHER_COLOUR,
        tuple(code for c in merged for code in c.codes),
    )
    kept = [c for c in legend.classes if c not in merged]
    classes = tuple(sorted([*kept, other], key=lambda c: c.id))
    return Legend(classes, legend.ignored), {c.id: other.id for c in merged}


def _crs(value: object, what: str) -> pyproj.CRS:
    try:
        return pyproj.CRS.from_user_input(value)
    except pyproj.exceptions.CRSError as exc:
        raise InvalidInput(f"the CRS of {what}, {str(value)[:80]!r}, is not one PROJ knows: {exc}") from None


def _reproject(geometries: Sequence[shapely.Geometry], source: pyproj.CRS, target: pyproj.CRS) -> npt.NDArray[Any]:
    """Geometries moved from ``source`` to ``target`` vertex by vertex: one vectorised PROJ call
    for all parcels (rasterio's transform_geom goes through GeoJSON one geometry at a time)."""
    array = np.asarray(geometries, dtype=object)
    if source == target:
        return array
    transformer = pyproj.Transformer.from_crs(source, target, always_xy=True)

    def move(xy: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        x, y = transformer.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return np.asarray(shapely.transform(array, move), dtype=object)
