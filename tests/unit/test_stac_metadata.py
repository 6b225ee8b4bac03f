"""Radiometry and provenance of real Sentinel-2 STAC items (Earth Search v0 and v1, Planetary
Computer), as the catalogues published them (``../shared/realdata/stac``, README section 2)."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

import pytest

from cropai.provenance import SceneProvenance
from cropai.radiometry import BOA_ADD_OFFSET_DN, Radiometry
from cropai.stac_metadata import asset_radiometry, item_provenance
from testkit.realdata import realdata


@dataclass(frozen=True)
class RealItem:
    """Item ``entry`` of a real file: a single item, a JSON list of items or a Cirrus payload's ``features``."""

    parts: tuple[str, ...]
    entry: int = 0

    def load(self) -> dict[str, Any]:
        document = json.loads(realdata("stac", *self.parts).read_text(encoding="utf-8"))
        if isinstance(document, list):
            return dict(document[self.entry])
        if "features" in document:
            return dict(document["features"][self.entry])
        return dict(document)


ES1_L2A_2020 = RealItem(("earth-search-v1", "sentinel-2-l2a", "S2A_28QCH_20200714_0_L2A.json"))
ES1_L2A_2023 = RealItem(("earth-search-v1", "sentinel-2-l2a", "S2A_13TDE_20231008_0_L2A.json"))
ES1_L2A_2025 = RealItem(("earth-search-v1", "sentinel-2-l2a", "S2B_20EPT_20250731_0_L2A.json"))
ES1_C1_L2A = RealItem(("earth-search-v1", "sentinel-2-c1-l2a", "S2B_T20EPT_20250731T131905_L2A.json"))
ES1_L1C = RealItem(("earth-search-v1", "sentinel-2-l1c", "S2B_20EPT_20250731_0_L1C.json"))
ES1_EARLY = RealItem(("earth-search-v1", "early-v1-jp2-payload", "sentinel2-l2a-j2k-payload.json"))
ES0_2022_JAN = RealItem(("earth-search-v0", "S2B_42TUM_20220107_0_L2A.json"))
ES0_2022_NOV = RealItem(("earth-search-v0", "S2A_17SPR_20221106_0_L2A.json"))
PC_2019 = RealItem(("planetary-computer", "S2B_MSIL2A_20190629T212529_R043_T06VVN_20201006T080531.json"))
PC_2024 = RealItem(("planetary-computer", "sentinel-2-l2a-pc.json"))
OFFSET = BOA_ADD_OFFSET_DN  # -1000 DN


@pytest.mark.parametrize(
    ("item", "asset_key", "offset_dn"),
    [
        pytest.param(ES1_L2A_2020, "red", 0, id="es1-l2a-02.14-flag-false-offset-0"),
        pytest.param(ES1_L2A_2023, "red", 0, id="es1-l2a-05.09-flag-true-beats-offset"),
        pytest.param(ES1_L2A_2023, "nir08", 0, id="es1-l2a-05.09-flag-true-nir08"),
        pytest.param(ES1_L2A_2025, "red", 0, id="es1-l2a-05.11-flag-true"),
        pytest.param(ES1_L2A_2025, "red-jp2", OFFSET, id="es1-l2a-05.11-esa-jp2-beside-flag"),
        pytest.param(ES1_L2A_2023, "swir16-jp2", OFFSET, id="es1-l2a-05.09-esa-jp2-beside-flag"),
        pytest.param(ES1_L2A_2020, "red-jp2", 0, id="es1-l2a-02.14-esa-jp2"),
        pytest.param(ES1_C1_L2A, "red", OFFSET, id="es1-c1-l2a-red"),
        pytest.param(ES1_C1_L2A, "nir08", OFFSET, id="es1-c1-l2a-nir08"),
        pytest.param(ES1_C1_L2A, "swir22", OFFSET, id="es1-c1-l2a-swir22"),
        pytest.param(ES1_EARLY, "red", OFFSET, id="es1-early-jp2-first-feature"),
        pytest.param(replace(ES1_EARLY, entry=1), "nir08", OFFSET, id="es1-early-jp2-second-feature"),
        pytest.param(ES1_L1C, "red", OFFSET, id="es1-l1c-radio-offset"),
        pytest.param(ES0_2022_JAN, "B04", 0, id="es0-03.01-only-in-product-id"),
        pytest.param(ES0_2022_NOV, "B04", 0, id="es0-04.00-flag-true"),
        pytest.param(PC_2019, "B04", 0, id="pc-02.12"),
        pytest.param(PC_2024, "B04", OFFSET, id="pc-05.10-b04"),
        pytest.param(replace(PC_2024, entry=3), "B8A", OFFSET, id="pc-05.10-b8a-fourth-item"),
    ],
)
def test_reflectance_offset_follows_the_provider_rule(item: RealItem, asset_key: str, offset_dn: int) -> None:
    assert asset_radiometry(item.load(), asset_key) == Radiometry.from_dn(offset_dn)


@pytest.mark.parametrize(
    ("item", "asset_key"),
    [
        pytest.param(ES1_C1_L2A, "scl", id="es1-c1-l2a"),
        pytest.param(ES1_L2A_2023, "scl-jp2", id="es1-l2a-esa-jp2"),
        pytest.param(ES1_EARLY, "scl", id="es1-early-jp2"),
        pytest.param(ES0_2022_NOV, "SCL", id="es0"),
        pytest.param(PC_2024, "SCL", id="pc-05.10"),
    ],
)
def test_scene_classes_are_never_offset(item: RealItem, asset_key: str) -> None:
    assert asset_radiometry(item.load(), asset_key).is_canonical


