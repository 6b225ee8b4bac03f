"""A sample design for a completed analysis through the API: drawn from the map in the S3
store, in the model's legend, as GeoJSON or CSV; another owner's analysis stays a 404. Its
labels come back, or reference fields are uploaded, and the map is assessed against them."""

import csv
import io
import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from cropai.config import Settings
from cropai.db import Role
from tests.analysis_fixtures import two_class_analysis
from tests.api_fixtures import SQUARE, Account, make_client, new_account
from tests.conftest import export_settings
from tests.integration.api.test_api_catalogue import collection, parcel


def mapped_analysis(settings: Settings, owner_id: int, folder: Path, tiny_wheat: bool = False) -> uuid.UUID:
    return two_class_analysis(settings, owner_id, SQUARE, folder, tiny_wheat=tiny_wheat)


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


# --- labels and assessments --------------------------------------------------------------------
# The map is maize west of about 1.620 E and winter wheat east of it, inside the AOI.

DESIGN = {"minimum_per_class": 30, "target_overall_se": 0.02, "seed": 4}


def reference_parcel(x: float, y: float, name: str, crop: str | None) -> dict[str, Any]:
    feature = parcel(x, y, name, size=0.004)
    if crop is not None:
        feature["properties"]["crop"] = crop
    return feature


def upload_reference_fields(client: TestClient, account: Account, *features: dict[str, Any]) -> list[int]:
    response = client.post(
        "/fields?purpose=reference&label_property=crop", json=collection(*features), headers=account.headers
    )
    assert response.status_code == 201, response.text
    return response.json()["ids"]


def labelled_design(client: TestClient, account: Account, analysis_id: uuid.UUID, wrong: int = 0) -> str:
    """The design's CSV with each point labelled as its map class, but the first ``wrong`` maize
    points labelled winter wheat."""
    exported = client.post(f"/analyses/{analysis_id}/sample-design?format=csv", json=DESIGN, headers=account.headers)
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    out = io.StringIO()
    writer = csv.DictWriter(out, [*rows[0], "label"], lineterminator="\n")
    writer.writeheader()
    maize = [row for row in rows if row["map_class"] == "maize"]
    for row in rows:
        writer.writerow({**row, "label": "winter_wheat" if row in maize[:wrong] else row["map_class"]})
    return out.getvalue()


def post_labels(client: TestClient, account: Account, analysis_id: uuid.UUID, text: str) -> Any:
    return client.post(
        f"/analyses/{analysis_id}/sample-labels",
        content=text.encode(),
        headers={**account.headers, "Content-Type": "text/csv"},
    )


def assess(client: TestClient, account: Account, analysis_id: uuid.UUID) -> Any:
    return client.post(f"/analyses/{analysis_id}/assessment", headers=account.headers)


def test_reference_fields_assess_the_map_and_the_assessment_is_kept(s3_api_settings: Settings, tmp_path: Path) -> None:
    with make_client(s3_api_settings) as client:
        analyst = new_account(client, s3_api_settings)
        analysis_id = mapped_analysis(s3_api_settings, analyst.id, tmp_path)
        ids = upload_reference_fields(
            client,
            analyst,
            reference_parcel(1.608, 48.206, "west", "maize"),
            reference_parcel(1.624, 48.206, "east", "winter_wheat"),
            reference_parcel(1.626, 48.212, "east-wrong", "maize"),
        )
        assessed = assess(client, analyst, analysis_id)
        assert assessed.status_code == 200, assessed.text
        result = assessed.json()
        assert (result["source"], result["unit"]) == ("fields", "pixels")
        assert [c["name"] for c in result["classes"]] == ["winter_wheat", "maize"]
        assert result["fields"]["assessed"] == 3 and result["fields"]["agreeing"] == 2
        assert result["fields"]["disagreeing"] == [
            {"field_id": ids[2], "reference": "maize", "predicted": "winter_wheat"}
        ]
        assert result["sample_size"] == sum(map(sum, result["confusion_matrix"]))
        low, high = result["overall_accuracy"]["ci95"]
        assert 0.0 < low <= result["overall_accuracy"]["value"] <= high < 1.0
        assert client.get(f"/analyses/{analysis_id}/assessment", headers=analyst.headers).json() == result


