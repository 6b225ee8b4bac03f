"""Sentinel-2 Level-2A SAFE products, as ESA and the Copernicus Data Space deliver them:
a folder ``X.SAFE/`` or a ``.zip`` holding one.

ESA's layout (Product Specification Document, PSD 14.x): ``MTD_MSIL2A.xml`` at the root
names the product, its sensing time, the BOA quantification value and offsets and every
band file (``IMAGE_FILE``, relative to the root, without extension);
``GRANULE/<id>/MTD_TL.xml`` gives the tile's CRS and its grid at 10, 20 and 60 m. Band
files are JPEG 2000 (reprocessed archives such as ESRI's declare ``imageFormat="GeoTIFF"``
and hold ``.tif``). Everything is read in place, never extracted (:mod:`cropai.safe_archive`).
"""

from __future__ import annotations

import hashlib
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import rasterio
from rasterio.crs import CRS
from rasterio.windows import Window

from cropai.errors import InvalidScene
from cropai.provenance import SceneProvenance, platform_name
from cropai.radiometry import Radiometry, for_baseline, format_baseline, parse_baseline
from cropai.raster import GDAL_ERRORS, gdal_reason
from cropai.safe_archive import SafeFiles, escapes, safe_files
from cropai.sentinel2 import BANDS, SCL_BAND

PRODUCT_METADATA = "MTD_MSIL2A.xml"
L1C_METADATA = "MTD_MSIL1C.xml"
TILE_METADATA = "GRANULE/*/MTD_TL.xml"
# Each band at its native (finest) resolution in metres; L2A also resamples them to coarser folders.
BAND_RESOLUTION_M: dict[str, int] = {
    **{band: 10 for band in ("B02", "B03", "B04", "B08")},
    **{band: 20 for band in ("B05", "B06", "B07", "B8A", "B11", "B12")},
    SCL_BAND: 20,
}
SCENE_BANDS: tuple[str, ...] = (*BANDS, SCL_BAND)
# ESA's bandId order (PSD): used only where MTD_MSIL2A.xml has no Spectral_Information.
ESA_BAND_IDS: tuple[str, ...] = (*(f"B{n:02d}" for n in range(1, 9)), "B8A", "B09", "B10", "B11", "B12")
FILE_EXTENSIONS = {"JPEG2000": ".jp2", "GeoTIFF": ".tif"}
FORMAT_NAMES = {".jp2": "JPEG 2000", ".tif": "GeoTIFF"}
JP2_DRIVER = "JP2OpenJPEG"
SCL_DTYPES = ("uint8", "uint16")
MAX_METADATA_BYTES = 64 * 2**20  # real MTD_TL.xml files are about 0.6 MB; this bounds a zip bomb
HASH_CHUNK_BYTES = 2**20
IMAGE_FILE_IN_FOLDER = re.compile(r"^(?P<folder>.*/IMG_DATA/)R\d+m/(?P<stem>[^/]+?)_[A-Z0-9]+_\d+m$")


@dataclass(frozen=True)
class ResolutionGrid:
    """A tile's grid at one resolution (MTD_TL.xml ``Size`` and ``Geoposition``): upper-left
    corner in metres of the tile's CRS, size in pixels, north up."""

    resolution_m: int
    ulx: float
    uly: float
    nrows: int
    ncols: int


@dataclass(frozen=True)
class TileGrid:
    """The MGRS tile's grid as MTD_TL.xml states it: CRS (``EPSG:32629``) and one
    :class:`ResolutionGrid` per resolution in metres (10, 20, 60)."""

    crs: str
    resolutions: dict[int, ResolutionGrid]


@dataclass(frozen=True)
class ProductMetadata:
    """What MTD_MSIL2A.xml says of a product, before any band file is looked for."""

    provenance: SceneProvenance
    acquired_at: datetime  # PRODUCT_START_TIME, UTC
    quantification: float  # BOA_QUANTIFICATION_VALUE: DN per unit reflectance (10000)
    radiometry: dict[str, Radiometry]  # each of BANDS
    image_files: tuple[str, ...]  # IMAGE_FILE entries: relative to the SAFE root, no extension
    extension: str  # of the band files: ".jp2", or ".tif" where the granule says GeoTIFF