def test_asset_level_raster_scale_and_offset_of_stac_1_1() -> None:
    # The shape of CDSE's STAC 1.1 items (odc-stac tests/data/..._cdse_stac_v110.json): no
    # raster:bands, scale and offset on the asset, the band named in "bands".
    item = {
        "id": "S2C_MSIL2A_20250330T100051_N0511_R122_T33UWP_20250330T145914",
        "properties": {"processing:version": "05.11", "product:type": "S2MSI2A"},
        "assets": {
            "B04_10m": {"bands": [{"name": "B04"}], "raster:scale": 0.0001, "raster:offset": -0.1},
            "SCL_20m": {"data_type": "uint8"},
        },
    }
    assert [asset_radiometry(item, key).offset_dn for key in ("B04_10m", "SCL_20m")] == [OFFSET, 0]


def test_an_unknown_asset_is_refused_by_name() -> None:
    with pytest.raises(KeyError, match="no asset 'B99'"):
        asset_radiometry(PC_2019.load(), "B99")


@pytest.mark.parametrize(
    ("item", "level_1c"),
    [
        pytest.param(ES1_L1C, True, id="es1-l1c"),
        pytest.param(ES1_L2A_2025, False, id="es1-l2a"),
        pytest.param(ES1_C1_L2A, False, id="es1-c1-l2a"),
        pytest.param(ES1_EARLY, False, id="es1-early-jp2"),
        pytest.param(ES0_2022_JAN, False, id="es0"),
        pytest.param(PC_2024, False, id="pc"),
    ],
)
def test_level_1c_items_are_told_apart(item: RealItem, level_1c: bool) -> None:
    assert item_provenance(item.load()).is_level_1c is level_1c


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        pytest.param(
            ES1_L2A_2020,
            SceneProvenance(
                "S2A_MSIL2A_20200714T115221_N0214_R123_T28QCH_20200714T191310",
                "sentinel-2a",
                "28QCH",
                123,
                "02.14",
                "L2A",
            ),
            id="es1-l2a-2020",
        ),
        pytest.param(
            ES1_L2A_2023,
            SceneProvenance(
                "S2A_MSIL2A_20231008T175231_N0509_R141_T13TDE_20231008T233154",
                "sentinel-2a",
                "13TDE",
                141,
                "05.09",
                "L2A",
            ),
            id="es1-l2a-2023",
        ),
        pytest.param(
            ES1_C1_L2A,
            SceneProvenance(
                "S2B_MSIL2A_20250731T131909_N0511_R095_T20EPT_20250731T143919",
                "sentinel-2b",
                "20EPT",
                95,
                "05.11",
                "L2A",
            ),
            id="es1-c1-l2a",
        ),
        pytest.param(
            ES1_L1C,
            SceneProvenance(
                "S2B_MSIL1C_20250731T131909_N0511_R095_T20EPT_20250731T143530",
                "sentinel-2b",
                "20EPT",
                95,
                "05.11",
                "L1C",
            ),
            id="es1-l1c",
        ),
        pytest.param(
            ES1_EARLY,
            SceneProvenance(None, "sentinel-2a", "52HGH", None, "04.00", "L2A"),
            id="es1-early-jp2-no-product-name",
        ),
        pytest.param(
            replace(ES1_EARLY, entry=1),
            SceneProvenance(None, "sentinel-2b", "05CNL", None, "04.00", "L2A"),
            id="es1-early-jp2-one-digit-zone",
        ),
        pytest.param(
            ES0_2022_JAN,
            SceneProvenance(
                "S2B_MSIL2A_20220107T063239_N0301_R077_T42TUM_20220107T084202",
                "sentinel-2b",
                "42TUM",
                77,
                "03.01",
                "L2A",
            ),
            id="es0-baseline-from-product-id",
        ),
        pytest.param(
            ES0_2022_NOV,
            SceneProvenance(
                "S2A_MSIL2A_20221106T155441_N0400_R054_T17SPR_20221106T204155",
                "sentinel-2a",
                "17SPR",
                54,
                "04.00",
                "L2A",
            ),
            id="es0-2022-nov",
        ),
        pytest.param(
            PC_2019,
            SceneProvenance(
                "S2B_MSIL2A_20190629T212529_N0212_R043_T06VVN_20201006T080531",
                "sentinel-2b",
                "06VVN",
                43,
                "02.12",
                "L2A",
            ),
            id="pc-2019",
        ),
        pytest.param(
            PC_2024,
            SceneProvenance(
                "S2B_MSIL2A_20240419T095549_N0510_R122_T47XML_20240419T123458",
                "sentinel-2b",
                "47XML",
                122,
                "05.10",
                "L2A",
            ),
            id="pc-2024",
        ),
    ],
)
def test_provenance_of_real_items(item: RealItem, expected: SceneProvenance) -> None:
    assert item_provenance(item.load()) == expected


def test_product_name_is_found_in_asset_hrefs_when_no_property_says_it() -> None:
    item = PC_2024.load()
    del item["properties"]["s2:product_uri"]
    assert item_provenance(item).product_id == "S2B_MSIL2A_20240419T095549_N0510_R122_T47XML_20240419T123458"
