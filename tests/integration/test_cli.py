"""The ``cropai`` command as a user runs it: a separate process with its own environment."""

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import rasterio
from typer.main import get_command
from typer.testing import CliRunner

from cropai.cli import app

CROPAI = [sys.executable, "-c", "from cropai.cli import main; main()"]


def run(args: list[str], home: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CROPAI_")}
    clean.update(CROPAI_HOME=str(home), COLUMNS="200", **env)
    return subprocess.run([*CROPAI, *args], env=clean, capture_output=True, text=True, timeout=300)


def test_help_lists_the_commands(tmp_path: Path) -> None:
    result = run(["--help"], tmp_path)
    assert result.returncode == 0
    for command in ("synth", "db", "store", "check"):
        assert command in result.stdout


def test_every_command_and_group_has_help() -> None:
    """Walks the command tree, so a new command is covered without a new test."""
    runner = CliRunner()

    def paths(command: object, path: list[str]) -> Iterator[list[str]]:
        yield path
        for name, sub in getattr(command, "commands", {}).items():
            yield from paths(sub, [*path, name])

    walked = []
    for path in paths(get_command(app), []):
        result = runner.invoke(app, [*path, "--help"])
        assert result.exit_code == 0 and "Usage:" in result.output, (path, result.output)
        walked.append(" ".join(path))
    assert {"up", "db current", "models show", "users create"} <= set(walked)


@pytest.mark.parametrize(
    "args",
    [
        ["models", "list"],
        ["users", "list"],
        ["store", "ls"],
        ["db", "current"],
        ["check"],
        ["models", "show", "cropnet@latest"],
    ],
    ids=" ".join,
)
def test_read_only_commands_on_a_new_home_answer_without_a_traceback(tmp_path: Path, args: list[str]) -> None:
    result = run(args, tmp_path)
    assert "Traceback" not in result.stdout + result.stderr
    one_error_line = result.stderr.startswith("error:") and result.stderr.count("\n") == 1
    assert result.returncode == 0 or (result.returncode == 2 and one_error_line), result.stderr


def test_a_server_catalogue_without_the_schema_stops_a_command_saying_what_to_run(
    tmp_path: Path, postgres_url: str
) -> None:
    result = run(["users", "list"], tmp_path, CROPAI_DATABASE_URL=postgres_url)
    assert result.returncode == 2
    assert "is at revision none: run `cropai db upgrade`" in result.stderr


def test_check_and_db_current_report_a_server_catalogue_without_the_schema_and_leave_it_so(
    tmp_path: Path, postgres_url: str
) -> None:
    checked = run(["check"], tmp_path, CROPAI_DATABASE_URL=postgres_url)
    assert checked.returncode == 1 and "at revision none: run `cropai db upgrade`" in checked.stdout
    current = run(["db", "current"], tmp_path, CROPAI_DATABASE_URL=postgres_url)
    assert "revision none (run `cropai db upgrade`)" in current.stdout


def test_synth_writes_scenes_that_cog_tools_accept(tmp_path: Path) -> None:
    out = tmp_path / "set"
    result = run(
        ["synth", str(out), "--bbox", "1.60,48.20,1.61,48.21", "--start", "2025-05-01", "--end", "2025-05-20"],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    scenes = sorted((out / "scenes").glob("*.tif"))
    assert len(scenes) == 4
    rio = Path(sys.executable).with_name("rio")
    validate = subprocess.run([str(rio), "cogeo", "validate", str(scenes[0])], capture_output=True, text=True)
    assert "is a valid cloud optimized GeoTIFF" in validate.stdout
    info = subprocess.run([str(rio), "info", str(scenes[0])], capture_output=True, text=True)
    assert '"crs": "EPSG:32631"' in info.stdout and '"count": 11' in info.stdout
    with rasterio.open(out / "labels.tif") as src:
        assert src.colormap(1)


def test_db_upgrade_then_check_reports_both_services(tmp_path: Path) -> None:
    assert run(["db", "upgrade"], tmp_path).returncode == 0
    result = run(["check"], tmp_path)
    assert result.returncode == 0, result.stdout
    assert "database" in result.stdout and "store" in result.stdout and "ok" in result.stdout


def test_bad_setting_exits_2_naming_the_variable(tmp_path: Path) -> None:
    result = run(["check"], tmp_path, CROPAI_ENVIRONMENT="prod")
    assert result.returncode == 2
    assert "CROPAI_ENVIRONMENT='prod'" in result.stderr and "dev or production" in result.stderr


def test_unreachable_database_exits_2_with_masked_url(tmp_path: Path) -> None:
    from tests.conftest import free_port

    url = f"postgresql+psycopg://crop:s3cret@127.0.0.1:{free_port()}/cropai"
    result = run(["db", "upgrade"], tmp_path, CROPAI_DATABASE_URL=url)
    assert result.returncode == 2
    assert "crop:***@" in result.stderr and "s3cret" not in result.stderr


@pytest.mark.parametrize("bbox", ["1,2,3", "a,b,c,d"])
def test_malformed_bbox_is_explained(tmp_path: Path, bbox: str) -> None:
    result = run(["synth", "--bbox", bbox], tmp_path)
    assert result.returncode == 2
    assert "minx,miny,maxx,maxy" in result.stderr


def test_ingest_command_lands_a_folder_and_reports_counts(tmp_path: Path, prefect_api: str) -> None:
    from tests.scene_files import corrupt_file, small_scene_set

    small_scene_set(tmp_path / "set", scenes=2)
    corrupt_file(tmp_path / "set" / "scenes" / "broken.tif")
    assert run(["db", "upgrade"], tmp_path).returncode == 0
    result = run(["ingest", str(tmp_path / "set" / "scenes")], tmp_path, PREFECT_API_URL=prefect_api)
    assert result.returncode == 0, result.stderr
    assert "3 found, 2 ingested, 0 skipped as duplicates, 1 rejected" in result.stdout


def test_ingest_command_exits_1_when_the_source_is_unreadable(tmp_path: Path, prefect_api: str) -> None:
    assert run(["db", "upgrade"], tmp_path).returncode == 0
    result = run(["ingest", str(tmp_path / "missing")], tmp_path, PREFECT_API_URL=prefect_api)
    assert result.returncode == 1
    assert "does not exist" in result.stderr


def test_models_commands_register_list_and_show_the_shipped_model(tmp_path: Path) -> None:
    from models.registry import DEFAULT_MODEL_DIR

    assert run(["db", "upgrade"], tmp_path).returncode == 0
    registered = run(["models", "register", str(DEFAULT_MODEL_DIR)], tmp_path)
    assert registered.returncode == 0 and "registered cropnet@1.0.0" in registered.stdout
    listed = run(["models", "list"], tmp_path)
    assert "cropnet@1.0.0" in listed.stdout
    shown = run(["models", "show", "cropnet@latest"], tmp_path)
    assert '"tile_size": 256' in shown.stdout and '"macro_f1"' in shown.stdout
    unknown = run(["models", "show", "cropnet@9.9.9"], tmp_path)
    assert unknown.returncode == 2 and "known versions: cropnet@1.0.0" in unknown.stderr


@pytest.mark.parametrize(
    ("aoi", "args", "message"),
    [
        ('{"type": "Point", "coordinates": [1.6, 48.2]}', [], "expected a Polygon or MultiPolygon"),
        ("not json", [], "expected a readable GeoJSON file"),
        (
            '{"type": "Polygon", "coordinates": [[[1.6, 48.2], [1.7, 48.2], [1.7, 48.3], [1.6, 48.2]]]}',
            ["--model", "CropNet@1"],
            "expected name@version",
        ),
        (
            '{"type": "Polygon", "coordinates": [[[1.6, 48.2], [1.7, 48.2], [1.7, 48.3], [1.6, 48.2]]]}',
            ["--end", "2025-03-01"],
            "ends (2025-03-01) before it starts",
        ),
    ],
    ids=["point", "not-json", "model-ref", "window"],
)
def test_analyze_refuses_bad_requests_before_running(tmp_path: Path, aoi: str, args: list[str], message: str) -> None:
    (tmp_path / "aoi.geojson").write_text(aoi)
    assert run(["db", "upgrade"], tmp_path).returncode == 0
    base = ["analyze", "--aoi", str(tmp_path / "aoi.geojson"), "--start", "2025-04-01", "--end", "2025-09-30"]
    result = run([*base, *args], tmp_path)
    assert result.returncode == 2
    assert message in result.stderr


def test_analyze_command_maps_an_ingested_season(tmp_path: Path, prefect_api: str) -> None:
    from cropai.config import Settings
    from cropai.services import services
    from tests.analysis_fixtures import AOI, ingested_season

    assert run(["db", "upgrade"], tmp_path).returncode == 0
    ingested_season(services(Settings(home=tmp_path, _env_file=None)), tmp_path / "season")
    (tmp_path / "aoi.geojson").write_text(json.dumps({"type": "Feature", "geometry": AOI, "properties": {}}))
    result = run(
        ["analyze", "--aoi", str(tmp_path / "aoi.geojson"), "--start", "2025-04-01", "--end", "2025-09-30"],
        tmp_path,
        PREFECT_API_URL=prefect_api,
        CROPAI_DASK_WORKERS="1",
    )
    assert result.returncode == 0, result.stderr
    assert "winter_wheat" in result.stdout and "cropmap.tif" in result.stdout and "quicklook.png" in result.stdout
    assert "trained on synthetic scenes only" in result.stdout  # the default model's warning

    analysis_id = result.stdout.split("analysis ", 1)[1].split(":", 1)[0]
    designed = run(["assess", "design", analysis_id, "--out", str(tmp_path / "sample"), "--minimum", "20"], tmp_path)
    assert designed.returncode == 0, designed.stderr
    points = json.loads((tmp_path / "sample" / "sample.geojson").read_text())["features"]
    assert len(points) >= 20 and {p["properties"]["map_class"] for p in points} >= {"winter_wheat"}
    assert (tmp_path / "sample" / "sample.csv").read_text().count("\n") == len(points) + 1


def test_users_create_admin_then_the_api_on_uvicorn_lets_them_in(tmp_path: Path) -> None:
    import json
    import urllib.parse
    import urllib.request

    from tests.conftest import free_port, wait_for_http

    created = run(
        ["users", "create", "Root@Example.org", "--admin"], tmp_path, CROPAI_NEW_USER_PASSWORD="a-long-admin-password"
    )
    assert created.returncode == 0, created.stderr
    assert "created admin root@example.org" in created.stdout
    again = run(
        ["users", "create", "root@example.org", "--admin"], tmp_path, CROPAI_NEW_USER_PASSWORD="a-long-admin-password"
    )
    assert again.returncode == 2 and "exists already" in again.stderr
    short = run(["users", "create", "x@example.org"], tmp_path, CROPAI_NEW_USER_PASSWORD="short")
    assert short.returncode == 2 and "password" in short.stderr

    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CROPAI_")}
    server = subprocess.Popen(
        [*CROPAI, "api", "--port", str(port)],
        env={**clean, "CROPAI_HOME": str(tmp_path)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for_http(f"http://127.0.0.1:{port}/healthz", deadline_s=60)
        form = urllib.parse.urlencode({"username": "root@example.org", "password": "a-long-admin-password"}).encode()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/auth/token", data=form, timeout=10) as response:
            token = json.load(response)["access_token"]
        me = urllib.request.Request(f"http://127.0.0.1:{port}/auth/me", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(me, timeout=10) as response:
            assert json.load(response)["role"] == "admin"
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=30)
    access = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    assert {"POST /auth/token", "GET /auth/me"} <= {f"{line['method']} {line['path']}" for line in access}


def test_users_create_names_every_rule_the_account_breaks(tmp_path: Path) -> None:
    result = run(["users", "create", "not-an-address", "--role", "boss"], tmp_path, CROPAI_NEW_USER_PASSWORD="short")
    assert result.returncode == 2
    for rule in ("not a valid email address", "at least 10 characters", "role 'boss'"):
        assert rule in result.stderr, result.stderr


def test_models_ensure_default_is_safe_to_repeat(tmp_path: Path) -> None:
    assert run(["db", "upgrade"], tmp_path).returncode == 0
    for _ in range(2):  # the compose `migrate` service runs it on every start
        result = run(["models", "ensure-default"], tmp_path)
        assert result.returncode == 0, result.stderr
        assert "model ready cropnet@1.0.0" in result.stdout


def test_up_refuses_a_port_in_use_naming_its_option(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run(["up", "--api-port", str(port)], tmp_path)
    assert result.returncode == 2
    assert "already in use on 127.0.0.1:" in result.stderr and f"--api-port {port}" in result.stderr
    assert not (tmp_path / "logs").exists()  # nothing was started


def test_train_from_declared_parcels_then_map_in_their_legend(tmp_path: Path, prefect_api: str) -> None:
    """A user's road: a folder of real scenes, a GeoPackage of declared parcels with national
    crop codes and a legend CSV -> a registered model in that legend and season -> a map."""
    from testkit.labelled_parcels import FLANDERS, write_declared_parcels, write_legend
    from testkit.realdata import realdata

    gpkg = write_declared_parcels(realdata(FLANDERS, "parcels.geojson"), tmp_path / "declarations.gpkg")
    legend = write_legend(tmp_path / "legend.csv")
    env = {"PREFECT_API_URL": prefect_api, "CROPAI_DASK_WORKERS": "1"}
    assert run(["db", "upgrade"], tmp_path).returncode == 0
    train = [
        "train", str(realdata(FLANDERS, "scenes")), "--fields", str(gpkg), "--label-column", "crop_code",
        "--legend", str(legend), "--season", "2018-10-01/2019-09-30", "--merge-rare", "--name", "flanders",
        "--epochs", "3", "--steps", "4",
    ]  # fmt: skip
    trained = run(train, tmp_path, **env)
    assert trained.returncode == 0, trained.stderr
    assert "registered flanders@1.0.0" in trained.stdout and "baseline" in trained.stdout

    shown = run(["models", "show", "flanders@latest"], tmp_path)
    assert '"synthetic_only": false' in shown.stdout and '"season_described": "12 monthly bins from 1 October"' in (
        shown.stdout
    )
    mapped = run(
        ["analyze", "--aoi", str(realdata(FLANDERS, "aoi.geojson")), "--start", "2018-10-01", "--end", "2019-09-30",
         "--model", "flanders@latest"],
        tmp_path,
        **env,
    )  # fmt: skip
    assert mapped.returncode == 0, mapped.stderr
    assert "warning" not in mapped.stdout
    cog = next((tmp_path / "store" / "analyses").rglob("cropmap.tif"))
    with rasterio.open(cog) as src:
        assert set(json.loads(src.tags()["CLASSES"]).values()) == {
            "winter_wheat",
            "maize",
            "barley",
            "other",
            "grassland",
        }


def test_train_refuses_a_missing_label_column_and_registers_nothing(tmp_path: Path, prefect_api: str) -> None:
    from testkit.labelled_parcels import FLANDERS, write_declared_parcels
    from testkit.realdata import realdata

    gpkg = write_declared_parcels(realdata(FLANDERS, "parcels.geojson"), tmp_path / "declarations.gpkg")
    assert run(["db", "upgrade"], tmp_path).returncode == 0
    result = run(
        ["train", "--fields", str(gpkg), "--label-column", "crop", "--season", "2019-04-01/2019-09-30",
         "--name", "flanders"],
        tmp_path,
        PREFECT_API_URL=prefect_api,
    )  # fmt: skip
    assert result.returncode == 2 and "crop_code" in result.stderr and "'crop'" in result.stderr
    assert "flanders" not in run(["models", "list"], tmp_path).stdout
