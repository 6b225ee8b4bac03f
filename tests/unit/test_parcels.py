import json
import warnings
import zipfile
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pyarrow  # type: ignore[import-untyped]
import pyarrow.parquet  # type: ignore[import-untyped]
import pytest
import rasterio
import shapely
from affine import Affine
from pyogrio import raw  # type: ignore[import-untyped]
from pyproj import CRS

from cropai.errors import InvalidInput
from cropai.legend import Legend, LegendClass
from cropai.parcels import (
    ClassifiedParcels,
    LabelledParcels,
    check_parcels_cover,
    classify_parcels,
    parcels_bounds_wgs84,
    rasterise_parcels,
    read_parcels,
)
from testkit.realdata import realdata

UTM = "EPSG:32631"
# A 10 x 10 px grid at 10 m: x 500000..500100, y 5600000..5600100.
TRANSFORM = Affine(10.0, 0.0, 500000.0, 0.0, -10.0, 5600100.0)
SHAPE = (10, 10)
WHEAT = shapely.box(500000, 5600000, 500040, 5600100)  # 4 x 10 px
MAIZE = shapely.box(500050, 5600000, 500100, 5600050)  # 5 x 5 px
WHEAT_2 = shapely.box(500050, 5600050, 500100, 5600100)  # 5 x 5 px
PARCELS = (WHEAT, MAIZE, WHEAT_2)
CODES = (1110, 1200, 1110)
FORMATS = [".gpkg", ".parquet", ".shp", ".geojson", ".fgb"]
# GeoParquet metadata of a WKB geometry column, as GeoPandas writes it.
WKB_IN_UTM: dict[str, object] = {
    "encoding": "WKB",
    "geometry_types": ["Polygon"],
    "crs": CRS.from_user_input(UTM).to_json_dict(),
}
SEASON = "worldcereal-flanders-2019"


def write_parcels(
    path: Path,
    geometries: Sequence[shapely.Geometry | None] = PARCELS,
    codes: Sequence[object] = CODES,
    crs: str | None = UTM,
    column: str = "crop_code",
    **options: object,
) -> Path:
    """Write parcels with one label column; numbers as int64, anything else as text."""
    values = np.array(codes, dtype=object if any(not isinstance(c, int) for c in codes) else np.int64)
    kinds = {shapely.get_type_id(g) for g in geometries if g is not None}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyogrio warns on purpose when a test writes no CRS
        raw.write(
            str(path),
            shapely.to_wkb(np.array(geometries, dtype=object)),
            [values],
            [column],
            geometry_type="Polygon" if kinds <= {3} else "Unknown",
            crs=crs,
            **options,
        )
    return path


def classified(
    geometries: Sequence[shapely.Geometry] = PARCELS, codes: Sequence[str] = ("1110", "1200", "1110")
) -> ClassifiedParcels:
    return classify_parcels(LabelledParcels("test", UTM, tuple(geometries), tuple(codes)))


def write_geoparquet(path: Path, geometry_column: dict[str, object] | None = WKB_IN_UTM) -> Path:
    """Write the parcels as GeoParquet, ``geometry_column`` the metadata of their column
    ``geometry`` (None: a plain Parquet file, without 'geo' metadata)."""
    table = pyarrow.table(
        {
            "crop_code": pyarrow.array(CODES, pyarrow.int64()),
            "geometry": pyarrow.array(shapely.to_wkb(np.array(PARCELS, dtype=object)), pyarrow.binary()),
        }
    )
    if geometry_column is not None:
        geo = {"version": "1.1.0", "primary_column": "geometry", "columns": {"geometry": geometry_column}}
        table = table.replace_schema_metadata({"geo": json.dumps(geo)})
    pyarrow.parquet.write_table(table, path)
    return path