@dataclass(frozen=True)
class SafeProduct:
    """A readable Sentinel-2 L2A SAFE product. Paths are GDAL paths: a local path, or
    ``/vsizip/{absolute zip path}/{X.SAFE}/...`` inside an archive."""

    root: str
    provenance: SceneProvenance
    acquired_at: datetime  # PRODUCT_START_TIME, UTC
    quantification: float  # BOA_QUANTIFICATION_VALUE (10000)
    band_files: dict[str, str]  # each of BANDS and SCL: its file at its finest resolution (10 or 20 m)
    radiometry: dict[str, Radiometry]  # each of BANDS: how its DNs become reflectance
    grid: TileGrid
    members: tuple[str, ...]  # the files that define the scene: the two MTDs, then band files in SCENE_BANDS order


# --- Metadata ---------------------------------------------------------------------------------


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _elements(root: ET.Element, name: str) -> Iterator[ET.Element]:
    """Elements by local tag name, whatever namespace the PSD version put them in."""
    return (element for element in root.iter() if _local(element.tag) == name)


def _text(root: ET.Element, name: str) -> str | None:
    element = next(_elements(root, name), None)
    return element.text.strip() if element is not None and element.text else None


def _required(root: ET.Element, name: str, file: str) -> str:
    value = _text(root, name)
    if not value:
        raise InvalidScene(f"{file} has no {name}: the product's metadata is incomplete")
    return value


def _number(text: str | None, what: str) -> float:
    try:
        return float(text or "")
    except ValueError:
        raise InvalidScene(f"{what} is {text!r}: not a number") from None


def _read_xml(files: SafeFiles, relative: str) -> ET.Element:
    with files.open(relative) as stream:
        data = stream.read(MAX_METADATA_BYTES + 1)
    if len(data) > MAX_METADATA_BYTES:
        raise InvalidScene(f"{relative} is over {MAX_METADATA_BYTES // 2**20} MiB: not ESA metadata")
    return parse_xml(data, relative)


def parse_xml(data: bytes, name: str) -> ET.Element:
    """An XML document's root. ESA metadata never declares a DTD, so one (with its entities,
    the way into billion-laughs and external-entity tricks) is refused rather than parsed."""
    if b"<!DOCTYPE" in data.upper() or b"<!ENTITY" in data.upper():
        raise InvalidScene(f"{name} declares a DTD or entities, which ESA metadata never does; refusing to parse it")
    try:
        return ET.fromstring(data)
    except ET.ParseError as exc:
        raise InvalidScene(f"{name} is not well-formed XML: {exc}") from None


def parse_product_metadata(root: ET.Element) -> ProductMetadata:
    """Read MTD_MSIL2A.xml (its parsed root); Level-1C metadata is refused with the reason."""
    level = _text(root, "PRODUCT_TYPE") or ""
    if level.endswith("1C") or (_text(root, "PROCESSING_LEVEL") or "").endswith("1C"):
        raise level_1c(_text(root, "PRODUCT_URI") or "this product")
    uri = _required(root, "PRODUCT_URI", PRODUCT_METADATA).removesuffix(".SAFE")
    provenance = _provenance(root, uri)
    quantification = _number(_required(root, "BOA_QUANTIFICATION_VALUE", PRODUCT_METADATA), "BOA_QUANTIFICATION_VALUE")
    if quantification <= 0:
        raise InvalidScene(f"{PRODUCT_METADATA} has BOA_QUANTIFICATION_VALUE {quantification:g}: it must be positive")
    return ProductMetadata(
        provenance=provenance,
        acquired_at=_utc(_required(root, "PRODUCT_START_TIME", PRODUCT_METADATA)),
        quantification=quantification,
        radiometry=_radiometry(root, quantification, parse_baseline(provenance.processing_baseline)),
        image_files=_image_files(root),
        extension=_extension(root),
    )


def _image_files(root: ET.Element) -> tuple[str, ...]:
    """IMAGE_FILE entries; one pointing outside the SAFE folder is refused, not followed."""
    entries = tuple(e.text.strip() for e in _elements(root, "IMAGE_FILE") if e.text and e.text.strip())
    outside = next((entry for entry in entries if escapes(entry)), None)
    if outside:
        raise InvalidScene(f"{PRODUCT_METADATA} lists IMAGE_FILE {outside!r}, outside the SAFE folder")
    return entries


