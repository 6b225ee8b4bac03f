"""Where a scene's pixels come from: the product, the spacecraft, the MGRS tile, the
relative orbit and the processing baseline, as every source says them in its own words.

Sentinel-2 product names carry most of it
(``S2A_MSIL2A_20221005T115411_N0400_R023_T29UNU_20221005T164454``: spacecraft, level,
sensing start, baseline, relative orbit, tile); metadata files and STAC properties say
the rest. The catalogue stores one spelling of each: platform as STAC writes it
(``sentinel-2a``), the tile without its ``T`` (``29UNU``), the baseline as ``04.00``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from typing import Any

from cropai.radiometry import format_baseline, parse_baseline

PRODUCT_NAME = re.compile(
    r"(?P<mission>S2[A-D])_MSI(?P<level>L1C|L2A)_(?P<sensed>\d{8}T\d{6})_N(?P<baseline>\d{4})"
    r"_R(?P<orbit>\d{3})_T(?P<tile>\d{2}[A-Z]{3})_\d{8}T\d{6}"
)
MGRS_TILE = re.compile(r"^\s*T?(\d{1,2})([C-X][A-Z]{2})\s*$", re.IGNORECASE)


def mgrs_tile(text: str | None) -> str | None:
    """An MGRS tile as stored (``29UNU``, ``01KAB``) from ``T29UNU``, ``29unu`` or ``1KAB``;
    None when ``text`` is not one."""
    match = MGRS_TILE.match(text or "")
    return f"{int(match.group(1)):02d}{match.group(2).upper()}" if match else None


def platform_name(text: str | None) -> str | None:
    """A spacecraft as STAC names it: ``Sentinel-2A``, ``S2A`` and ``sentinel-2a`` all give ``sentinel-2a``."""
    if not text:
        return None
    match = re.fullmatch(r"\s*(?:sentinel-?2|s2)([a-d])\s*", text, re.IGNORECASE)
    return f"sentinel-2{match.group(1).lower()}" if match else text.strip().lower()[:32]


@dataclass(frozen=True)
class SceneProvenance:
    """What the catalogue records of a scene's origin; None where the source does not say."""

    product_id: str | None = None
    platform: str | None = None
    mgrs_tile: str | None = None
    relative_orbit: int | None = None
    processing_baseline: str | None = None
    processing_level: str | None = None  # "L2A" or "L1C" where the source says

    @property
    def is_level_1c(self) -> bool:
        """Top-of-atmosphere reflectance without SCL: refused, Crop AI needs Level-2A."""
        return self.processing_level == "L1C"

    def or_else(self, other: SceneProvenance) -> SceneProvenance:
        """This provenance with its gaps filled from ``other``."""
        missing = {f.name: getattr(other, f.name) for f in fields(self) if getattr(self, f.name) is None}
        return replace(self, **missing)

    def as_tags(self) -> dict[str, str]:
        """GeoTIFF tags of the stored COG, so that the file says where it comes from on its own."""
        names = {
            "product_id": "PRODUCT_ID",
            "platform": "PLATFORM",
            "mgrs_tile": "MGRS_TILE",
            "relative_orbit": "RELATIVE_ORBIT",
            "processing_baseline": "PROCESSING_BASELINE",
        }
        return {tag: str(getattr(self, name)) for name, tag in names.items() if getattr(self, name) is not None}

    @classmethod
    def from_product_name(cls, name: str | None) -> SceneProvenance:
        """What an ESA product name says (any prefix or suffix around it, such as ``.SAFE``)."""
        match = PRODUCT_NAME.search(name or "")
        if match is None:
            return cls()
        return cls(
            product_id=match.group(0),
            platform=platform_name(match.group("mission")),
            mgrs_tile=mgrs_tile(match.group("tile")),
            relative_orbit=int(match.group("orbit")),
            processing_baseline=format_baseline(parse_baseline(match.group("baseline"))),
            processing_level=match.group("level"),
        )

    @classmethod
    def from_tags(cls, tags: dict[str, Any]) -> SceneProvenance:
        """What a GeoTIFF's tags say (ours, written by :meth:`as_tags`, or ESA's names)."""
        orbit = tags.get("RELATIVE_ORBIT") or tags.get("SENSING_ORBIT_NUMBER")
        product = tags.get("PRODUCT_ID") or tags.get("PRODUCT_URI")
        own = cls(
            product_id=str(product).removesuffix(".SAFE") if product else None,
            platform=platform_name(tags.get("PLATFORM") or tags.get("SPACECRAFT_NAME") or tags.get("platform")),
            mgrs_tile=mgrs_tile(tags.get("MGRS_TILE")),
            relative_orbit=int(orbit) if orbit and str(orbit).isdigit() else None,
            processing_baseline=format_baseline(parse_baseline(tags.get("PROCESSING_BASELINE"))),
        )
        return own.or_else(cls.from_product_name(product))


NO_PROVENANCE = SceneProvenance()  # a source that says nothing of its origin