@pytest.mark.parametrize("suffix", FORMATS)
def test_parcels_come_back_from_every_format(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"parcels{suffix}"
    parcels = read_parcels(write_geoparquet(path) if suffix == ".parquet" else write_parcels(path), "crop_code")
    assert pyogrio_crs_is(parcels.crs, UTM)
    # FlatGeobuf's spatial index reorders features: compare as sets of (label, outline).
    read = {(label, shapely.normalize(g).wkt) for label, g in zip(parcels.labels, parcels.geometries, strict=True)}
    assert read == {(str(code), shapely.normalize(g).wkt) for code, g in zip(CODES, PARCELS, strict=True)}


def pyogrio_crs_is(crs: str, expected: str) -> bool:
    return bool(CRS.from_user_input(crs) == CRS.from_user_input(expected))


def test_zipped_shapefile_is_read(tmp_path: Path) -> None:
    write_parcels(tmp_path / "fields.shp")
    archive = tmp_path / "fields.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        for part in tmp_path.glob("fields.*"):
            if part != archive:
                zipped.write(part, f"export/{part.name}")
    assert read_parcels(archive, "crop_code").labels == ("1110", "1200", "1110")


def test_zip_without_shapefile_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "fields.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("readme.txt", "no fields here")
    with pytest.raises(InvalidInput, match=r"fields.zip holds no Shapefile \(.shp\)"):
        read_parcels(archive, "crop_code")


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match=r"parcel file .*nope.gpkg does not exist"):
        read_parcels(tmp_path / "nope.gpkg", "crop_code")


def test_unsupported_format_names_the_formats_read(tmp_path: Path) -> None:
    path = tmp_path / "fields.csv"
    path.write_text("id,crop\n1,wheat\n")
    with pytest.raises(InvalidInput, match=r"fields.csv is not in a format .*GeoPackage \(.gpkg\).*FlatGeobuf"):
        read_parcels(path, "crop")


def test_unreadable_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "fields.gpkg"
    path.write_text("not a geopackage")
    with pytest.raises(InvalidInput, match=r"cannot read parcel file .*fields.gpkg .*Crop AI reads GeoPackage"):
        read_parcels(path, "crop_code")


def test_geoparquet_crs_takes_the_form_pyogrio_gives(tmp_path: Path) -> None:
    geoparquet = read_parcels(write_geoparquet(tmp_path / "fields.geoparquet"), "crop_code")
    assert geoparquet.crs == read_parcels(write_parcels(tmp_path / "fields.gpkg"), "crop_code").crs


def test_geoparquet_without_crs_is_wgs84(tmp_path: Path) -> None:
    path = write_geoparquet(tmp_path / "fields.parquet", {"encoding": "WKB"})
    assert read_parcels(path, "crop_code").crs == "EPSG:4326"


def test_geoparquet_with_null_crs_is_refused(tmp_path: Path) -> None:
    path = write_geoparquet(tmp_path / "fields.parquet", {"encoding": "WKB", "crs": None})
    with pytest.raises(InvalidInput, match=r"parcels in no CRS: .*fields.parquet does not declare"):
        read_parcels(path, "crop_code")


def test_parquet_without_geo_metadata_is_refused(tmp_path: Path) -> None:
    path = write_geoparquet(tmp_path / "fields.parquet", None)
    with pytest.raises(InvalidInput, match=r"fields.parquet is a Parquet file but not GeoParquet"):
        read_parcels(path, "crop_code")


def test_geoparquet_in_a_native_encoding_is_refused_naming_it(tmp_path: Path) -> None:
    path = write_geoparquet(tmp_path / "fields.parquet", {**WKB_IN_UTM, "encoding": "polygon"})
    with pytest.raises(InvalidInput, match=r"fields.parquet stores its geometries in the 'polygon' encoding"):
        read_parcels(path, "crop_code")


def test_geoparquet_label_column_missing_lists_the_columns(tmp_path: Path) -> None:
    path = write_geoparquet(tmp_path / "fields.parquet")
    with pytest.raises(InvalidInput, match=r"no label column 'crop': its columns are crop_code$"):
        read_parcels(path, "crop")


def test_unreadable_parquet_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "fields.parquet"
    path.write_bytes(b"PAR1")
    with pytest.raises(InvalidInput, match=r"cannot read parcel file .*fields.parquet"):
        read_parcels(path, "crop_code")


def test_several_layers_need_one_named(tmp_path: Path) -> None:
    path = write_parcels(tmp_path / "fields.gpkg", layer="fields_2019")
    write_parcels(path, layer="fields_2020", codes=(1200, 1200, 1110))
    with pytest.raises(InvalidInput, match=r"2 layers \(fields_2019, fields_2020\): name the one to read"):
        read_parcels(path, "crop_code")


def test_named_layer_is_read(tmp_path: Path) -> None:
    path = write_parcels(tmp_path / "fields.gpkg", layer="fields_2019")
    write_parcels(path, layer="fields_2020", codes=(1200, 1200, 1110))
    assert read_parcels(path, "crop_code", layer="fields_2020").labels == ("1200", "1200", "1110")


