"""`cropai up`'s supervision with real processes: small servers that crash or stop slowly,
run by a Stack in a process of their own (as `cropai up` runs them), and a real Prefect
server for readiness and authentication."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from api.orchestrator import Orchestrator
from cropai.cli.loopback import free_port
from cropai.cli.supervisor import (
    LOOPBACK,
    PYTHON,
    SERVED_DEPLOYMENTS,
    Ports,
    Program,
    Stack,
    StackError,
    deployment_server,
    prefect_server,
    signal_group,
)
from cropai.config import Settings
from cropai.errors import ServiceUnavailable

DEADLINE_S = 60
# A server answering GET with 200 on PORT; it exits with status 3 after EXIT_AFTER_S (0: never)
# and, with IGNORE_TERM=1, ignores SIGTERM and keeps a child that ignores it too: a slow stop.
PROGRAM = """
import http.server, os, signal, subprocess, sys, threading
port, exit_after_s, ignore_term = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3] == "1"
if ignore_term:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                      "time.sleep(600)"])
if exit_after_s:
    threading.Timer(exit_after_s, os._exit, [3]).start()

class Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args):
        pass

http.server.HTTPServer(("127.0.0.1", port), Ok).serve_forever()
"""
# `cropai up` in small: start the programs, watch them, stop them on Ctrl-C or when one
# has used up its restart budget.
STACK = """
import json, sys
from pathlib import Path
from cropai.cli.supervisor import Program, RestartPolicy, Stack, StackError

def say(line):
    sys.stdout.write(line + "\\n")
    sys.stdout.flush()

config = json.loads(sys.argv[1])
programs = [Program(p["name"], [sys.executable, config["program"], str(p["port"]), str(p["exit_after_s"]),
                                "1" if p["ignore_term"] else "0"],
                    ready_urls=(f"http://127.0.0.1:{p['port']}/",)) for p in config["programs"]]
try:
    with Stack(Path(config["logs"]), report=say, restarts=RestartPolicy(**config["policy"])) as stack:
        for running in [stack.launch(program) for program in programs]:
            stack.wait_ready(running)
        say("up")
        stack.watch(poll_s=0.1)
except KeyboardInterrupt:
    say("stopped")
except StackError as exc:
    say(f"error: {exc}")
    sys.exit(1)
"""


class MiniStack:
    """The small stack above, in a session of its own; what it printed goes to a file."""

    def __init__(self, tmp_path: Path, programs: list[dict], **policy: float) -> None:
        (tmp_path / "program.py").write_text(PROGRAM)
        config = {
            "program": str(tmp_path / "program.py"),
            "logs": str(tmp_path / "logs"),
            "policy": policy,
            "programs": [{"port": free_port(), "exit_after_s": 0, "ignore_term": False, **p} for p in programs],
        }
        self.output = tmp_path / "stack.out"
        with self.output.open("wb") as sink:
            self.process = subprocess.Popen(
                [PYTHON, "-c", STACK, json.dumps(config)], stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
            )

    def printed(self) -> str:
        return self.output.read_text()

    def wait_for(self, text: str, count: int = 1) -> None:
        deadline = time.monotonic() + DEADLINE_S
        while self.printed().count(text) < count:
            assert self.process.poll() is None and time.monotonic() < deadline, f"no {text!r}:\n{self.printed()}"
            time.sleep(0.05)

    def exit_status(self, timeout_s: float = DEADLINE_S) -> int:
        return self.process.wait(timeout=timeout_s)

    def groups(self) -> list[int]:
        """Every process group the stack started (restarted ones too): their leaders' pids."""
        return [int(pid) for pid in re.findall(r"^ready .* pid (\d+) ", self.printed(), re.MULTILINE)]

    def kill(self) -> None:
        for pid in [*self.groups(), self.process.pid]:
            signal_group(pid, signal.SIGKILL)
        self.process.wait()


@pytest.fixture
def mini_stack(tmp_path: Path) -> Iterator[Callable[..., MiniStack]]:
    made: list[MiniStack] = []

    def start(programs: list[dict], **policy: float) -> MiniStack:
        made.append(MiniStack(tmp_path, programs, **policy))
        return made[-1]

    yield start
    for stack in made:  # whatever a failed test left running
        stack.kill()


