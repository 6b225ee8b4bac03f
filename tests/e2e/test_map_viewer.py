"""The web map viewer in headless Chromium against the running system, in order: an analyst
logs in, draws and uploads an AOI, submits, watches the analysis complete, reads the
legend and a field's crop and evidence over a plain background, switches to the confidence
layer, uploads reference fields and assesses the map; a viewer looks but cannot submit; the
API's refusals reach the user in words."""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import shapely
from PIL import Image
from selenium.webdriver.common.action_chains import ActionChains

from cropai.webtiles import CONFIDENCE_RAMP
from tests.analysis_fixtures import AOI, crop_parcels
from tests.e2e.browser import Browser, chromium
from tests.e2e.conftest import PASSWORD, POLL_DEADLINE_S, Season, System, new_user

MAPPER, VIEWER = "mapper@example.org", "viewer@example.org"


@pytest.fixture(scope="module")
def browser(system: System) -> Iterator[Browser]:
    with chromium(system.ports.api_url) as browser:
        try:
            yield browser
        finally:
            browser.save("map-viewer-last")  # whatever the page showed last, for a failed run


@pytest.fixture(scope="module")
def accounts(http: httpx.Client, admin: dict[str, str]) -> dict[str, dict[str, str]]:
    return {"mapper": new_user(http, admin, MAPPER, "analyst"), "viewer": new_user(http, admin, VIEWER, "viewer")}