def test_unknown_layer_is_refused_naming_the_layers(tmp_path: Path) -> None:
    path = write_parcels(tmp_path / "fields.gpkg", layer="fields_2019")
    with pytest.raises(InvalidInput, match="no layer 'fields_2021'; its layers: fields_2019"):
        read_parcels(path, "crop_code", layer="fields_2021")


def test_missing_label_column_lists_the_columns(tmp_path: Path) -> None:
    path = write_parcels(tmp_path / "fields.gpkg")
    with pytest.raises(InvalidInput, match="no label column 'crop': its columns are crop_code"):
        read_parcels(path, "crop")


def test_label_column_differing_in_case_is_suggested(tmp_path: Path) -> None:
    path = write_parcels(tmp_path / "fields.gpkg", column="CROP_CODE")
    with pytest.raises(InvalidInput, match="did you mean 'CROP_CODE'"):
        read_parcels(path, "crop_code")


def test_file_without_crs_is_refused(tmp_path: Path) -> None:
    path = write_parcels(tmp_path / "fields.gpkg", crs=None)
    with pytest.raises(InvalidInput, match=r"parcels in no CRS: .*fields.gpkg.*ogr2ogr -a_srs EPSG:4326"):
        read_parcels(path, "crop_code")


def test_geojson_without_crs_is_wgs84(tmp_path: Path) -> None:
    feature = {
        "type": "Feature",
        "properties": {"crop": "wheat"},
        "geometry": shapely.geometry.mapping(shapely.box(4, 50, 4.01, 50.01)),
    }
    path = tmp_path / "fields.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [feature]}))
    assert read_parcels(path, "crop").crs == "EPSG:4326"


def test_features_without_geometry_or_label_are_dropped(tmp_path: Path) -> None:
    path = write_parcels(tmp_path / "fields.gpkg", (WHEAT, None, MAIZE, WHEAT_2), ("1110", "1200", None, "1110"))
    parcels = read_parcels(path, "crop_code")
    assert (parcels.labels, parcels.dropped) == (("1110", "1110"), 2)


def test_file_without_usable_parcels_is_refused(tmp_path: Path) -> None:
    path = write_parcels(tmp_path / "fields.gpkg", (WHEAT, MAIZE), (None, None), column="crop")
    with pytest.raises(
        InvalidInput, match="no usable parcels: of 2 features, 0 have no geometry, 2 no value in 'crop'"
    ):
        read_parcels(path, "crop")


def test_points_are_refused_naming_their_type(tmp_path: Path) -> None:
    path = write_parcels(tmp_path / "fields.gpkg", (WHEAT, shapely.Point(500010, 5600010)), (1110, 1200))
    with pytest.raises(InvalidInput, match=r"holds 1 Point geometries .*feature 1.*must be polygons"):
        read_parcels(path, "crop_code")


def test_invalid_polygons_are_repaired(tmp_path: Path) -> None:
    bow_tie = shapely.Polygon([(500000, 5600000), (500040, 5600040), (500040, 5600000), (500000, 5600040)])
    path = write_parcels(tmp_path / "fields.gpkg", (bow_tie, MAIZE), (1110, 1200))
    repaired = read_parcels(path, "crop_code").geometries[0]
    assert shapely.is_valid(repaired) and repaired.area == pytest.approx(800)


def test_without_legend_each_label_value_is_a_class() -> None:
    parcels = classified()
    assert parcels.fields_per_class == {"1110": 2, "1200": 1}
    assert parcels.class_ids == (1, 2, 1)


def test_unknown_label_values_are_named_with_counts() -> None:
    legend = Legend((LegendClass(1, "wheat", "#ff0000", ("1110",)),))
    parcels = LabelledParcels("fields.gpkg", UTM, PARCELS, ("1110", "4242", "4242"))
    with pytest.raises(
        InvalidInput, match=r"label values of fields.gpkg not in the legend: '4242' \(2 parcels\).*to 'ignore'"
    ):
        classify_parcels(parcels, legend)


