"""Band recognition, validation and the canonical COG stack, on tiny rasters."""

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine
from rio_cogeo.cogeo import cog_validate

from cropai import sentinel2
from cropai.errors import InvalidScene
from cropai.ingest import acquisition_time
from cropai.raster import SceneLayout, canonical_band, measure_scene, plan_layout, write_cog
from cropai.sources import SceneAsset, SceneCandidate

ORIGIN = Affine(10, 0, 400_000, 0, -10, 5_340_000)


def write(path: Path, data: np.ndarray, transform: Affine = ORIGIN, names=None, **profile) -> str:
    options = dict(
        driver="GTiff",
        width=data.shape[2],
        height=data.shape[1],
        count=data.shape[0],
        dtype=str(data.dtype),
        crs="EPSG:32631",
        transform=transform,
        nodata=0,
    )
    options.update(profile)
    with rasterio.open(path, "w", **options) as dst:
        dst.write(data)
        if names:
            dst.descriptions = names
    return str(path)


def stack(height: int = 64, width: int = 48, bands: int = 11) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(1, 10_000, size=(bands, height, width), dtype=np.uint16)


@pytest.mark.parametrize(
    ("name", "band"),
    [
        ("B02", "B02"),
        ("blue", "B02"),
        ("nir08", "B8A"),
        ("B8A", "B8A"),
        ("swir22", "B12"),
        ("scl", "SCL"),
        ("visual", None),
    ],
)
def test_provider_band_names_map_to_sentinel2_bands(name: str, band: str | None) -> None:
    assert canonical_band(name) == band


def test_bands_are_found_by_description_in_any_order(tmp_path: Path) -> None:
    names = list(reversed((*sentinel2.BANDS, "SCL")))
    layout = plan_layout([(write(tmp_path / "a.tif", stack(), names=names), None)])
    assert layout.bands == [*sentinel2.BANDS, "SCL"]
    assert layout.sources[0].band_index == 11  # B02 is the file's last band


@pytest.mark.parametrize(
    ("profile", "reason"),
    [
        ({"dtype": "float32"}, "expected uint16"),
        ({"nodata": 65535}, "expected 0"),
        ({"crs": None}, "no CRS"),
    ],
)
def test_unusable_pixels_are_refused_with_the_reason(tmp_path: Path, profile: dict, reason: str) -> None:
    data = stack().astype(profile.get("dtype", "uint16"))
    path = write(tmp_path / "a.tif", data, names=[*sentinel2.BANDS, "SCL"], **profile)
    with pytest.raises(InvalidScene, match=reason):
        plan_layout([(path, None)])


def test_a_band_mapping_must_name_every_band(tmp_path: Path) -> None:
    path = write(tmp_path / "a.tif", stack())
    with pytest.raises(InvalidScene, match="band_mapping names 3 bands but the file has 11"):
        plan_layout([(path, None)], band_mapping=["B02", "B03", "B04"])
    with pytest.raises(InvalidScene, match="unknown band names"):
        plan_layout(
            [(path, None)], band_mapping=["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B99", None]
        )


def test_bands_in_different_crs_cannot_be_stacked(tmp_path: Path) -> None:
    files = [
        (write(tmp_path / f"{b}.tif", stack(bands=1), crs="EPSG:32631" if b != "B12" else "EPSG:32632"), (b,))
        for b in sentinel2.BANDS
    ]
    with pytest.raises(InvalidScene, match="different CRSs"):
        plan_layout(files)