def test_a_second_ctrl_c_during_a_slow_shutdown_kills_every_group_and_exits_cleanly(
    mini_stack: Callable[..., MiniStack],
) -> None:
    stack = mini_stack([{"name": name, "ignore_term": True} for name in ("prefect-server", "api", "dask-worker")])
    stack.wait_for("up")
    stack.process.send_signal(signal.SIGINT)
    stack.wait_for("stopping 3 programs")  # each ignores SIGTERM: the stop would wait 20 s per program
    stack.process.send_signal(signal.SIGINT)
    assert stack.exit_status() == 0, stack.printed()
    assert "killing  every program at once (SIGINT while stopping)" in stack.printed()
    assert [pid for pid in stack.groups() if signal_group(pid, 0)] == [], stack.printed()


def test_sigterm_during_a_slow_shutdown_kills_every_group_too(mini_stack: Callable[..., MiniStack]) -> None:
    stack = mini_stack([{"name": name, "ignore_term": True} for name in ("prefect-server", "api")])
    stack.wait_for("up")
    stack.process.send_signal(signal.SIGTERM)
    stack.wait_for("stopping 2 programs")
    stack.process.send_signal(signal.SIGTERM)
    assert stack.exit_status() == 0, stack.printed()
    assert [pid for pid in stack.groups() if signal_group(pid, 0)] == [], stack.printed()


def test_a_program_that_keeps_crashing_stops_the_stack_naming_it(mini_stack: Callable[..., MiniStack]) -> None:
    stack = mini_stack([{"name": "api"}, {"name": "dask-worker", "exit_after_s": 1.5}], budget=2, backoff_s=0.05)
    assert stack.exit_status() == 1, stack.printed()
    assert "error: dask-worker stopped with status 3, after 2 restarts within 10 min" in stack.printed()
    assert [pid for pid in stack.groups() if signal_group(pid, 0)] == [], stack.printed()


def test_a_program_crashing_now_and_then_is_restarted_for_as_long_as_the_stack_runs(
    mini_stack: Callable[..., MiniStack],
) -> None:
    # One restart allowed per second; the worker dies every 1.5 s, each time after its restart left the window.
    stack = mini_stack([{"name": "dask-worker", "exit_after_s": 1.5}], budget=1, window_s=1.0, backoff_s=0.05)
    stack.wait_for("exited   dask-worker with status 3", count=4)
    stack.process.send_signal(signal.SIGINT)
    assert stack.exit_status() == 0, stack.printed()
    assert "restarting (1 of 1 within 1 s)" in stack.printed() and "error" not in stack.printed()


def register_deployments(prefect_api: str, names: list[str]) -> None:
    """Create the flows and deployments ``flow/deployment`` on a Prefect server, as `cropai serve` does."""
    for name in names:
        flow, deployment = name.split("/")
        created = _post(f"{prefect_api}/flows/", {"name": flow})
        _post(f"{prefect_api}/deployments/", {"name": deployment, "flow_id": created.json()["id"]})


def _post(url: str, body: dict) -> httpx.Response:
    """POST, asking again while a Prefect server that has just started answers 503 (its SQLite
    database busy with its own services), as Prefect's client does."""
    deadline = time.monotonic() + DEADLINE_S
    while (response := httpx.post(url, json=body, timeout=30)).status_code == 503 and time.monotonic() < deadline:
        time.sleep(0.5)
    return response.raise_for_status()


def runner_stand_in(ports: Ports, runner_files: Path, ready_within_s: float) -> Program:
    """The deployment server's readiness with, in place of `cropai serve`, a runner whose health answers at once."""
    served = deployment_server(ports, {})
    port = served.env["PREFECT_RUNNER_SERVER_PORT"]
    return replace(
        served,
        ready_within_s=ready_within_s,
        argv=[PYTHON, "-m", "http.server", port, "--bind", LOOPBACK, "--directory", str(runner_files)],
    )


