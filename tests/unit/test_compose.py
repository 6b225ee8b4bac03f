"""docker-compose.yml, checked without a Docker engine: every service's program exists in
the project's image, startup order waits on health, secrets come from .env.example."""

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from cropai.cli import app as cropai_app

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
OUR_IMAGES = {"cropai:cpu", "cropai:cuda"}
# On CI a missing compose client fails the validation test instead of skipping it (see .ci/run).
REQUIRE_COMPOSE = os.environ.get("CROPAI_REQUIRE_COMPOSE") == "1"


def argv(service: dict) -> list[str]:
    command = service["command"]
    if command[:2] == ["sh", "-c"]:
        return command[2].split("&&")[0].split()
    return command


def cropai_commands() -> set[str]:
    names = {c.name or getattr(c.callback, "__name__", "") for c in cropai_app.registered_commands}
    return names | {g.name for g in cropai_app.registered_groups if g.name}


@pytest.mark.parametrize("name", [n for n, s in SERVICES.items() if s.get("image") in OUR_IMAGES])
def test_every_project_service_runs_a_program_the_image_has(name: str) -> None:
    service = SERVICES[name]
    program, *rest = argv(service)
    assert program in {"cropai", "prefect", "dask"}, name
    if program == "cropai":
        assert rest[0] in cropai_commands(), f"{name}: cropai {rest[0]} does not exist"
    for step in service["command"][2].split("&&") if service["command"][:2] == ["sh", "-c"] else []:
        words = shlex.split(step)
        if words[0] == "cropai":
            assert words[1] in cropai_commands(), f"{name}: {step}"


def test_every_dependency_waits_on_a_condition_its_target_can_meet() -> None:
    for name, service in SERVICES.items():
        for target, rule in (service.get("depends_on") or {}).items():
            condition = rule["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in SERVICES[target], f"{name} waits for {target}'s health, which has no check"
            else:
                assert condition == "service_completed_successfully" and SERVICES[target]["restart"] == "no", name


def test_long_running_services_have_health_checks_or_are_workers() -> None:
    for name, service in SERVICES.items():
        if service.get("restart") == "no" or name in ("dask-worker", "dask-cuda-worker", "prefect-worker"):
            continue
        assert "healthcheck" in service, name


def test_gpu_workers_are_a_profile_reserving_nvidia_devices() -> None:
    gpu = SERVICES["dask-cuda-worker"]
    assert gpu["profiles"] == ["gpu"] and argv(gpu)[:3] == ["dask", "cuda", "worker"]
    assert gpu["deploy"]["resources"]["reservations"]["devices"][0]["driver"] == "nvidia"


def test_every_variable_the_stack_reads_is_documented_in_env_example() -> None:
    text = (ROOT / "docker-compose.yml").read_text()
    used = set(re.findall(r"(?<!\$)\$\{(\w+)", text))
    documented = set(re.findall(r"^(\w+)=", (ROOT / ".env.example").read_text(), re.M))
    assert used <= documented, used - documented


@pytest.mark.parametrize("dockerfile", ["deploy/Dockerfile", "deploy/Dockerfile.cuda"])
def test_images_run_as_a_non_root_user_and_pin_torch(dockerfile: str) -> None:
    text = (ROOT / dockerfile).read_text()
    assert re.search(r"^USER (?!root)\w+", text, re.M)
    assert "torch==2.13.0" in text
    for copied in re.findall(r"^COPY (?!--from)(?:--\S+ )*(\S+) ", text, re.M):
        assert (ROOT / copied).exists(), f"{dockerfile} copies {copied}, which is not in the repository"


def published_addresses(service: dict) -> list[str]:
    """The host address of each published port ('' for every address of the host)."""
    addresses = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            addresses.append(port.get("host_ip", ""))
        else:  # [HOST_IP:]HOST_PORT:CONTAINER_PORT, the ports maybe ${VARIABLE:-default}
            parts = re.sub(r"\$\{[^}]*\}", "PORT", str(port)).split(":")
            addresses.append(parts[0] if len(parts) == 3 else "")
    return addresses


@pytest.mark.parametrize("name", [n for n, s in SERVICES.items() if s.get("ports") and n != "api"])
def test_no_service_but_the_api_is_published_beyond_the_host_loopback(name: str) -> None:
    # The Prefect API starts and cancels any flow run and reads every AOI; operators tunnel to it.
    assert published_addresses(SERVICES[name]) == ["127.0.0.1"] * len(SERVICES[name]["ports"]), name


def test_the_dask_dashboard_is_published_on_the_host_loopback() -> None:
    scheduler = SERVICES["dask-scheduler"]
    assert any(str(port).endswith(":8787") for port in scheduler["ports"])
    assert "--dashboard-address" in scheduler["command"]


def test_the_prefect_api_requires_the_auth_string_every_client_sends() -> None:
    required = "${PREFECT_AUTH_STRING:?set PREFECT_AUTH_STRING in .env}"
    assert SERVICES["prefect-server"]["environment"]["PREFECT_SERVER_API_AUTH_STRING"] == required
    clients = [name for name, service in SERVICES.items() if "PREFECT_API_URL" in (service.get("environment") or {})]
    assert {"api", "prefect-worker", "prefect-deploy", "dask-worker", "dask-cuda-worker"} <= set(clients)
    for name in clients:
        assert SERVICES[name]["environment"].get("PREFECT_API_AUTH_STRING") == required, name


def test_the_worker_and_the_analyze_deployment_bound_how_much_runs_at_once() -> None:
    worker = argv(SERVICES["prefect-worker"])
    assert int(worker[worker.index("--limit") + 1]) >= 1
    deployments = yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]
    [analyze] = [d for d in deployments if d["name"] == "analyze"]
    assert analyze["concurrency_limit"] >= 1


def compose_client() -> list[str]:
    """`docker compose` (the v2 plugin) where it is installed, else Debian's `docker-compose`."""
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    message = "no compose client: install Debian's docker-compose (or Docker's compose plugin)"
    if REQUIRE_COMPOSE:
        pytest.fail(message)
    pytest.skip(message)


def compose_config(env_file: Path, *options: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            *compose_client(),
            "--env-file",
            str(env_file),
            "-f",
            str(ROOT / "docker-compose.yml"),
            *options,
            "config",
            "-q",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("profile", [[], ["--profile", "gpu"]], ids=["cpu", "gpu"])
def test_the_compose_client_accepts_the_file_with_the_example_env(profile: list[str]) -> None:
    result = compose_config(ROOT / ".env.example", *profile)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_compose_client_refuses_to_start_without_the_secrets(tmp_path: Path) -> None:
    (tmp_path / "empty.env").write_text("")
    result = compose_config(tmp_path / "empty.env")
    assert result.returncode != 0
    assert "set CROPAI_SECRET_KEY in .env" in result.stderr or "set POSTGRES_USER in .env" in result.stderr


def test_the_compose_client_refuses_to_start_without_the_prefect_auth_string(tmp_path: Path) -> None:
    example = (ROOT / ".env.example").read_text()
    (tmp_path / "no-auth.env").write_text(re.sub(r"^PREFECT_AUTH_STRING=.*$", "", example, flags=re.M))
    result = compose_config(tmp_path / "no-auth.env")
    assert result.returncode != 0
    assert "set PREFECT_AUTH_STRING in .env" in result.stderr