def _provenance(root: ET.Element, uri: str) -> SceneProvenance:
    orbit = _text(root, "SENSING_ORBIT_NUMBER")
    level = _text(root, "PROCESSING_LEVEL")
    own = SceneProvenance(
        product_id=uri,
        platform=platform_name(_text(root, "SPACECRAFT_NAME")),
        relative_orbit=int(orbit) if orbit and orbit.isdigit() else None,
        processing_baseline=format_baseline(parse_baseline(_text(root, "PROCESSING_BASELINE"))),
        processing_level=level.replace("Level-", "L") if level else None,
    )
    return own.or_else(SceneProvenance.from_product_name(uri))


def _utc(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidScene(f"{PRODUCT_METADATA} has PRODUCT_START_TIME {text!r}: not an ISO 8601 time") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _extension(root: ET.Element) -> str:
    granule = next(_elements(root, "Granule"), None)
    image_format = granule.get("imageFormat", "JPEG2000") if granule is not None else "JPEG2000"
    if image_format not in FILE_EXTENSIONS:
        raise InvalidScene(f"{PRODUCT_METADATA} declares band files as {image_format!r}: expected JPEG2000 or GeoTIFF")
    return FILE_EXTENSIONS[image_format]


def _radiometry(root: ET.Element, quantification: float, baseline: tuple[int, int] | None) -> dict[str, Radiometry]:
    """Each band's ``BOA_ADD_OFFSET`` (matched through Spectral_Information's bandId and
    physicalBand); a product without the list (baselines before 04.00) follows its baseline."""
    offsets = {e.get("band_id"): e.text for e in _elements(root, "BOA_ADD_OFFSET")}
    if not offsets:
        offset_dn = for_baseline(baseline).offset_dn
        return {band: Radiometry.from_dn(offset_dn, quantification) for band in BANDS}
    names = _band_ids(root)
    by_band = {names.get(band_id or ""): text for band_id, text in offsets.items()}
    missing = [band for band in BANDS if not by_band.get(band)]
    if missing:
        raise InvalidScene(f"{PRODUCT_METADATA} lists BOA_ADD_OFFSET values but none for {', '.join(missing)}")
    return {
        band: Radiometry.from_dn(_number(by_band[band], f"BOA_ADD_OFFSET of {band}"), quantification) for band in BANDS
    }


def _band_ids(root: ET.Element) -> dict[str, str]:
    """bandId -> band name (``"8"`` -> ``"B8A"``), with ESA's "B2" spelled "B02"."""
    names = {str(number): band for number, band in enumerate(ESA_BAND_IDS)}
    for element in _elements(root, "Spectral_Information"):
        band_id, physical = element.get("bandId"), element.get("physicalBand")
        if band_id is not None and physical:
            names[band_id] = re.sub(r"^B(\d)$", r"B0\1", physical.strip().upper())
    return names


def parse_tile_grid(root: ET.Element) -> TileGrid:
    """Read MTD_TL.xml (its parsed root): the CRS and the grid at each resolution."""
    crs = _required(root, "HORIZONTAL_CS_CODE", "MTD_TL.xml")
    sizes, positions = _by_resolution(root, "Size"), _by_resolution(root, "Geoposition")
    resolutions = {
        resolution: ResolutionGrid(
            resolution_m=resolution,
            ulx=_tile_number(positions[resolution], "ULX"),
            uly=_tile_number(positions[resolution], "ULY"),
            nrows=int(_tile_number(sizes[resolution], "NROWS")),
            ncols=int(_tile_number(sizes[resolution], "NCOLS")),
        )
        for resolution in sorted(sizes.keys() & positions.keys())
    }
    missing = sorted({BAND_RESOLUTION_M[band] for band in SCENE_BANDS} - resolutions.keys())
    if missing:
        raise InvalidScene(f"MTD_TL.xml gives no grid (Size and Geoposition) at {', '.join(map(str, missing))} m")
    return TileGrid(crs=crs, resolutions=resolutions)


def _by_resolution(root: ET.Element, name: str) -> dict[int, ET.Element]:
    return {int(_number(e.get("resolution"), f"MTD_TL.xml {name} resolution")): e for e in _elements(root, name)}


def _tile_number(element: ET.Element, name: str) -> float:
    return _number(_required(element, name, "MTD_TL.xml"), f"MTD_TL.xml {name}")


# --- Band files -----------------------------------------------------------------------------


def find_band_files(image_files: tuple[str, ...], extension: str, files: SafeFiles) -> dict[str, str]:
    """Each of SCENE_BANDS -> its file relative to the SAFE root, at its finest resolution
    (IMAGE_FILE entries come in any order; matched by their ``_B08_10m`` ending)."""
    found: dict[str, str] = {}
    lacking: list[tuple[str, str]] = []
    for band in SCENE_BANDS:
        ending = f"_{band}_{BAND_RESOLUTION_M[band]}m"
        entry = next((name for name in image_files if name.endswith(ending)), None)
        relative = f"{entry}{extension}" if entry else _expected_file(image_files, band, extension)
        if entry and files.exists(relative):
            found[band] = relative
        else:
            lacking.append((band, relative))
    if lacking:
        band, relative = lacking[0]
        also = f" (also missing: {', '.join(b for b, _ in lacking[1:])})" if len(lacking) > 1 else ""
        raise InvalidScene(f"SAFE lacks {band}: {relative} is missing{also}")
    return found


def _expected_file(image_files: tuple[str, ...], band: str, extension: str) -> str:
    """Where ESA's layout puts a band that MTD_MSIL2A.xml does not list, to name it in the reason."""
    resolution = BAND_RESOLUTION_M[band]
    for name in image_files:
        match = IMAGE_FILE_IN_FOLDER.match(name)
        if match:
            return f"{match['folder']}R{resolution}m/{match['stem']}_{band}_{resolution}m{extension}"
    return f"GRANULE/*/IMG_DATA/R{resolution}m/*_{band}_{resolution}m{extension} (not listed in {PRODUCT_METADATA})"


def gdal_drivers() -> frozenset[str]:
    """The raster drivers of this GDAL build (a test replaces it to play a build without one)."""
    with rasterio.Env() as env:
        return frozenset(env.drivers())


def require_jpeg2000(product_id: str) -> None:
    if JP2_DRIVER not in gdal_drivers():
        raise InvalidScene(
            f"this GDAL build cannot decode JPEG 2000 (no {JP2_DRIVER} driver): {product_id} cannot be read; "
            "install rasterio's wheels or a GDAL built with OpenJPEG"
        )


# --- Opening a product ------------------------------------------------------------------------


def is_safe(path: Path) -> bool:
    """Whether ``path`` looks like a SAFE product to try: a ``*.SAFE`` folder, a folder holding
    ESA product metadata, or a ``.zip`` (which :func:`open_safe` checks, so that a wrong
    archive is quarantined with its reason instead of skipped silently)."""
    if path.is_dir():
        holds_metadata = any((path / name).is_file() for name in (PRODUCT_METADATA, L1C_METADATA))
        return path.suffix.upper() == ".SAFE" or holds_metadata
    return path.is_file() and path.suffix.lower() == ".zip"


def open_safe(path: Path) -> SafeProduct:
    """Read a SAFE product's metadata and find its band files; an unusable product raises
    :class:`InvalidScene` with the reason (Level-1C, missing band, broken archive...)."""
    with safe_files(path) as files:
        if files.exists(L1C_METADATA):
            raise level_1c(path.name)
        if not files.exists(PRODUCT_METADATA):
            raise InvalidScene(f"not a Sentinel-2 SAFE product: {path.name} has no {PRODUCT_METADATA}")
        metadata = parse_product_metadata(_read_xml(files, PRODUCT_METADATA))
        tile_metadata = _tile_metadata(files)
        grid = parse_tile_grid(_read_xml(files, tile_metadata))
        band_files = find_band_files(metadata.image_files, metadata.extension, files)
        root = files.root
    if metadata.extension == ".jp2":
        require_jpeg2000(metadata.provenance.product_id or path.name)
    return SafeProduct(
        root=root,
        provenance=metadata.provenance,
        acquired_at=metadata.acquired_at,
        quantification=metadata.quantification,
        band_files={band: f"{root}/{relative}" for band, relative in band_files.items()},
        radiometry=metadata.radiometry,
        grid=grid,
        members=tuple(f"{root}/{relative}" for relative in (PRODUCT_METADATA, tile_metadata, *band_files.values())),
    )


def _tile_metadata(files: SafeFiles) -> str:
    found = files.matching(TILE_METADATA)
    if len(found) != 1:
        held = "none" if not found else f"{len(found)} granules"
        raise InvalidScene(f"SAFE lacks its tile metadata: expected one {TILE_METADATA}, found {held}")
    return found[0]


def level_1c(name: str) -> InvalidScene:
    """The refusal of a Level-1C product or item, wherever it comes from."""
    return InvalidScene(
        f"{name} is a Level-1C (top-of-atmosphere) product: Crop AI needs Level-2A (L2A) surface reflectance "
        "with its scene classification (SCL); use the S2MSI2A product of this acquisition"
    )


# --- Checking the rasters -------------------------------------------------------------------


def check_rasters(product: SafeProduct) -> None:
    """Open every band file, decode its bottom-right pixel (so that a truncated file fails
    here, not halfway through ingestion) and hold its grid and dtype to MTD_TL.xml."""
    for band, path in product.band_files.items():
        kind = FORMAT_NAMES.get(Path(path).suffix.lower(), "a raster")
        try:
            with rasterio.open(path) as src:
                src.read(1, window=Window(src.width - 1, src.height - 1, 1, 1))
                _check_grid(src, band, path, product.grid)
        except GDAL_ERRORS as exc:
            raise InvalidScene(
                f"{band} ({path}) does not decode as {kind} (truncated or corrupt?): {gdal_reason(exc)}"
            ) from None


def _check_grid(src: rasterio.DatasetReader, band: str, path: str, grid: TileGrid) -> None:
    expected = grid.resolutions[BAND_RESOLUTION_M[band]]
    if not _same_crs(src.crs, grid.crs) or not _same_grid(src, expected):
        said = (
            f"{grid.crs}, {expected.resolution_m} m pixels, origin ({expected.ulx:.12g}, {expected.uly:.12g}), "
            f"{expected.ncols} x {expected.nrows} px"
        )
        raise InvalidScene(
            f"metadata disagrees with the rasters: {band} ({path}) has {_describe_grid(src)}; MTD_TL.xml says {said}"
        )
    allowed = SCL_DTYPES if band == SCL_BAND else ("uint16",)
    if src.dtypes[0] not in allowed:
        raise InvalidScene(f"{band} ({path}) has dtype {src.dtypes[0]}: expected {' or '.join(allowed)}")


def _describe_grid(src: rasterio.DatasetReader) -> str:
    crs = src.crs.to_string() if src.crs else "no CRS"
    t = src.transform
    return f"{crs}, {t.a:.12g} x {-t.e:.12g} m pixels, origin ({t.c:.12g}, {t.f:.12g}), {src.width} x {src.height} px"


def _same_crs(crs: CRS | None, code: str) -> bool:
    if crs is None:
        return False
    try:
        return bool(crs == CRS.from_user_input(code))
    except GDAL_ERRORS:
        return False


def _same_grid(src: rasterio.DatasetReader, expected: ResolutionGrid) -> bool:
    tolerance = 1e-6 * expected.resolution_m
    t = src.transform
    numbers = ((t.a, expected.resolution_m), (t.e, -expected.resolution_m), (t.c, expected.ulx), (t.f, expected.uly))
    return (
        all(abs(a - b) <= tolerance for a, b in numbers)
        and not (t.b or t.d)
        and (src.width, src.height) == (expected.ncols, expected.nrows)
    )


# --- Content hash -----------------------------------------------------------------------------


def content_hash(product: SafeProduct) -> str:
    """SHA-256 (hex) over each member's path inside the SAFE and the SHA-256 of its bytes:
    the same product hashes the same whether it arrives as a folder or as a zip."""
    total = hashlib.sha256()
    with safe_files(_source_path(product.root)) as files:
        for member in product.members:
            relative = member.removeprefix(f"{product.root}/")
            total.update(f"{relative}\0{_file_digest(files, relative)}\n".encode())
    return total.hexdigest()


def _source_path(root: str) -> Path:
    """The folder or archive behind a SAFE's GDAL path."""
    if root.startswith("/vsizip/"):
        return Path(root.removeprefix("/vsizip/").rpartition("/")[0])
    return Path(root)


def _file_digest(files: SafeFiles, relative: str) -> str:
    """SHA-256 of one file, read in chunks: band files are up to about 250 MB."""
    digest = hashlib.sha256()
    with files.open(relative) as stream:
        while chunk := stream.read(HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