def test_reference_fields_are_listed_apart_with_their_labels(s3_api_settings: Settings) -> None:
    with make_client(s3_api_settings) as client:
        analyst = new_account(client, s3_api_settings)
        client.post("/fields", json=collection(parcel(1.60, 48.20, "training")), headers=analyst.headers)
        upload_reference_fields(client, analyst, reference_parcel(1.61, 48.21, "reference", "maize"))
        listed = client.get("/fields?purpose=reference", headers=analyst.headers).json()["features"]
        assert [
            (f["properties"]["name"], f["properties"]["purpose"], f["properties"]["reference_label"]) for f in listed
        ] == [("reference", "reference", "maize")]


def test_a_reference_field_without_its_label_refuses_the_upload_naming_it(s3_api_settings: Settings) -> None:
    with make_client(s3_api_settings) as client:
        analyst = new_account(client, s3_api_settings)
        refused = client.post(
            "/fields?purpose=reference&label_property=crop",
            json=collection(
                reference_parcel(1.61, 48.21, "labelled", "maize"), reference_parcel(1.62, 48.21, "bare", None)
            ),
            headers=analyst.headers,
        )
        assert refused.status_code == 422 and "feature 1 (bare) has no value in the property 'crop'" in refused.text
        assert client.get("/fields", headers=analyst.headers).json()["total"] == 0


def test_training_on_a_reference_field_is_a_422_naming_it(s3_api_settings: Settings) -> None:
    with make_client(s3_api_settings) as client:
        analyst = new_account(client, s3_api_settings)
        (reference,) = upload_reference_fields(client, analyst, reference_parcel(1.61, 48.21, "kept", "maize"))
        body = {"name": "beauce", "label_property": "crop", "start": "2025-04-01", "end": "2025-09-30"}
        refused = client.post("/models", json={**body, "field_ids": [reference]}, headers=analyst.headers)
        assert refused.status_code == 422 and f"fields {reference} are reference fields" in refused.json()["detail"]


def test_a_sample_labelled_as_mapped_gives_full_accuracy_with_zero_width_intervals(
    s3_api_settings: Settings, tmp_path: Path
) -> None:
    with make_client(s3_api_settings) as client:
        analyst = new_account(client, s3_api_settings)
        analysis_id = mapped_analysis(s3_api_settings, analyst.id, tmp_path)
        labelled = labelled_design(client, analyst, analysis_id)
        stored = post_labels(client, analyst, analysis_id, labelled)
        assert stored.status_code == 200, stored.text
        assert stored.json()["count"] == len(labelled.splitlines()) - 1
        result = assess(client, analyst, analysis_id).json()
        assert (result["source"], result["unit"], result["fields"]) == ("sample", "points", None)
        assert result["overall_accuracy"]["value"] == pytest.approx(1.0)
        assert result["overall_accuracy"]["ci95"] == pytest.approx([1.0, 1.0])
        for row in result["per_class"]:
            assert row["estimated_area_ha"]["value"] == pytest.approx(row["mapped_area_ha"])
            assert row["estimated_area_ha"]["standard_error"] == pytest.approx(0.0)


def test_labels_that_disagree_with_the_map_lower_its_accuracy(s3_api_settings: Settings, tmp_path: Path) -> None:
    with make_client(s3_api_settings) as client:
        analyst = new_account(client, s3_api_settings)
        analysis_id = mapped_analysis(s3_api_settings, analyst.id, tmp_path)
        assert post_labels(
            client, analyst, analysis_id, labelled_design(client, analyst, analysis_id, wrong=6)
        ).is_success
        result = assess(client, analyst, analysis_id).json()
        maize = next(c for c in result["per_class"] if c["name"] == "maize")
        assert result["overall_accuracy"]["value"] < 1.0 and maize["users_accuracy"]["value"] < 1.0
        assert result["confusion_matrix"][1][0] == 6  # map maize, reference winter wheat


