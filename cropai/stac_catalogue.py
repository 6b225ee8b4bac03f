"""What Crop AI holds, as STAC 1.1: every completed analysis is an Item of the ``analyses``
collection, every ingested scene version an Item of the ``scenes`` collection.

An analysis' Item carries its AOI as geometry and its season as ``start_datetime`` /
``end_datetime``; the grid of its rasters (projection extension); the bands of the crop map
with the class ids, names and colours of its model's legend (raster and classification
extensions); file sizes (file extension); what made it (processing extension); and a
``derived_from`` link to the Item of every scene version it read. Asset hrefs are the API's
download URLs, so a STAC client (QGIS, STAC Browser, odc-stac, stackstac) opens them with
the bearer token it already sends to the API.

pystac and the grid (rasterio) are imported when an Item is built, not with this module:
the API imports it and stays small until the catalogue is read.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from importlib.metadata import version
from typing import TYPE_CHECKING, Any

from cropai.db import Analysis, Scene
from cropai.errors import InvalidInput
from cropai.legend import Legend
from cropai.storage import COG_CONTENT_TYPE

if TYPE_CHECKING:
    import pystac

ANALYSES, SCENES = "analyses", "scenes"
COLLECTIONS = (ANALYSES, SCENES)
# pystac has no class for the processing extension: its fields are set as they are named.
PROCESSING_EXTENSION = "https://stac-extensions.github.io/processing/v1.2.0/schema.json"
GEOJSON = "application/geo+json"
# STAC API classes the /stac endpoints conform to: landing page, collections, items, search.
CONFORMANCE = (
    "https://api.stacspec.org/v1.0.0/core",
    "https://api.stacspec.org/v1.0.0/collections",
    "https://api.stacspec.org/v1.0.0/ogcapi-features",
    "https://api.stacspec.org/v1.0.0/item-search",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/core",
    "http://www.opengis.net/spec/ogcapi-features-1/1.0/conf/geojson",
)
COLLECTION_TEXT = {
    ANALYSES: (
        "Crop-type maps",
        "Completed analyses: a crop-type map (class and confidence), how often each pixel was seen "
        "clear, a quicklook, a QGIS style and per-field predictions, over the analysis' AOI and season.",
    ),
    SCENES: (
        "Ingested scenes",
        "Satellite scene versions ingested as Cloud-Optimized GeoTIFFs of surface reflectance, "
        "the inputs of the analyses.",
    ),
}
WHOLE_WORLD = (-180.0, -90.0, 180.0, 90.0)


@dataclass(frozen=True)
class Hrefs:
    """Absolute URLs under the API the catalogue is served from (``base``: its root, no
    trailing slash), so that Items keep working when saved and opened elsewhere."""

    base: str

    def api(self, path: str) -> str:
        return f"{self.base}{path}"

    def root(self) -> str:
        return self.api("/stac")

    def collection(self, collection_id: str) -> str:
        return self.api(f"/stac/collections/{collection_id}")

    def item(self, collection_id: str, item_id: str) -> str:
        return f"{self.collection(collection_id)}/items/{item_id}"


@dataclass(frozen=True)
class TimeWindow:
    """A STAC ``datetime`` filter in UTC: one instant, or an interval open at either end (None)."""

    start: datetime | None
    end: datetime | None


def parse_datetime_filter(text: str) -> TimeWindow:
    """``datetime`` as STAC API search takes it: an RFC 3339 instant, or ``start/end`` with
    ``..`` (or nothing) for an open end. Times without a zone are UTC; a date alone stands for
    its whole day (from its start as a start, to its end as an end or an instant)."""
    parts = text.split("/")
    if len(parts) > 2 or not text.strip():
        raise InvalidInput(f"datetime {text!r}: expected an instant or start/end, e.g. 2025-04-01T00:00:00Z/..")
    if len(parts) == 1:
        if parts[0] in ("", ".."):
            raise InvalidInput(f"datetime {text!r}: an instant cannot be open; write start/end with .. for an open end")
        return TimeWindow(_instant(parts[0], end_of_day=False), _instant(parts[0], end_of_day=True))
    start, end = (None if part in ("", "..") else _instant(part, end_of_day=i == 1) for i, part in enumerate(parts))
    if start is None and end is None:
        raise InvalidInput(f"datetime {text!r}: at least one end of the interval must be given")
    if start is not None and end is not None and start > end:
        raise InvalidInput(f"datetime {text!r}: the interval ends before it starts")
    return TimeWindow(start, end)


_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", re.ASCII)
_DATE_TIME = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})?", re.ASCII
)


def _instant(text: str, *, end_of_day: bool) -> datetime:
    """An RFC 3339 date-time (or a date: its first or last instant) in UTC."""
    try:
        if _DATE.fullmatch(text):
            return datetime.combine(date.fromisoformat(text), time.max if end_of_day else time.min, UTC)
        if _DATE_TIME.fullmatch(text):
            moment = datetime.fromisoformat(text.upper().replace(" ", "T"))
            return (moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)).astimezone(UTC)
    except (ValueError, OverflowError):
        pass  # a date no calendar has (02-30), or one out of range once in UTC: refused below
    raise InvalidInput(f"datetime {text!r} is not an RFC 3339 date-time, e.g. 2025-04-01T00:00:00Z")


def season_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """An analysis' season as instants: from the first day's start to the last day's end, UTC."""
    return datetime.combine(start, time.min, UTC), datetime.combine(end, time.max, UTC)


