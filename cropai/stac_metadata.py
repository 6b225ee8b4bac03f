"""What a Sentinel-2 STAC item says about its pixels' radiometry and its provenance.

Catalogues say the same things in different words: Earth Search v0 (``sentinel:*``),
early Earth Search v1 (``sentinel2:*``, ``mgrs:*``), Earth Search v1 and Planetary
Computer (``s2:*``), CDSE's STAC 1.1 (``product:type``, ``processing:version``, asset-level
``raster:scale``). :func:`item_provenance` reads them all into one
:class:`~cropai.provenance.SceneProvenance`; :func:`asset_radiometry` says which
:class:`~cropai.radiometry.Radiometry` an asset's digital numbers carry.

The offset rule, first match wins:

1. ``earthsearch:boa_offset_applied`` or ``sentinel:boa_offset_applied`` is true: the
   provider already took ESA's BOA offset off the pixels (Earth Search harmonised its
   ``sentinel-2-l2a`` COGs, cirrus-geo/cirrus-earth-search#21: "New scenes being generated
   now have the BOA_ADD_OFFSET applied, and a new Item property
   sentinel:boa_offset_applied ... True"; "I think the `boa_offset_applied` is the truth",
   Element84/earth-search#9), so the ``raster:bands`` offset of -0.1 still listed beside
   the flag is not applied again: no offset. The flag speaks of the COGs the provider
   wrote, not of the JPEG 2000 assets beside them (``red-jp2``: ESA's own files in the
   ``sentinel-s2-l2a`` bucket, offset and all), which go on to step 2.
2. The asset declares ``scale`` and/or ``offset`` (``raster:bands[0]``, or STAC 1.1
   ``raster:scale``/``raster:offset`` on the asset or its first ``bands`` entry): those
   (Earth Search ``sentinel-2-c1-l2a``, ``-pre-c1-l2a``, ``-l1c``, early v1 JP2 items).
3. The processing baseline: -1000 DN from 04.00 on (Planetary Computer says nothing else;
   its DNs are as ESA made them).
4. Nothing said: canonical.

SCL (or any asset listing ``classification:classes``) holds classes, not reflectance, and
is always canonical. Metadata cannot catch a provider whose flag is wrong for its pixels
(Element84/earth-search#66 and #71, cirrus-geo/cirrus-earth-search#33: flag false or
missing on COGs that were harmonised); only the pixels themselves could tell.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from cropai import sentinel2
from cropai.provenance import PRODUCT_NAME, SceneProvenance, mgrs_tile, platform_name
from cropai.radiometry import CANONICAL, Radiometry, for_baseline, format_baseline, parse_baseline
from cropai.raster import canonical_band

OFFSET_APPLIED_FLAGS = ("earthsearch:boa_offset_applied", "sentinel:boa_offset_applied")
PRODUCT_KEYS = ("s2:product_uri", "sentinel:product_id")
BASELINE_KEYS = (
    "s2:processing_baseline",
    "sentinel2:processing_baseline",  # early Earth Search v1
    "sentinel:processing_baseline",  # Earth Search v0
    "processing:version",  # CDSE (STAC 1.1)
)
ORBIT_KEYS = ("sat:relative_orbit", "sentinel:relative_orbit")
PRODUCT_TYPE_KEYS = ("s2:product_type", "sentinel2:product_type", "product:type")
GRANULE_KEYS = ("s2:granule_id", "s2:tile_id", "sentinel2:id")
MGRS_PARTS = (
    ("mgrs:utm_zone", "mgrs:latitude_band", "mgrs:grid_square"),  # Earth Search v1
    ("sentinel:utm_zone", "sentinel:latitude_band", "sentinel:grid_square"),  # Earth Search v0
)
ASSET_KEY_SUFFIX = re.compile(r"(?:[-_](?:jp2|\d{2}m))+$", re.IGNORECASE)
PRODUCT_TYPES = {"S2MSI1C": "L1C", "S2MSI2A": "L2A"}
LEVELS = ("L1C", "L2A")
# S2A_OPER_MSI_L2A_TL_2APS_20231008T233154_A043324_T13TDE_N05.09 (the baseline suffix is optional)
GRANULE_ID = re.compile(
    r"^(?P<mission>S2[A-D])_\w{4}_MSI_(?P<level>L1C|L2A)_TL_.*_T(?P<tile>\d{2}[C-X][A-Z]{2})"
    r"(?:_N(?P<baseline>\d{2}\.\d{2}))?$"
)
# Item ids: S2A_28QCH_20200714_0_L2A, S2B_T20EPT_20250731T131905_L2A, S2B_5CNL_20221009_0_L2A,
# and Planetary Computer's S2B_MSIL2A_20190629T212529_R043_T06VVN_20201006T080531.
ITEM_ID_MISSION = re.compile(r"^(S2[A-D])_")
ITEM_ID_TILE = re.compile(r"_T?(\d{1,2}[C-X][A-Z]{2})_")
ITEM_ID_ORBIT = re.compile(r"_R(\d{3})_")
ITEM_ID_LEVEL = re.compile(r"(?:_|MSI)(L1C|L2A)(?:_|$)")


def item_provenance(item: Mapping[str, Any]) -> SceneProvenance:
    """Where an item's pixels come from, from its properties first, then from the product
    name (property or asset hrefs), the granule id and the item id; None where none says."""
    properties: Mapping[str, Any] = item.get("properties") or {}
    product = _product_name(item)
    declared = SceneProvenance(
        product_id=product,
        platform=platform_name(_text(properties.get("platform"))),
        mgrs_tile=_declared_tile(properties),
        relative_orbit=_whole_number(_first(properties, ORBIT_KEYS)),
        processing_baseline=format_baseline(parse_baseline(_first(properties, BASELINE_KEYS))),
        processing_level=_declared_level(item),
    )
    return (
        declared.or_else(SceneProvenance.from_product_name(product))
        .or_else(_from_granule_id(_first(properties, GRANULE_KEYS)))
        .or_else(_from_item_id(_text(item.get("id"))))
    )


def asset_radiometry(item: Mapping[str, Any], asset_key: str) -> Radiometry:
    """How the digital numbers of ``item``'s asset ``asset_key`` become surface reflectance
    (the rule in this module's docstring). Meant for reflectance bands and SCL; other
    assets (AOT, WVP) get what their metadata declares, with no meaning beyond that."""
    assets: Mapping[str, Any] = item.get("assets") or {}
    if asset_key not in assets:
        raise KeyError(f"item {item.get('id')!r} has no asset {asset_key!r}: it has {', '.join(assets) or 'none'}")
    asset: Mapping[str, Any] = assets[asset_key]
    if _holds_classes(asset_key, asset):
        return CANONICAL
    declared = _declared_radiometry(asset)
    if _offset_taken_off(item.get("properties") or {}, asset):
        return CANONICAL if declared is None else Radiometry(declared.scale, 0.0)
    if declared is not None:
        return declared
    return for_baseline(parse_baseline(item_provenance(item).processing_baseline))


# --- radiometry ----------------------------------------------------------------------------


def _holds_classes(key: str, asset: Mapping[str, Any]) -> bool:
    return "classification:classes" in asset or _asset_band(key, asset) == sentinel2.SCL_BAND


def _offset_taken_off(properties: Mapping[str, Any], asset: Mapping[str, Any]) -> bool:
    """Whether the provider flags its own copy of this asset as already without the BOA offset."""
    flagged = any(str(properties.get(flag)).strip().lower() == "true" for flag in OFFSET_APPLIED_FLAGS)
    return flagged and not _is_jpeg2000(asset)


def _is_jpeg2000(asset: Mapping[str, Any]) -> bool:
    media_type = (_text(asset.get("type")) or "").lower()
    href = (_text(asset.get("href")) or "").lower()
    return "jp2" in media_type or href.endswith(".jp2")


def _declared_radiometry(asset: Mapping[str, Any]) -> Radiometry | None:
    """``scale``/``offset`` of ``raster:bands[0]`` (STAC 1.0), else ``raster:scale``/``raster:offset``
    on the asset or its first ``bands`` entry (STAC 1.1); None when the asset declares neither."""
    candidates: list[tuple[Any, Any]] = []
    if first := _first_band(asset.get("raster:bands")):
        candidates.append((first.get("scale"), first.get("offset")))
    candidates.append((asset.get("raster:scale"), asset.get("raster:offset")))
    if first := _first_band(asset.get("bands")):
        candidates.append((first.get("raster:scale"), first.get("raster:offset")))
    for scale, offset in candidates:
        if scale is not None or offset is not None:
            return Radiometry(float(scale or CANONICAL.scale), float(offset or 0.0))
    return None


def _first_band(bands: Any) -> Mapping[str, Any] | None:
    return bands[0] if isinstance(bands, list) and bands and isinstance(bands[0], Mapping) else None


def _asset_band(key: str, asset: Mapping[str, Any]) -> str | None:
    """The Sentinel-2 band an asset holds, by its first band's name or common name, else its key
    (without a copy's suffix: ``scl-jp2``, ``SCL_20m``)."""
    first = _first_band(asset.get("eo:bands")) or _first_band(asset.get("bands")) or {}
    names = (first.get("name"), first.get("common_name"), first.get("eo:common_name"), ASSET_KEY_SUFFIX.sub("", key))
    return next((band for name in names if (band := canonical_band(_text(name))) is not None), None)


# --- provenance ----------------------------------------------------------------------------


def _product_name(item: Mapping[str, Any]) -> str | None:
    """The ESA product name, from a property or from an asset href inside a ``.SAFE``."""
    properties: Mapping[str, Any] = item.get("properties") or {}
    declared = _text(_first(properties, PRODUCT_KEYS))
    if declared:
        return declared.strip().removesuffix(".SAFE")
    assets: Mapping[str, Any] = item.get("assets") or {}
    hrefs = (_text(asset.get("href")) for asset in assets.values() if isinstance(asset, Mapping))
    return next((match.group(0) for href in hrefs if href and (match := PRODUCT_NAME.search(href))), None)


def _declared_tile(properties: Mapping[str, Any]) -> str | None:
    if tile := mgrs_tile(_text(properties.get("s2:mgrs_tile"))):
        return tile
    for keys in MGRS_PARTS:
        parts = [properties.get(key) for key in keys]
        if all(part is not None for part in parts) and (tile := mgrs_tile("".join(map(str, parts)))):
            return tile
    return mgrs_tile((_text(properties.get("grid:code")) or "").removeprefix("MGRS-"))


def _declared_level(item: Mapping[str, Any]) -> str | None:
    """L1C or L2A from the product type, the processing level or the collection id."""
    properties: Mapping[str, Any] = item.get("properties") or {}
    product_type = _text(_first(properties, PRODUCT_TYPE_KEYS))
    if product_type in PRODUCT_TYPES:
        return PRODUCT_TYPES[product_type]
    level = (_text(properties.get("processing:level")) or "").upper()
    if level in LEVELS:
        return level
    collection = (_text(item.get("collection")) or "").upper()
    return next((level for level in LEVELS if level in collection), None)


def _from_granule_id(granule_id: Any) -> SceneProvenance:
    """What a granule (tile) id says: spacecraft, level, tile and, when it has the suffix, baseline."""
    match = GRANULE_ID.match(_text(granule_id) or "")
    if match is None:
        return SceneProvenance()
    return SceneProvenance(
        platform=platform_name(match.group("mission")),
        mgrs_tile=mgrs_tile(match.group("tile")),
        processing_baseline=format_baseline(parse_baseline(match.group("baseline"))),
        processing_level=match.group("level"),
    )


def _from_item_id(item_id: str | None) -> SceneProvenance:
    """What a catalogue's item id says (Earth Search and Planetary Computer name items by tile)."""
    if not item_id:
        return SceneProvenance()
    mission = ITEM_ID_MISSION.search(item_id)
    tile = ITEM_ID_TILE.search(item_id)
    orbit = ITEM_ID_ORBIT.search(item_id)
    level = ITEM_ID_LEVEL.search(item_id)
    return SceneProvenance(
        platform=platform_name(mission.group(1)) if mission else None,
        mgrs_tile=mgrs_tile(tile.group(1)) if tile else None,
        relative_orbit=int(orbit.group(1)) if orbit else None,
        processing_level=level.group(1) if level else None,
    )


def _first(properties: Mapping[str, Any], keys: Iterable[str]) -> Any:
    return next((properties[key] for key in keys if properties.get(key) not in (None, "")), None)


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _whole_number(value: Any) -> int | None:
    text = _text(value)
    return int(text) if text and text.strip().isdigit() else None
