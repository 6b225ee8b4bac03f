import numpy as np

from cropai import sentinel2
from cropai.crops import CLASSES, CLASSES_BY_NAME, colour_table
from cropai.phenology import PHENOLOGY, endmembers


def ndvi(name: str, doy: int) -> float:
    phenology = PHENOLOGY[name]
    reflectance = np.array([*phenology.fractions(doy), 0.0])
    reflectance[3] = 1 - reflectance[:3].sum()
    spectrum = reflectance @ endmembers(phenology)
    red, nir = spectrum[sentinel2.BANDS.index("B04")], spectrum[sentinel2.BANDS.index("B08")]
    return float((nir - red) / (nir + red))


def test_every_class_has_a_phenology_and_a_colour() -> None:
    assert set(PHENOLOGY) == {c.name for c in CLASSES}
    assert set(colour_table()) == {0, *(c.id for c in CLASSES)}


def test_at_least_eight_crops_and_some_non_crop_classes() -> None:
    assert sum(c.is_crop for c in CLASSES) >= 8
    assert {"forest", "water", "built_up", "grassland"} <= set(CLASSES_BY_NAME)


def test_winter_wheat_is_green_in_spring_and_harvested_by_august() -> None:
    assert ndvi("winter_wheat", 130) > 0.7
    assert ndvi("winter_wheat", 225) < 0.3


def test_maize_greens_up_in_summer() -> None:
    assert ndvi("maize", 120) < 0.3
    assert ndvi("maize", 215) > 0.7


def test_rapeseed_flowers_raise_green_reflectance() -> None:
    phenology = PHENOLOGY["rapeseed"]
    green_band = sentinel2.BANDS.index("B03")

    def b03(doy: int) -> float:
        fractions = np.array([*phenology.fractions(doy), 0.0])
        fractions[3] = 1 - fractions[:3].sum()
        return float((fractions @ endmembers(phenology))[green_band])

    assert b03(115) > b03(145) + 0.02


def test_water_stays_dark_in_the_near_infrared() -> None:
    assert ndvi("water", 200) < 0