def scene_item_id(scene_id: str, scene_version: int) -> str:
    """The Item id of one version of a scene: a newer file of the same scene is another Item."""
    return f"{scene_id}-v{scene_version}"


def parse_scene_item_id(item_id: str) -> tuple[str, int] | None:
    """(scene id, version) of a scene Item id; None for an id no scene Item has."""
    found = re.fullmatch(r"(.+)-v([0-9]{1,9})", item_id, re.ASCII)
    return (found[1], int(found[2])) if found else None


def analysis_item(analysis: Analysis, legend: Legend, hrefs: Hrefs, sizes: Callable[[str], int | None]) -> pystac.Item:
    """The STAC Item of a completed analysis; ``sizes`` gives an object's size in bytes by
    its key (None when it is not in the store: its asset is left out)."""
    import pystac
    from pystac.extensions.file import FileExtension
    from pystac.extensions.projection import ProjectionExtension

    from cropai.analysis import aoi_grid

    if analysis.map_key is None:
        raise InvalidInput(f"analysis {analysis.id} has no map yet: only completed analyses are STAC Items")
    first, last = season_bounds(analysis.start_date, analysis.end_date)
    item = pystac.Item(
        id=str(analysis.id),
        geometry=analysis.aoi_geojson,
        bbox=[analysis.minx, analysis.miny, analysis.maxx, analysis.maxy],
        datetime=None,
        start_datetime=first,
        end_datetime=last,
        properties={
            "title": analysis.name or f"Crop map {str(analysis.id)[:8]}",
            "created": pystac.utils.datetime_to_str(analysis.created_at),
            "updated": pystac.utils.datetime_to_str(analysis.updated_at),
            "cropai:model": analysis.model_ref,
        },
        collection=ANALYSES,
    )
    grid = aoi_grid(analysis.aoi_geojson)
    projection = ProjectionExtension.ext(item, add_if_missing=True)
    projection.apply(code=grid.crs, shape=[grid.height, grid.width], transform=list(grid.transform)[:6])
    projection.bbox = list(grid.bounds)
    item.common_metadata.gsd = grid.resolution_m
    _add_processing(item, analysis)
    folder = analysis.map_key.rsplit("/", 1)[0]
    for name, (asset, object_name) in _analysis_assets(analysis, hrefs).items():
        size = sizes(f"{folder}/{object_name}") if object_name is not None else None
        if object_name is not None and size is None:
            continue  # e.g. a map from before evidence was kept: no asset that would answer 404
        item.add_asset(name, asset)
        if size is not None:
            FileExtension.ext(asset, add_if_missing=True).size = size
    _describe_bands(item, legend, grid.resolution_m)
    for record in analysis.input_scenes or []:
        scene = scene_item_id(str(record["scene_id"]), int(record["version"]))
        item.add_link(
            pystac.Link("derived_from", hrefs.item(SCENES, scene), media_type="application/geo+json", title=scene)
        )
    item.add_link(pystac.Link("alternate", hrefs.api(f"/analyses/{analysis.id}"), "application/json", "In the API"))
    _link_into(item, ANALYSES, hrefs)
    return item