def test_a_label_outside_the_legend_is_a_422_naming_it_and_keeps_the_earlier_labels(
    s3_api_settings: Settings, tmp_path: Path
) -> None:
    with make_client(s3_api_settings) as client:
        analyst = new_account(client, s3_api_settings)
        analysis_id = mapped_analysis(s3_api_settings, analyst.id, tmp_path)
        labelled = labelled_design(client, analyst, analysis_id)
        assert post_labels(client, analyst, analysis_id, labelled).is_success
        oats = labelled.replace(",maize\n", ",oats\n", 1)
        refused = post_labels(client, analyst, analysis_id, oats)
        assert refused.status_code == 422 and "'oats'" in refused.text and "winter_wheat" in refused.text
        assert assess(client, analyst, analysis_id).json()["overall_accuracy"]["value"] == pytest.approx(1.0)


def test_without_reference_data_an_assessment_is_a_422_saying_how_to_add_some(
    s3_api_settings: Settings, tmp_path: Path
) -> None:
    with make_client(s3_api_settings) as client:
        analyst = new_account(client, s3_api_settings)
        analysis_id = mapped_analysis(s3_api_settings, analyst.id, tmp_path)
        upload_reference_fields(client, analyst, reference_parcel(2.35, 48.85, "paris", "maize"))  # outside the AOI
        refused = assess(client, analyst, analysis_id)
        assert refused.status_code == 422 and "POST /fields?purpose=reference" in refused.json()["detail"]
        missing = client.get(f"/analyses/{analysis_id}/assessment", headers=analyst.headers)
        assert missing.status_code == 404 and "POST /analyses" in missing.text


def test_viewers_may_read_but_not_run_an_assessment_and_other_analysts_see_none(
    s3_api_settings: Settings, tmp_path: Path
) -> None:
    with make_client(s3_api_settings) as client:
        analyst, other = new_account(client, s3_api_settings), new_account(client, s3_api_settings)
        viewer = new_account(client, s3_api_settings, Role.viewer)
        analysis_id = mapped_analysis(s3_api_settings, analyst.id, tmp_path)
        upload_reference_fields(client, analyst, reference_parcel(1.608, 48.206, "west", "maize"))
        assert assess(client, viewer, analysis_id).status_code == 403
        assert assess(client, other, analysis_id).status_code == 404
        assert assess(client, analyst, analysis_id).status_code == 200
        assert client.get(f"/analyses/{analysis_id}/assessment", headers=viewer.headers).status_code == 200
        assert client.get(f"/analyses/{analysis_id}/assessment", headers=other.headers).status_code == 404


def test_the_flows_assessment_step_stores_the_assessment_and_shows_it_as_an_artifact(
    s3_api_settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from tasks.assess import assess_map

    export_settings(monkeypatch, s3_api_settings)  # as a flow run reads them
    with make_client(s3_api_settings) as client:
        analyst = new_account(client, s3_api_settings)
        analysis_id = mapped_analysis(s3_api_settings, analyst.id, tmp_path)
        assert assess_map(analysis_id) is None  # no reference data: nothing to assess
        upload_reference_fields(client, analyst, reference_parcel(1.608, 48.206, "west", "maize"))
        result = assess_map(analysis_id)
        assert result is not None and result["fields"]["agreeing"] == 1
        served = client.get(f"/analyses/{analysis_id}/assessment", headers=analyst.headers).json()
        assert (served["fields"], served["confusion_matrix"]) == (result["fields"], result["confusion_matrix"])
    with get_client(sync_client=True) as prefect:
        artifacts = prefect.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["analysis-assessment"]))
        )
    assert any(str(analysis_id) in str(artifact.data) for artifact in artifacts)
