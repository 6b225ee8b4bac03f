"""Where scenes come from: a local folder, an inbox prefix in the object store, a
static STAC catalog (on disk or over HTTP) or a STAC API search. Each source is
listed into :class:`SceneCandidate` records; after that every scene follows the
same path (see :mod:`cropai.ingest`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel, Field

from cropai import sentinel2
from cropai.errors import SourceUnreadable
from cropai.raster import canonical_band
from cropai.storage import ObjectStore

STORE_PREFIX = "store:"  # "store:inbox/" = the inbox/ prefix of the configured object store
# Files next to rasters that are not scenes themselves.
SIDECAR_SUFFIXES = (".aux.xml", ".ovr", ".msk", ".vrt.aux.xml")
CANONICAL_BANDS = (*sentinel2.BANDS, sentinel2.SCL_BAND)


class StacSearch(BaseModel):
    """A STAC API item search, as the Prefect UI shows it as a form."""

    collections: list[str] = Field(default=["sentinel-2-l2a"], description="STAC collection ids")
    bbox: tuple[float, float, float, float] | None = Field(
        default=None, description="minx, miny, maxx, maxy in degrees (EPSG:4326)"
    )
    start: date | None = Field(default=None, description="first acquisition date")
    end: date | None = Field(default=None, description="last acquisition date (inclusive)")
    max_cloud_cover: float | None = Field(
        default=None, ge=0, le=100, description="largest eo:cloud_cover, percent"
    )
    max_items: int = Field(default=100, ge=1, le=10_000, description="stop after this many items")

    def datetime_range(self) -> str | None:
        if self.start is None and self.end is None:
            return None
        start = f"{self.start.isoformat()}T00:00:00Z" if self.start else ".."
        end = f"{self.end.isoformat()}T23:59:59Z" if self.end else ".."
        return f"{start}/{end}"


@dataclass(frozen=True)
class SceneAsset:
    """One file of a scene. ``href`` is a local path, ``store:KEY`` or an http(s) URL;
    ``bands`` names its bands in order (None: read them from the file or a band mapping)."""

    href: str
    bands: tuple[str | None, ...] | None = None


@dataclass(frozen=True)
class SceneCandidate:
    """A scene found in a source, before it is read. What the source already says
    (id, time, cloud cover) is carried along; the file's own tags are read later."""

    source_uri: str
    name: str
    assets: tuple[SceneAsset, ...]
    scene_id: str | None = None
    acquired_at: datetime | None = None
    cloud_fraction: float | None = None
    from_inbox: bool = False  # inbox objects are removed once landed or quarantined
    stac_item: dict[str, Any] | None = None


def discover(source: str, store: ObjectStore, search: StacSearch | None = None) -> list[SceneCandidate]:
    """List the scenes of ``source``; raise :class:`SourceUnreadable` if it cannot be listed."""
    if source.startswith(STORE_PREFIX):
        return _inbox(store, source.removeprefix(STORE_PREFIX))
    scheme = urlsplit(source).scheme
    if search is not None:
        return _stac_api(source, search)
    if source.endswith(".json"):
        return _stac_catalog(source)
    if scheme in ("http", "https"):
        raise SourceUnreadable(
            f"{source}: an http(s) source is a STAC catalog (a URL ending in .json) or a STAC API "
            "(give a search: collections, bbox, dates, max cloud cover)"
        )
    return _folder(Path(source.removeprefix("file://")).expanduser())


def _folder(root: Path) -> list[SceneCandidate]:
    if root.is_file():
        paths = [root]
    elif root.is_dir():
        paths = sorted(
            p for p in root.rglob("*")
            if p.is_file()
            and not any(part.startswith(".") for part in p.relative_to(root).parts)
            and not p.name.lower().endswith(SIDECAR_SUFFIXES)
        )  # fmt: skip
    else:
        raise SourceUnreadable(f"folder {root} does not exist or cannot be read")
    return [SceneCandidate(str(p), p.name, (SceneAsset(str(p)),)) for p in paths]