def _analysis_assets(analysis: Analysis, hrefs: Hrefs) -> dict[str, tuple[pystac.Asset, str | None]]:
    """Assets by name, each with the name of its object in the analysis' folder of the store
    (None: the API makes it, as the QGIS style from the legend)."""
    import pystac

    from cropai.cropmap import EVIDENCE, MAP, QUICKLOOK

    def asset(path: str, title: str, media_type: str, *roles: str) -> pystac.Asset:
        return pystac.Asset(
            hrefs.api(f"/analyses/{analysis.id}{path}"), title, media_type=media_type, roles=list(roles)
        )

    return {
        "map": (asset("/map", "Crop map: class and confidence", COG_CONTENT_TYPE, "data"), MAP),
        "evidence": (
            asset("/evidence", "How many of the season's time bins saw each pixel clear", COG_CONTENT_TYPE, "quality"),
            EVIDENCE,
        ),
        "quicklook": (asset("/quicklook.png", "Quicklook with legend", "image/png", "overview"), QUICKLOOK),
        "style": (asset("/map.qml", "QGIS style of the crop map", "text/xml", "metadata"), None),
        "fields": (asset("/fields", "Per-field predictions", GEOJSON, "data"), None),
    }


def _describe_bands(item: pystac.Item, legend: Legend, resolution_m: float) -> None:
    """The crop map's class band with the legend's classes, its confidence band, and the
    evidence band (raster and classification extensions)."""
    from pystac.extensions.classification import Classification, ClassificationExtension
    from pystac.extensions.raster import DataType, RasterBand, RasterExtension

    class_band = RasterBand.create(nodata=0, data_type=DataType.UINT8, spatial_resolution=resolution_m)
    ClassificationExtension.ext(class_band).classes = [
        Classification.create(value=0, name="no_data", title="No data (outside the AOI)", nodata=True),
        *(
            Classification.create(value=c.id, name=_class_name(c.name), title=c.name, color_hint=c.colour[1:].upper())
            for c in legend.classes
        ),
    ]
    confidence_band = RasterBand.create(
        nodata=0, data_type=DataType.UINT8, spatial_resolution=resolution_m, scale=1 / 255, offset=0.0
    )
    if "map" in item.assets:
        RasterExtension.ext(item.assets["map"], add_if_missing=True).bands = [class_band, confidence_band]
        ClassificationExtension.add_to(item)
    if "evidence" in item.assets:
        RasterExtension.ext(item.assets["evidence"], add_if_missing=True).bands = [
            RasterBand.create(data_type=DataType.UINT8, spatial_resolution=resolution_m)
        ]


def _class_name(title: str) -> str:
    """A class name as the classification extension wants it: letters, digits, - and _."""
    return re.sub(r"[^0-9A-Za-z_-]+", "_", title).strip("_") or "class"


def _add_processing(item: pystac.Item, analysis: Analysis) -> None:
    import pystac

    item.stac_extensions.append(PROCESSING_EXTENSION)
    item.properties["processing:lineage"] = (
        f"Crop classes predicted by {analysis.model_ref} from cloud-masked time-bin composites of the "
        "season's scenes (see the derived_from links)"
    )
    item.properties["processing:software"] = {"cropai": version("cropai")}
    if analysis.finished_at is not None:
        item.properties["processing:datetime"] = pystac.utils.datetime_to_str(analysis.finished_at)


def scene_item(scene: Scene, hrefs: Hrefs) -> pystac.Item:
    """The STAC Item of one ingested scene version, its COG the ``data`` asset."""
    import pystac
    from pystac.extensions.eo import EOExtension
    from pystac.extensions.file import FileExtension
    from pystac.extensions.projection import ProjectionExtension

    item = pystac.Item(
        id=scene_item_id(scene.scene_id, scene.version),
        geometry=scene.footprint_geojson,
        bbox=[scene.minx, scene.miny, scene.maxx, scene.maxy],
        datetime=scene.acquired_at,
        properties={"created": pystac.utils.datetime_to_str(scene.created_at), "cropai:version": scene.version},
        collection=SCENES,
    )
    if scene.platform:
        item.common_metadata.platform = scene.platform
    item.common_metadata.gsd = scene.resolution_m
    if scene.cloud_fraction is not None:
        EOExtension.ext(item, add_if_missing=True).cloud_cover = round(100 * scene.cloud_fraction, 3)
    ProjectionExtension.ext(item, add_if_missing=True).apply(code=scene.crs, shape=[scene.height, scene.width])
    data = pystac.Asset(
        hrefs.api(f"/scenes/{scene.id}/data"), "Surface reflectance (COG)", media_type=COG_CONTENT_TYPE, roles=["data"]
    )
    data.extra_fields["bands"] = [{"name": str(band)} for band in scene.bands]
    item.add_asset("data", data)
    if scene.size_bytes:
        FileExtension.ext(data, add_if_missing=True).size = scene.size_bytes
    item.add_link(pystac.Link("alternate", hrefs.api(f"/scenes/{scene.id}"), "application/json", "In the API"))
    _link_into(item, SCENES, hrefs)
    return item