def test_the_deployment_server_is_ready_only_once_prefect_lists_every_deployment(tmp_path: Path) -> None:
    ports = Ports.free()
    (tmp_path / "runner").mkdir()
    (tmp_path / "runner" / "health").write_text("ok")
    with Stack(tmp_path / "logs") as stack:
        stack.wait_ready(stack.launch(prefect_server(ports, tmp_path / "prefect")))
        register_deployments(ports.prefect_api, ["ingest_scenes/ingest-scheduled", "train/train"])
        with pytest.raises(StackError, match="deployments/name/analyze/analyze answered 404"):
            stack.wait_ready(stack.launch(runner_stand_in(ports, tmp_path / "runner", ready_within_s=5)))
        register_deployments(ports.prefect_api, ["analyze/analyze"])
        stack.wait_ready(stack.launch(runner_stand_in(ports, tmp_path / "runner", ready_within_s=DEADLINE_S)))


def test_the_stack_waits_for_every_deployment_prefect_yaml_declares() -> None:
    import yaml
    from prefect.flows import load_flow_from_entrypoint

    root = Path(__file__).resolve().parents[2]
    declared = yaml.safe_load((root / "prefect.yaml").read_text())["deployments"]
    names = {f"{load_flow_from_entrypoint(d['entrypoint']).name}/{d['name']}" for d in declared}
    assert set(SERVED_DEPLOYMENTS) == names


def test_a_prefect_server_with_an_auth_string_refuses_clients_without_it(tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import PrefectHTTPStatusError
    from prefect.settings import PREFECT_API_AUTH_STRING, PREFECT_API_URL, temporary_settings

    auth = "admin:a-prefect-test-password"
    ports = Ports.free()
    program = prefect_server(ports, tmp_path / "prefect")
    with Stack(tmp_path / "logs") as stack:
        # Ready means GET /api/health answered 200 without the auth string: compose's health check works.
        stack.wait_ready(stack.launch(replace(program, env={**program.env, "PREFECT_SERVER_API_AUTH_STRING": auth})))
        with (
            temporary_settings({PREFECT_API_URL: ports.prefect_api}),
            get_client(sync_client=True) as client,
            pytest.raises(PrefectHTTPStatusError, match="401"),
        ):
            client.read_work_pools()
        # What every service of the compose stack is given: PREFECT_API_AUTH_STRING.
        with (
            temporary_settings({PREFECT_API_URL: ports.prefect_api, PREFECT_API_AUTH_STRING: auth}),
            get_client(sync_client=True) as client,
        ):
            assert client.read_work_pools() == []
        # The API's orchestrator, given the same string as CROPAI_PREFECT_AUTH_STRING.
        api_settings = Settings(_env_file=None, prefect_api_url=ports.prefect_api)
        with pytest.raises(ServiceUnavailable, match="refused the API's credentials"):
            Orchestrator(api_settings).check_deployments()
        authorised = api_settings.model_copy(update={"prefect_auth_string": SecretStr(auth)})
        with pytest.raises(ServiceUnavailable, match="not registered"):  # let in, and told what is missing
            Orchestrator(authorised).check_deployments()


@pytest.mark.parametrize(("environment", "warned"), [("dev", True), ("production", False)])
def test_up_warns_in_dev_mode_that_tokens_are_signed_with_the_public_key(
    tmp_path: Path, environment: str, warned: bool
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CROPAI_")}
    env.update(
        CROPAI_HOME=str(tmp_path),
        CROPAI_ENVIRONMENT=environment,
        COLUMNS="200",
        CROPAI_SECRET_KEY="k3Jq9vXw2LmZp8RtYb4NcHs6DfGa1UeQ0oIiTxWy",
    )
    if environment == "dev":
        del env["CROPAI_SECRET_KEY"]
    with socket.socket() as busy:  # `up` stops at the busy port, before starting anything
        busy.bind((LOOPBACK, 0))
        busy.listen()
        result = subprocess.run(
            [PYTHON, "-m", "cropai.cli", "up", "--api-port", str(busy.getsockname()[1])],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert result.returncode == 2 and "already in use" in result.stderr
    warning = (
        "tokens with the public development key" in result.stderr and "unreachable from other machines" in result.stderr
    )
    assert warning is warned, result.stderr