@pytest.fixture(scope="module")
def files(season: Season, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """What an analyst has on disk: the AOI and the crop parcels inside it, as GeoJSON."""
    folder = tmp_path_factory.mktemp("viewer-files")
    aoi, parcels = folder / "aoi.geojson", folder / "parcels.geojson"
    aoi.write_text(json.dumps({"type": "Feature", "properties": {"name": "Beauce"}, "geometry": AOI}))
    parcels.write_text(json.dumps({"type": "FeatureCollection", "features": crop_parcels(season.made)}))
    return {"aoi": aoi, "parcels": parcels}


@pytest.fixture(scope="module")
def shared() -> dict:
    """What the steps hand on: the analysis submitted in the browser."""
    return {}


def type_date(browser: Browser, name: str, month_day_year: str) -> None:
    browser.find(f"#new-form input[name={name}]").send_keys(month_day_year)


def submitted(browser: Browser, shared: dict) -> str:
    if "analysis_id" not in shared:
        pytest.skip("needs the analysis submitted by the test before")
    return shared["analysis_id"]


def test_a_wrong_password_is_refused_in_words(browser: Browser, accounts: dict) -> None:
    browser.log_in(MAPPER, "not-the-password")
    assert "wrong email or password" in browser.wait(browser.error)


def test_an_aoi_is_drawn_by_clicking_its_corners(browser: Browser, accounts: dict) -> None:
    browser.log_in(MAPPER, PASSWORD)
    browser.visible("#new-analysis").click()
    browser.visible("#new-form")
    browser.find("#draw").click()
    chart = browser.find("#map")
    clicks = ActionChains(browser.driver)
    for dx, dy in [(-200, -150), (200, -150), (220, 160), (-180, 140)]:  # from the map's centre, px
        clicks.move_to_element_with_offset(chart, dx, dy).click().pause(0.2)
    clicks.perform()
    browser.find("#finish").click()
    browser.wait(lambda: browser.find("#aoi-summary").get_attribute("data-corners") == "4")
    assert re.search(r"AOI: 4 corners, about [\d.]+ km²", browser.find("#aoi-summary").text)


def test_an_invalid_window_is_refused_with_the_api_reason(browser: Browser, files: dict) -> None:
    browser.find("#clear").click()
    browser.find("#aoi-file").send_keys(str(files["aoi"]))  # the uploaded AOI replaces any drawing
    browser.wait(lambda: browser.find("#aoi-summary").get_attribute("data-corners") == "4")
    type_date(browser, "start_date", "09302025")
    type_date(browser, "end_date", "04012025")
    browser.find("#new-form button[type=submit]").click()
    message = browser.wait(browser.error)
    assert "end_date" in message and "before it starts" in message


def test_an_analyst_submits_and_watches_the_analysis_complete(browser: Browser, files: dict, shared: dict) -> None:
    browser.find("#new-form input[name=name]").send_keys("Beauce in the browser")
    type_date(browser, "start_date", "04012025")
    type_date(browser, "end_date", "09302025")
    browser.find("#fields-file").send_keys(str(files["parcels"]))
    browser.find("#new-form button[type=submit]").click()
    page = browser.wait(lambda: re.fullmatch(r".*#/analyses/([0-9a-f-]{36})", browser.driver.current_url))
    shared["analysis_id"] = page.group(1)
    seen: list[str] = []
    deadline = time.monotonic() + POLL_DEADLINE_S
    while browser.find("#view").get_attribute("data-results") != "shown" and time.monotonic() < deadline:
        status = browser.find("#status").text
        if status and (not seen or seen[-1] != status):
            seen.append(status)
        assert status not in ("failed", "cancelled"), browser.find("#reason").text
        time.sleep(0.2)
    assert seen and seen[0] in ("queued", "running") and browser.find("#status").text == "completed", seen
    assert browser.find("#title").text == "Beauce in the browser"


def test_the_legend_lists_the_map_classes_with_their_hectares(
    browser: Browser, http: httpx.Client, accounts: dict, shared: dict
) -> None:
    analysis = http.get(f"/analyses/{submitted(browser, shared)}", headers=accounts["mapper"]).json()
    entries = browser.find_all("#legend li")
    assert [e.get_attribute("data-class") for e in entries] == [c["class_name"] for c in analysis["classes"]]
    shown = [
        float(e.find_element(browser.by.CSS_SELECTOR, ".area").text.removesuffix(" ha").replace(",", ""))
        for e in entries
    ]
    assert shown == pytest.approx([round(c["area_ha"], 1) for c in analysis["classes"]])


def test_a_map_from_a_synthetic_only_model_says_so_above_its_facts(browser: Browser, shared: dict) -> None:
    submitted(browser, shared)
    warnings = browser.find("#warnings")
    assert warnings.is_displayed() and "trained on synthetic scenes only" in warnings.text


def test_clicking_a_field_shows_its_predicted_crop(
    browser: Browser, http: httpx.Client, accounts: dict, shared: dict
) -> None:
    analysis_id = submitted(browser, shared)
    fields = http.get(f"/analyses/{analysis_id}/fields", headers=accounts["mapper"]).json()["features"]
    centre = shapely.geometry.shape(AOI).centroid
    field = min(fields, key=lambda f: shapely.geometry.shape(f["geometry"]).centroid.distance(centre))
    browser.find(f"path.field-{field['id']}").click()
    crop = browser.visible(".leaflet-popup-content [data-fact=crop]")
    assert crop.text == field["properties"]["class_name"].replace("_", " ")
    share = browser.find(".leaflet-popup-content [data-fact=share]").text
    assert share.startswith(f"{round(field['properties']['share'] * 100)} %")
    browser.wait(
        lambda: (
            browser.driver.execute_script("return getComputedStyle(document.querySelector('.leaflet-popup')).opacity")
            == "1"
        )
    )  # faded in
    screenshot = browser.save("map-viewer")
    assert Image.open(screenshot).size[0] >= 1000


def test_a_fields_popup_shows_how_much_of_the_season_was_seen_clear_and_any_lack_of_evidence(
    browser: Browser, http: httpx.Client, accounts: dict, shared: dict
) -> None:
    analysis_id = submitted(browser, shared)
    fields = http.get(f"/analyses/{analysis_id}/fields", headers=accounts["mapper"]).json()["features"]
    browser.find(".leaflet-popup-close-button").click()  # the popup of the test before
    browser.wait(lambda: not browser.find_all(".leaflet-popup"))
    # A field short of evidence when the season has one, to see its marker.
    field = max(fields, key=lambda f: (f["properties"]["insufficient_evidence"], f["properties"]["area_ha"]))
    browser.find(f"path.field-{field['id']}").click()
    seen = browser.visible(".leaflet-popup-content [data-fact=seen-clear]").text
    clear_percent = math.floor((1 - field["properties"]["gap_filled_share"]) * 100 + 0.5)  # as Math.round does
    assert seen == f"{clear_percent} % of the season"
    marker = browser.find_all(".leaflet-popup-content [data-fact=insufficient-evidence]")
    assert bool(marker) == field["properties"]["insufficient_evidence"]


def loaded_tiles(browser: Browser, layer: str) -> list:
    return [
        img
        for img in browser.find_all(f".crop-layer img[data-layer={layer}]")
        if browser.driver.execute_script("return arguments[0].naturalWidth", img) == 256
    ]


def test_the_crop_layer_is_drawn_from_api_tiles_over_a_plain_background(browser: Browser, shared: dict) -> None:
    submitted(browser, shared)
    assert browser.wait(lambda: loaded_tiles(browser, "class"))
    assert browser.find("#map").get_attribute("data-basemap") == "unreachable"
    assert "plain background" in browser.find(".map-note").text


def test_the_confidence_toggle_draws_confidence_tiles_with_the_ramp_in_the_legend(
    browser: Browser, shared: dict
) -> None:
    submitted(browser, shared)
    browser.find("#layer-choice input[value=confidence]").click()
    assert browser.wait(
        lambda: loaded_tiles(browser, "confidence") and not browser.find_all(".crop-layer img[data-layer=class]")
    )
    steps = [item.text for item in browser.visible("#confidence-legend").find_elements(browser.by.CSS_SELECTOR, "li")]
    assert steps == [f"{s.lower_percent}\u2013{s.upper_percent} %" for s in CONFIDENCE_RAMP]
    browser.save("map-viewer-confidence")


def test_the_class_toggle_brings_the_crop_classes_back(browser: Browser, shared: dict) -> None:
    submitted(browser, shared)
    browser.find("#layer-choice input[value=class]").click()
    assert browser.wait(
        lambda: loaded_tiles(browser, "class") and not browser.find_all(".crop-layer img[data-layer=confidence]")
    )
    assert not browser.find("#confidence-legend").is_displayed()


def test_without_an_assessment_the_panel_says_how_to_add_reference_data(browser: Browser, shared: dict) -> None:
    submitted(browser, shared)
    assert "purpose=reference" in browser.visible("#assessment-none").text


def test_assessing_with_reference_fields_shows_the_confusion_matrix(
    browser: Browser, http: httpx.Client, accounts: dict, files: dict, shared: dict
) -> None:
    analysis_id = submitted(browser, shared)
    uploaded = http.post(
        "/fields",
        params={"purpose": "reference", "label_property": "class_name"},  # the parcels' true crops
        headers={**accounts["mapper"], "Content-Type": "application/geo+json"},
        content=files["parcels"].read_bytes(),
    )
    assert uploaded.status_code == 201, uploaded.text
    browser.find("#assess").click()
    browser.visible("#confusion-matrix tbody tr")
    assessment = http.get(f"/analyses/{analysis_id}/assessment", headers=accounts["mapper"]).json()
    rows = browser.find_all("#confusion-matrix tbody tr")
    assert [r.get_attribute("data-class") for r in rows] == [c["name"] for c in assessment["classes"]]
    shown = [[td.text for td in r.find_elements(browser.by.CSS_SELECTOR, "td")] for r in rows]
    assert shown == [[f"{n:,}" for n in counts] for counts in assessment["confusion_matrix"]]
    low, high = (f"{v * 100:.1f} %" for v in assessment["overall_accuracy"]["ci95"])
    assert f"95 % interval {low} \u2013 {high}" in browser.find("#overall-accuracy").text


def test_the_area_table_gives_each_class_its_estimated_hectares_with_an_interval(
    browser: Browser, http: httpx.Client, accounts: dict, shared: dict
) -> None:
    analysis_id = submitted(browser, shared)
    assessment = http.get(f"/analyses/{analysis_id}/assessment", headers=accounts["mapper"]).json()
    rows = browser.find_all("#area-table tbody tr")
    assert [r.get_attribute("data-class") for r in rows] == [c["name"] for c in assessment["per_class"]]
    estimated = [r.find_elements(browser.by.CSS_SELECTOR, "td")[1].text for r in rows]
    assert all(re.fullmatch(r"[\d,.]+ ha ± [\d,.]+ ha", text) for text in estimated), estimated
    assert browser.find("#assessment-note").text == assessment["note"]
    browser.driver.execute_script("document.getElementById('assessment').scrollIntoView()")
    browser.save("map-viewer-assessment")


def test_a_viewer_sees_the_analysis_but_cannot_submit(browser: Browser, accounts: dict, shared: dict) -> None:
    analysis_id = submitted(browser, shared)
    browser.log_out()
    browser.log_in(VIEWER, PASSWORD)
    browser.visible(f"#analyses tr[data-id='{analysis_id}']")
    assert not browser.find("#new-analysis").is_displayed()
    assert "viewer role" in browser.find("#viewer-note").text
    browser.open("#/new")
    assert "needs the analyst role" in browser.visible("#viewer-cannot-submit").text
    assert not browser.find("#new-form button[type=submit]").is_enabled()