def test_ignored_labels_are_counted_and_left_out() -> None:
    legend = Legend.from_values(["1110", "1200"])
    legend = Legend(legend.classes, frozenset({"9999"}))
    parcels = LabelledParcels("fields.gpkg", UTM, (*PARCELS, WHEAT), ("1110", "1200", "9999", "9999"))
    result = classify_parcels(parcels, legend)
    assert (result.ignored, result.class_ids) == (2, (1, 2))


def test_legend_classes_without_parcels_are_listed_with_zero() -> None:
    legend = Legend.from_values(["1110", "1200", "5100"])
    result = classify_parcels(LabelledParcels("f", UTM, PARCELS, ("1110", "1200", "1110")), legend, min_fields=0)
    assert result.fields_per_class == {"1110": 2, "1200": 1, "5100": 0}


def test_rare_classes_are_refused_naming_their_counts() -> None:
    legend = Legend.from_values(["1110", "1200", "5100"])
    parcels = LabelledParcels("f", UTM, PARCELS, ("1110", "1200", "1110"))
    with pytest.raises(InvalidInput, match=r"fewer than 2 fields in f: 1200 \(1\), 5100 \(0\); .*--merge-rare"):
        classify_parcels(parcels, legend, min_fields=2)


def test_rare_classes_merge_into_other() -> None:
    labels = ("1", "1", "2", "3", "4", "4")
    parcels = LabelledParcels("f", UTM, (WHEAT,) * 6, labels)
    result = classify_parcels(parcels, min_fields=2, merge_rare=True)
    other = result.legend.by_name()["other"]
    assert (other.id, other.colour, other.codes) == (2, "#9e9e9e", ("2", "3"))
    assert result.fields_per_class == {"1": 2, "other": 2, "4": 2}


def test_other_short_of_the_minimum_is_refused() -> None:
    parcels = LabelledParcels("f", UTM, (WHEAT,) * 5, ("1", "1", "2", "2", "3"))
    with pytest.raises(InvalidInput, match=r"'other', merged from 3, still has 1 fields, fewer than 2"):
        classify_parcels(parcels, min_fields=2, merge_rare=True)


def test_a_single_class_is_refused() -> None:
    parcels = LabelledParcels("f", UTM, PARCELS, ("1110", "1110", "1110"))
    with pytest.raises(InvalidInput, match=r"leave 1 class .*a classifier needs at least two"):
        classify_parcels(parcels)


def test_parcels_burn_class_and_field_ids() -> None:
    labels, fields = rasterise_parcels(classified(), UTM, TRANSFORM, SHAPE)
    assert Counter(labels.ravel().tolist()) == {1: 65, 2: 25, 0: 10}
    assert (fields[:, :4] == 1).all() and (fields[5:, 5:] == 2).all() and (fields[:5, 5:] == 3).all()


def test_parcels_are_reprojected_onto_the_grid() -> None:
    to_wgs84 = pyproj_transform(UTM, "EPSG:4326")
    parcels = LabelledParcels("f", "EPSG:4326", tuple(to_wgs84(g) for g in PARCELS), ("1110", "1200", "1110"))
    labels, _ = rasterise_parcels(classify_parcels(parcels), UTM, TRANSFORM, SHAPE)
    expected, _ = rasterise_parcels(classified(), UTM, TRANSFORM, SHAPE)
    assert (labels == expected).all()


def pyproj_transform(source: str, target: str) -> Callable[[shapely.Geometry], shapely.Geometry]:
    from pyproj import Transformer

    transformer = Transformer.from_crs(source, target, always_xy=True)
    return lambda g: shapely.transform(g, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])))


def test_pixels_under_parcels_of_two_classes_are_unlabelled() -> None:
    overlapping = shapely.box(500030, 5600000, 500060, 5600100)  # over wheat's last and maize's first column
    labels, fields = rasterise_parcels(classified((WHEAT, overlapping), ("1110", "1200")), UTM, TRANSFORM, SHAPE)
    assert (labels[:, 3] == 0).all() and (fields[:, 3] == 0).all()
    assert (labels[:, 4:6] == 2).all()


def test_parcels_of_one_class_may_overlap() -> None:
    overlapping = shapely.box(500020, 5600000, 500050, 5600100)  # over wheat's last two columns and one more
    parcels = classified((WHEAT, overlapping, MAIZE), ("1110", "1110", "1200"))
    labels, _ = rasterise_parcels(parcels, UTM, TRANSFORM, SHAPE)
    assert (labels[:, :5] == 1).all()


