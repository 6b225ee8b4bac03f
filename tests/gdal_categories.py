"""What GDAL itself reads of a raster's class band: its category names and its raster
attribute table, through GDAL's C API in the libgdal rasterio loads (rasterio exposes neither)."""

from __future__ import annotations

import ctypes
import ctypes.util
from pathlib import Path

import pytest
import rasterio


def _libgdal() -> ctypes.CDLL:
    bundled = sorted((Path(rasterio.__file__).parent.parent / "rasterio.libs").glob("libgdal*.so*"))
    found = str(bundled[0]) if bundled else ctypes.util.find_library("gdal")
    if found is None:
        pytest.skip("no libgdal to call: rasterio is neither a wheel nor linked to a system GDAL")
    gdal = ctypes.CDLL(found)
    for name, result, arguments in (
        ("GDALOpen", ctypes.c_void_p, [ctypes.c_char_p, ctypes.c_int]),
        ("GDALGetRasterBand", ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_int]),
        ("GDALGetRasterCategoryNames", ctypes.POINTER(ctypes.c_char_p), [ctypes.c_void_p]),
        ("GDALGetDefaultRAT", ctypes.c_void_p, [ctypes.c_void_p]),
        ("GDALRATGetRowCount", ctypes.c_int, [ctypes.c_void_p]),
        ("GDALRATGetColumnCount", ctypes.c_int, [ctypes.c_void_p]),
        ("GDALRATGetValueAsString", ctypes.c_char_p, [ctypes.c_void_p, ctypes.c_int, ctypes.c_int]),
        ("GDALClose", None, [ctypes.c_void_p]),
    ):
        function = getattr(gdal, name)
        function.restype, function.argtypes = result, arguments
    gdal.GDALAllRegister()
    return gdal


def class_band_categories(path: Path) -> tuple[list[str], list[list[str]]]:
    """(category names by pixel value, rows of the attribute table) of band 1 of ``path``, as GDAL
    reads them (from the ``.aux.xml`` beside it)."""
    gdal = _libgdal()
    dataset = gdal.GDALOpen(str(path).encode(), 0)
    assert dataset, f"GDAL cannot open {path}"
    try:
        band = gdal.GDALGetRasterBand(dataset, 1)
        # The attribute table first: the GeoTIFF driver reads the sidecar on the first call that
        # needs it, and asking for category names alone is not one (gdalinfo and QGIS ask more).
        table, rows = gdal.GDALGetDefaultRAT(band), []
        if table:
            columns = gdal.GDALRATGetColumnCount(table)
            for row in range(gdal.GDALRATGetRowCount(table)):
                rows.append([gdal.GDALRATGetValueAsString(table, row, c).decode() for c in range(columns)])
        names: list[str] = []
        pointer = gdal.GDALGetRasterCategoryNames(band)
        while pointer and pointer[len(names)] is not None:
            names.append(pointer[len(names)].decode())
        return names, rows
    finally:
        gdal.GDALClose(dataset)