def _link_into(item: pystac.Item, collection_id: str, hrefs: Hrefs) -> None:
    import pystac

    item.add_link(pystac.Link("self", hrefs.item(collection_id, item.id), media_type=GEOJSON))
    item.add_link(pystac.Link("parent", hrefs.collection(collection_id), media_type="application/json"))
    item.add_link(pystac.Link("collection", hrefs.collection(collection_id), media_type="application/json"))
    item.add_link(pystac.Link("root", hrefs.root(), media_type="application/json"))


@dataclass(frozen=True)
class Extent:
    """What a collection covers: ``bbox`` in degrees and the first and last instants (None:
    an empty collection)."""

    bbox: tuple[float, float, float, float] = WHOLE_WORLD
    first: datetime | None = None
    last: datetime | None = None


def collection(collection_id: str, extent: Extent, hrefs: Hrefs) -> pystac.Collection:
    """The ``analyses`` or ``scenes`` collection as the asking user sees it."""
    import pystac

    if collection_id not in COLLECTIONS:
        raise InvalidInput(f"no collection {collection_id!r}: the collections are {', '.join(COLLECTIONS)}")
    title, description = COLLECTION_TEXT[collection_id]
    found = pystac.Collection(
        id=collection_id,
        title=title,
        description=description,
        extent=pystac.Extent(
            pystac.SpatialExtent([list(extent.bbox)]), pystac.TemporalExtent([[extent.first, extent.last]])
        ),
        license="other",
    )
    found.clear_links()
    found.add_link(pystac.Link("self", hrefs.collection(collection_id), media_type="application/json"))
    found.add_link(pystac.Link("parent", hrefs.root(), media_type="application/json"))
    found.add_link(pystac.Link("root", hrefs.root(), media_type="application/json"))
    found.add_link(pystac.Link("items", f"{hrefs.collection(collection_id)}/items", media_type=GEOJSON))
    return found


def landing_page(hrefs: Hrefs) -> dict[str, Any]:
    """The STAC API landing page: a Catalog whose children are the collections."""
    import pystac

    catalog = pystac.Catalog(
        id="cropai",
        title="Crop AI",
        description="Crop-type maps from satellite scenes, and the scenes they were made from.",
    )
    catalog.clear_links()
    for rel, path, media_type in (
        ("self", "/stac", "application/json"),
        ("root", "/stac", "application/json"),
        ("conformance", "/stac/conformance", "application/json"),
        ("data", "/stac/collections", "application/json"),
        ("service-desc", "/openapi.json", "application/vnd.oai.openapi+json;version=3.1"),
    ):
        catalog.add_link(pystac.Link(rel, hrefs.api(path), media_type=media_type))
    for method in ("GET", "POST"):
        catalog.add_link(pystac.Link("search", hrefs.api("/stac/search"), GEOJSON, extra_fields={"method": method}))
    for collection_id in COLLECTIONS:
        catalog.add_link(
            pystac.Link("child", hrefs.collection(collection_id), "application/json", COLLECTION_TEXT[collection_id][0])
        )
    return {**catalog.to_dict(transform_hrefs=False), "conformsTo": list(CONFORMANCE)}


def item_collection(items: Sequence[pystac.Item], matched: int, links: Sequence[dict[str, str]]) -> dict[str, Any]:
    """A page of Items as STAC API answers it (a GeoJSON FeatureCollection)."""
    return {
        "type": "FeatureCollection",
        "features": [item.to_dict(transform_hrefs=False) for item in items],
        "links": list(links),
        "numberMatched": matched,
        "numberReturned": len(items),
    }