def test_20_m_bands_are_resampled_onto_the_10_m_grid(tmp_path: Path) -> None:
    files = []
    for band in (*sentinel2.BANDS, "SCL"):
        coarse = band in ("B05", "B06", "B07", "B8A", "B11", "B12", "SCL")
        data = np.full(
            (1, 32, 24) if coarse else (1, 64, 48),
            1000 + sentinel2.BANDS.index(band) if band != "SCL" else 4,
            np.uint16,
        )
        transform = ORIGIN @ Affine.scale(2) if coarse else ORIGIN
        files.append((write(tmp_path / f"{band}.tif", data, transform), (band,)))
    layout = plan_layout(files)
    assert (layout.width, layout.height, layout.resolution_m) == (48, 64, 10.0)
    out = tmp_path / "scene.tif"
    write_cog(layout, {"SCENE_ID": "x"}, out)
    assert cog_validate(str(out), quiet=True)[0]
    with rasterio.open(out) as cog:
        assert cog.res == (10.0, 10.0) and cog.tags()["SCENE_ID"] == "x"
        assert cog.read(4)[10, 10] == 1003 and cog.read(11)[63, 47] == 4  # B05 and SCL filled in


def test_footprint_follows_valid_data_only(tmp_path: Path) -> None:
    data = stack(height=200, width=200)
    data[:, :, 100:] = 0  # the eastern half is outside the swath
    path = tmp_path / "half.tif"
    write(path, data, names=[*sentinel2.BANDS, "SCL"])
    measures = measure_scene(path)
    assert measures.valid_fraction == pytest.approx(0.5, abs=0.01)
    with rasterio.open(path) as src:
        from rasterio.warp import transform_bounds

        west, _, east, _ = transform_bounds(src.crs, "EPSG:4326", *src.bounds)
    assert measures.bbox_wgs84[2] == pytest.approx((west + east) / 2, abs=0.001)


def test_all_nodata_scene_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.tif"
    write(path, np.zeros((11, 20, 20), np.uint16), names=[*sentinel2.BANDS, "SCL"])
    with pytest.raises(InvalidScene, match="every pixel is nodata"):
        measure_scene(path)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("S2A_MSIL2A_20250415T103021_N0511_R108_T31UCP.tif", datetime(2025, 4, 15, 10, 30, 21, tzinfo=UTC)),
        ("field_20250602.tif", datetime(2025, 6, 2, tzinfo=UTC)),
    ],
)
def test_acquisition_time_from_the_file_name(name: str, expected: datetime) -> None:
    layout = SceneLayout((), "EPSG:32631", ORIGIN, 1, 1, tags={})
    assert acquisition_time(SceneCandidate(name, name, (SceneAsset(name),)), layout) == expected


def test_no_acquisition_time_anywhere_is_refused() -> None:
    layout = SceneLayout((), "EPSG:32631", ORIGIN, 1, 1, tags={})
    with pytest.raises(InvalidScene, match="no acquisition time"):
        acquisition_time(SceneCandidate("scene.tif", "scene.tif", (SceneAsset("scene.tif"),)), layout)


@pytest.mark.parametrize("shift_m", [0, 10], ids=["aligned", "half-a-pixel-off"])
def test_scl_at_20_m_lands_on_the_10_m_grid_as_gdal_would_put_it(tmp_path: Path, shift_m: int) -> None:
    """SCL classes (uint8, 20 m) onto 10 m by nearest neighbour: a whole-factor copy when the grids
    line up (every SAFE product), GDAL's resampled read when they do not; the same pixels."""
    height, width = 1100, 48  # more than two 512-row strips, the last one short
    files = [(write(tmp_path / f"{band}.tif", stack(height, width, 1)), (band,)) for band in sentinel2.BANDS]
    extra = 1 if shift_m else 0
    shape = (1, height // 2 + extra, width // 2 + extra)
    classes = np.random.default_rng(7).integers(0, 12, size=shape, dtype=np.uint8)
    scl_transform = Affine(20, 0, ORIGIN.c - shift_m, 0, -20, ORIGIN.f + shift_m)
    scl = write(tmp_path / "SCL.tif", classes, scl_transform)
    layout = plan_layout([*files, (scl, ("SCL",))])
    out = tmp_path / "scene.tif"
    write_cog(layout, {}, out)
    with rasterio.open(scl) as src, rasterio.open(out) as cog:
        expected = src.read(
            1,
            window=rasterio.windows.from_bounds(*cog.bounds, transform=src.transform),
            out_shape=(height, width),
            resampling=rasterio.enums.Resampling.nearest,
        )
        np.testing.assert_array_equal(cog.read(11), expected)
