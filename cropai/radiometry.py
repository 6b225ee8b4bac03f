"""The one radiometry of stored scenes, and how a source's digital numbers reach it.

Every stored COG holds surface reflectance x 10000 with no offset, 0 as nodata and
SCL as its own band (:data:`cropai.sentinel2.REFLECTANCE_SCALE`). Sources differ: since
processing baseline 04.00 (25 January 2022, and products reprocessed at 05.xx whatever
their sensing date) ESA's L2A digital numbers carry ``BOA_ADD_OFFSET = -1000``, so
reflectance = (DN - 1000) / 10000. A source only says which scale and offset its files
carry, as a :class:`Radiometry`; :meth:`Radiometry.to_canonical` is the one conversion.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cropai.sentinel2 import NODATA, REFLECTANCE_SCALE

# Baselines from this one on shift L2A digital numbers by BOA_ADD_OFFSET (L1C by RADIO_ADD_OFFSET).
OFFSET_BASELINE = (4, 0)
BOA_ADD_OFFSET_DN = -1000
SMALLEST_VALID = 1  # a dark pixel stays a pixel: it never becomes nodata
LARGEST_VALID = np.iinfo(np.uint16).max
BASELINE = re.compile(r"^\s*N?(\d{1,2})\.?(\d{2})\s*$")
BASELINE_IN_NAME = re.compile(r"_N(\d{2})(\d{2})(?:_|$)")


@dataclass(frozen=True)
class Radiometry:
    """How a file's digital numbers become surface reflectance: ``DN * scale + offset``.

    This is the STAC ``raster:bands`` convention; ESA's ``(DN + BOA_ADD_OFFSET) /
    QUANTIFICATION_VALUE`` is ``scale = 1 / Q`` and ``offset = BOA_ADD_OFFSET / Q``
    (see :meth:`from_dn`). The default is the canonical radiometry itself.
    """

    scale: float = 1 / REFLECTANCE_SCALE
    offset: float = 0.0

    @classmethod
    def from_dn(cls, add_offset: float, quantification: float = REFLECTANCE_SCALE) -> Radiometry:
        """ESA's form: an additive offset in digital numbers and a quantification value."""
        if quantification <= 0:
            raise ValueError(f"quantification value {quantification:g} must be positive")
        return cls(1 / quantification, add_offset / quantification)

    @property
    def offset_dn(self) -> int:
        """The offset in canonical digital numbers (-1000 for baseline 04.00 and later)."""
        return round(self.offset * REFLECTANCE_SCALE)

    @property
    def is_canonical(self) -> bool:
        return self._same_scale and self.offset_dn == 0

    @property
    def _same_scale(self) -> bool:
        return abs(self.scale * REFLECTANCE_SCALE - 1) < 1e-9

    def to_canonical(self, dn: npt.NDArray[np.integer]) -> npt.NDArray[np.uint16]:
        """``dn`` as canonical uint16: nodata (0) stays 0, any other value becomes
        round(reflectance x 10000) within [1, 65535], so that a DN at or below the
        offset (water, shadow: negative reflectance) is the smallest valid value."""
        if self.is_canonical:
            return dn.astype(np.uint16, copy=False)
        valid = dn != NODATA
        if self._same_scale:  # the usual case: whole digital numbers, no float copy
            shifted = dn.astype(np.int32) + self.offset_dn
        else:
            shifted = np.rint((dn.astype(np.float64) * self.scale + self.offset) * REFLECTANCE_SCALE)
        out = np.clip(shifted, SMALLEST_VALID, LARGEST_VALID).astype(np.uint16)
        out[~valid] = NODATA
        return out

    def describe(self) -> str:
        return f"scale {self.scale:g}, offset {self.offset:g} ({self.offset_dn:+d} DN)"


CANONICAL = Radiometry()
BOA_OFFSET = Radiometry.from_dn(BOA_ADD_OFFSET_DN)


def parse_baseline(text: str | None) -> tuple[int, int] | None:
    """A processing baseline as (major, minor): "04.00", "N0400", "4.00" or a product name
    holding ``_N0400_``; None when ``text`` names none."""
    if not text:
        return None
    match = BASELINE.match(str(text)) or BASELINE_IN_NAME.search(str(text))
    return (int(match.group(1)), int(match.group(2))) if match else None


def format_baseline(baseline: tuple[int, int] | None) -> str | None:
    return None if baseline is None else f"{baseline[0]:02d}.{baseline[1]:02d}"


def for_baseline(baseline: tuple[int, int] | None) -> Radiometry:
    """What ESA's L2A digital numbers of a baseline carry: the BOA offset from 04.00 on
    (the baseline decides, not the sensing date: reprocessed 2020 scenes at 05.00 carry it)."""
    return BOA_OFFSET if baseline is not None and baseline >= OFFSET_BASELINE else CANONICAL
