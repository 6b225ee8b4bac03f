"""A sample design for a completed analysis through the API: drawn from the map in the S3
store, in the model's legend, as GeoJSON or CSV; another owner's analysis stays a 404."""

import uuid
from datetime import date
from pathlib import Path

import numpy as np
import rasterio

from cropai.analysis_records import create_analysis
from cropai.config import Settings
from cropai.services import services
from testkit.crop_maps import MAIZE, WHEAT, write_two_class_map
from tests.analysis_fixtures import mapped
from tests.api_fixtures import SQUARE, make_client, new_account


def mapped_analysis(settings: Settings, owner_id: int, folder: Path, tiny_wheat: bool = False) -> uuid.UUID:
    svc = services(settings)
    analysis_id = create_analysis(svc.sessions, SQUARE, date(2025, 4, 1), date(2025, 9, 30), "cropnet@1.0.0", owner_id)
    map_key = f"analyses/{analysis_id}/cropmap.tif"
    path = write_two_class_map(folder / "cropmap.tif")
    if tiny_wheat:  # all maize but a 4 x 4 px patch of winter wheat
        with rasterio.open(path, "r+", IGNORE_COG_LAYOUT_BREAK="YES") as dst:
            labels = dst.read(1)
            labels[labels == WHEAT.id] = MAIZE.id
            inside = np.argwhere(labels > 0)[0]
            labels[inside[0] : inside[0] + 4, inside[1] : inside[1] + 4] = WHEAT.id
            dst.write(labels, 1)
    svc.store.put(map_key, path)
    mapped(svc.sessions, analysis_id, map_key, f"analyses/{analysis_id}/quicklook.png")
    return analysis_id


def test_a_sample_design_is_drawn_from_the_map_per_class_and_repeats_with_its_seed(
    s3_api_settings: Settings, tmp_path: Path
) -> None:
    with make_client(s3_api_settings) as client:
        analyst = new_account(client, s3_api_settings)
        analysis_id = mapped_analysis(s3_api_settings, analyst.id, tmp_path)
        url = f"/analyses/{analysis_id}/sample-design"
        body = {"minimum_per_class": 30, "target_overall_se": 0.02, "seed": 4}
        drawn = client.post(url, json=body, headers=analyst.headers)
        assert drawn.status_code == 200, drawn.text
        design = drawn.json()
        assert set(design["design"]["points_per_class"]) == {"maize", "winter_wheat"}
        assert len(design["features"]) == sum(design["design"]["points_per_class"].values())
        lon, lat = design["features"][0]["geometry"]["coordinates"]
        assert 1.606 <= lon <= 1.634 and 48.204 <= lat <= 48.218  # inside the AOI the map covers
        again = client.post(url, json=body, headers=analyst.headers).json()
        assert again["features"] == design["features"]
        csv = client.post(f"{url}?format=csv", json=body, headers=analyst.headers)
        assert csv.headers["content-type"].startswith("text/csv")
        assert len(csv.text.splitlines()) == len(design["features"]) + 1


def test_a_class_too_small_for_the_minimum_is_a_422_and_another_owner_gets_a_404(
    s3_api_settings: Settings, tmp_path: Path
) -> None:
    with make_client(s3_api_settings) as client:
        analyst, other = new_account(client, s3_api_settings), new_account(client, s3_api_settings)
        analysis_id = mapped_analysis(s3_api_settings, analyst.id, tmp_path, tiny_wheat=True)
        url = f"/analyses/{analysis_id}/sample-design"
        refused = client.post(url, json={"minimum_per_class": 30}, headers=analyst.headers)
        assert (
            refused.status_code == 422 and "winter_wheat (16 px) have fewer pixels than the 30 points" in refused.text
        )
        assert client.post(url, json={}, headers=other.headers).status_code == 404