def test_inner_buffer_removes_edge_pixels_only() -> None:
    labels, _ = rasterise_parcels(classified(), UTM, TRANSFORM, SHAPE)
    shrunk, _ = rasterise_parcels(classified(), UTM, TRANSFORM, SHAPE, inner_buffer_m=10)
    assert (shrunk[:, :4] == 1).sum() == 2 * 8  # wheat loses one pixel all round
    assert ((shrunk > 0) <= (labels > 0)).all()


def test_parcel_vanishing_in_the_buffer_is_dropped() -> None:
    tiny = shapely.box(500000, 5600000, 500015, 5600015)
    labels, _ = rasterise_parcels(classified((tiny, MAIZE), ("1110", "1200")), UTM, TRANSFORM, SHAPE, 10)
    assert set(np.unique(labels).tolist()) == {0, 2}


def test_inner_buffer_needs_a_grid_in_metres() -> None:
    with pytest.raises(InvalidInput, match="inner buffer in metres needs a grid in metres"):
        rasterise_parcels(classified(), "EPSG:4326", Affine(0.001, 0, 4, 0, -0.001, 51), SHAPE, inner_buffer_m=10)


def test_parcels_outside_the_grid_are_refused() -> None:
    away = Affine(10.0, 0.0, 600000.0, 0.0, -10.0, 5600100.0)
    parcels = classified()
    labels, _ = rasterise_parcels(parcels, UTM, away, SHAPE)
    with pytest.raises(InvalidInput, match="none of the 3 parcels labels a pixel"):
        check_parcels_cover(labels, parcels)


def test_bounds_are_given_in_wgs84() -> None:
    west, south, east, north = parcels_bounds_wgs84(classified())
    assert 2.99 < west < east < 3.01 and 50.55 < south < north < 50.57  # EPSG:32631 x 500000 is 3 E


def flanders_legend(tmp_path: Path) -> Legend:
    """The crop-type (CT) rows of the season's classes.csv as a legend: WorldCereal code -> class."""
    rows = realdata(SEASON, "classes.csv").read_text().splitlines()[1:]
    lines = [f"{r.split(',')[1]},{r.split(',')[4]}" for r in rows if r.startswith("CT,")]
    path = tmp_path / "legend.csv"
    path.write_text("code,class\n" + "\n".join(lines) + "\n")
    return Legend.from_csv(path)


def flanders_raster() -> tuple[np.ndarray, rasterio.crs.CRS, Affine]:
    with rasterio.open(realdata(SEASON, "labels_CT.tif")) as source:
        return source.read(1), source.crs, source.transform


def test_flanders_parcels_classify_under_the_worldcereal_legend(tmp_path: Path) -> None:
    path = realdata(SEASON, "parcels.geojson")
    parcels = classify_parcels(read_parcels(path, "wc_code"), flanders_legend(tmp_path))
    expected = Counter(f["properties"]["class_name"] for f in json.loads(path.read_text())["features"])
    assert parcels.fields_per_class == dict(expected)
    assert parcels.legend.by_name()["winter_barley"].codes == ("1500", "1510")


def test_flanders_parcels_reproduce_the_label_raster(tmp_path: Path) -> None:
    legend = flanders_legend(tmp_path)
    parcels = classify_parcels(read_parcels(realdata(SEASON, "parcels.geojson"), "wc_code"), legend)
    codes, crs, transform = flanders_raster()
    labels, _ = rasterise_parcels(parcels, crs, transform, codes.shape)
    expected = np.zeros_like(labels)
    for cls in legend.classes:
        expected[np.isin(codes, [int(c) for c in cls.codes])] = cls.id
    labelled = expected > 0
    assert (labels[labelled] == expected[labelled]).mean() >= 0.95


def test_flanders_inner_buffer_only_removes_edge_pixels(tmp_path: Path) -> None:
    parcels = classify_parcels(read_parcels(realdata(SEASON, "parcels.geojson"), "wc_code"), flanders_legend(tmp_path))
    codes, crs, transform = flanders_raster()
    labels, _ = rasterise_parcels(parcels, crs, transform, codes.shape)
    shrunk, _ = rasterise_parcels(parcels, crs, transform, codes.shape, inner_buffer_m=10)
    assert (shrunk > 0).sum() < (labels > 0).sum()
    assert (shrunk[shrunk > 0] == labels[shrunk > 0]).all()