def _inbox(store: ObjectStore, prefix: str) -> list[SceneCandidate]:
    try:
        objects = store.list(prefix)
    except Exception as exc:  # noqa: BLE001 - any failure to list is "source unreadable"
        raise SourceUnreadable(f"cannot list {prefix!r} in {store.url}: {exc}") from None
    return [
        SceneCandidate(
            source_uri=f"{store.url}/{info.key}",
            name=info.key.rsplit("/", 1)[-1],
            assets=(SceneAsset(f"{STORE_PREFIX}{info.key}"),),
            from_inbox=True,
        )
        for info in objects
        if not info.key.endswith(SIDECAR_SUFFIXES)
    ]


def _stac_catalog(href: str) -> list[SceneCandidate]:
    import pystac

    try:
        root = pystac.read_file(href)
    except Exception as exc:  # noqa: BLE001 - unreadable, not JSON, not STAC: all mean the same here
        raise SourceUnreadable(f"cannot read the STAC catalog {href}: {exc}") from None
    if isinstance(root, pystac.Item):
        items = [root]
    elif isinstance(root, pystac.Catalog):
        items = list(root.get_items(recursive=True))
    else:
        raise SourceUnreadable(f"{href} is a STAC {type(root).__name__}, expected a catalog, collection or item")
    return [_from_item(item) for item in items]


def _stac_api(url: str, search: StacSearch) -> list[SceneCandidate]:
    from pystac_client import Client

    query = None
    if search.max_cloud_cover is not None:
        query = {"eo:cloud_cover": {"lte": search.max_cloud_cover}}
    try:
        client = Client.open(url)
        results = client.search(
            collections=search.collections,
            bbox=search.bbox,
            datetime=search.datetime_range(),
            query=query,
            max_items=search.max_items,
        )
        items = list(results.items())
    except Exception as exc:  # noqa: BLE001 - network, HTTP and API errors all mean "unreadable"
        raise SourceUnreadable(f"STAC API search at {url} failed: {exc}") from None
    return [_from_item(item) for item in items]


def _from_item(item: Any) -> SceneCandidate:
    """A STAC item as a candidate: one-band assets (Sentinel-2 L2A on public APIs) when
    they cover every band, else the multi-band data assets named by ``eo:bands``."""
    single: dict[str, SceneAsset] = {}  # one asset per band; GeoTIFF before JPEG 2000 copies
    multi = []
    by_format = sorted(item.assets.items(), key=lambda kv: "jp2" in (kv[1].media_type or ""))
    for key, asset in by_format:
        names = _asset_band_names(key, asset)
        if names is None:
            continue
        entry = SceneAsset(asset.get_absolute_href(), names)
        if len(names) > 1:
            multi.append(entry)
        elif names[0] not in single:
            single[names[0]] = entry
    covered = set(single)
    assets = list(single.values()) + ([] if set(sentinel2.BANDS) <= covered else multi)
    cloud = item.properties.get("eo:cloud_cover")
    return SceneCandidate(
        source_uri=item.get_self_href() or item.id,
        name=item.id,
        assets=tuple(assets),
        scene_id=item.id,
        acquired_at=item.datetime,
        cloud_fraction=None if cloud is None else float(cloud) / 100,
        stac_item=item.to_dict(),
    )


def _asset_band_names(key: str, asset: Any) -> tuple[str | None, ...] | None:
    """Canonical band names of an asset, or None when it holds no band we use."""
    eo_bands = asset.extra_fields.get("eo:bands") or asset.extra_fields.get("bands")
    if eo_bands:
        names = tuple(canonical_band(b.get("name")) or canonical_band(b.get("common_name")) for b in eo_bands)
        if len(names) == 1 and names[0] is None:
            names = (canonical_band(key),)
    else:
        names = (canonical_band(key),)
    return names if any(n in CANONICAL_BANDS for n in names) else None
