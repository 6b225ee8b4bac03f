"""Crop AI's servers as processes on loopback: the stack of ``docker-compose.yml``
without Docker. ``cropai up`` and the end-to-end tests start the same programs (a
Prefect server, a Dask scheduler and workers, the deployment server, the API), each
in a process group of its own with its own log, and stop them all, newest first,
whatever happened."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from cropai.config import Settings
from cropai.errors import CropAIError
from cropai.loopback import free_port

LOOPBACK = "127.0.0.1"
PYTHON = sys.executable
# The folder holding the cropai, flows and tasks packages: served flow runs import from it.
PROJECT_ROOT = Path(__file__).resolve().parents[1]
STOP_GRACE_S = 20.0
LOG_TAIL_LINES = 15
# Like compose's `restart: unless-stopped`, but a program that keeps dying stops the stack.
MAX_RESTARTS = 5


class StackError(CropAIError):
    """A program of the stack did not start, or stopped on its own."""


@dataclass(frozen=True)
class Program:
    """One server: how to start it and the URL that answers 2xx once it is ready."""

    name: str
    argv: list[str]
    ready_url: str
    env: dict[str, str] = field(default_factory=dict)
    shown_url: str = ""  # what the operator is told to open; empty for internal programs
    ready_within_s: float = 90.0


@dataclass
class Running:
    program: Program
    process: subprocess.Popen
    log: Path
    launched_at: float
    restarts: int = 0


@dataclass(frozen=True)
class Ports:
    """Where the stack listens; ``Ports.free()`` picks unused ones (tests, a second stack)."""

    prefect: int = 4200
    api: int = 8000
    scheduler: int = 8786
    dashboard: int = 8787

    @classmethod
    def free(cls) -> Ports:
        return cls(free_port(), free_port(), free_port(), free_port())

    def taken(self) -> list[str]:
        """Which of these ports something else already listens on, named by option."""
        busy = []
        for option, port in (("--prefect-port", self.prefect), ("--api-port", self.api),
                             ("--scheduler-port", self.scheduler), ("--dashboard-port", self.dashboard)):  # fmt: skip
            with socket.socket() as sock:
                if sock.connect_ex((LOOPBACK, port)) == 0:
                    busy.append(f"{option} {port}")
        return busy

    @property
    def prefect_api(self) -> str:
        return f"http://{LOOPBACK}:{self.prefect}/api"

    @property
    def scheduler_address(self) -> str:
        return f"tcp://{LOOPBACK}:{self.scheduler}"

    @property
    def api_url(self) -> str:
        return f"http://{LOOPBACK}:{self.api}"


class Stack:
    """Processes started in order and stopped in reverse, as a context manager."""

    def __init__(self, logs: Path, report: Callable[[str], None] = lambda line: None) -> None:
        self.logs = logs
        self.report = report
        self.running: list[Running] = []

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def launch(self, program: Program) -> Running:
        """Start ``program`` and add it to the stack, to be stopped after those started before it."""
        running = self._spawn(program)
        self.running.append(running)
        return running

    def _spawn(self, program: Program) -> Running:
        """Start ``program`` in a new process group (a Ctrl-C reaches only this process, which
        then stops the stack in order); its output goes to ``logs/<name>.log``."""
        self.logs.mkdir(parents=True, exist_ok=True)
        log = self.logs / f"{program.name}.log"
        with log.open("ab") as sink:
            process = subprocess.Popen(
                program.argv, env={**os.environ, **program.env}, cwd=PROJECT_ROOT, stdout=sink,
                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )  # fmt: skip
        return Running(program, process, log, time.monotonic())

    def wait_ready(self, running: Running) -> None:
        """Block until the program's ready URL answers 2xx; a StackError with its log if it
        exits first or takes longer than it may."""
        program = running.program
        deadline = running.launched_at + program.ready_within_s
        while not _answers_ok(program.ready_url):
            if running.process.poll() is not None:
                raise StackError(f"{program.name} exited with status {running.process.returncode} while starting; "
                                 f"{_tail(running.log)}")  # fmt: skip
            if time.monotonic() > deadline:
                raise StackError(f"{program.name} was not ready within {program.ready_within_s:.0f} s "
                                 f"({program.ready_url}); {_tail(running.log)}")  # fmt: skip
            time.sleep(0.2)
        took = time.monotonic() - running.launched_at
        self.report(f"ready    {program.name:<16} {program.shown_url:<34} pid {running.process.pid:<7} {took:5.1f} s")

    def watch(self, poll_s: float = 1.0) -> None:
        """Block while the programs run, restarting one that stops on its own (a crashed Dask
        worker, say); a StackError once one has needed more than MAX_RESTARTS restarts."""
        while True:
            for index, running in enumerate(self.running):
                if running.process.poll() is None:
                    continue
                name, status = running.program.name, running.process.returncode
                if running.restarts >= MAX_RESTARTS:
                    raise StackError(f"{name} stopped with status {status} after {MAX_RESTARTS} restarts; "
                                     f"{_tail(running.log)}")  # fmt: skip
                self.report(f"exited   {name} with status {status}; restarting ({running.restarts + 1} of "
                            f"{MAX_RESTARTS}); log {running.log}")  # fmt: skip
                signal_group(running.process.pid, signal.SIGKILL)  # what the dead leader left behind
                replacement = self._spawn(running.program)
                replacement.restarts = running.restarts + 1
                self.running[index] = replacement  # keeps its place in the stopping order
                self.wait_ready(replacement)
            time.sleep(poll_s)

    def stop(self) -> None:
        """SIGTERM every process group, newest first, then SIGKILL what is left after the grace time."""
        for running in reversed(self.running):
            if running.process.poll() is None:
                signal_group(running.process.pid, signal.SIGTERM)
                try:
                    running.process.wait(timeout=STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    self.report(f"killing  {running.program.name} (no exit {STOP_GRACE_S:.0f} s after SIGTERM)")
                    signal_group(running.process.pid, signal.SIGKILL)
                    running.process.wait()
                self.report(f"stopped  {running.program.name}")
            # Children that outlived their leader (a flow run, a Dask worker process) go too.
            signal_group(running.process.pid, signal.SIGKILL)
        self.running.clear()


def signal_group(leader_pid: int, signum: int) -> bool:
    """Signal a program's whole process group (its id is the leader's pid, as each program
    starts a session); False when no process of the group is left. Signal 0 only asks."""
    try:
        os.killpg(leader_pid, signum)
    except ProcessLookupError:
        return False
    return True


def _answers_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError):
        return False


def _tail(log: Path) -> str:
    lines = log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:] if log.exists() else []
    return f"last lines of {log}:\n" + "\n".join(f"  {line}" for line in lines)


# --- the programs ------------------------------------------------------------------------


def prefect_server(ports: Ports, home: Path) -> Program:
    """Prefect's API and UI on SQLite under ``home`` (PREFECT_API_DATABASE_CONNECTION_URL moves it)."""
    return Program(
        "prefect-server",
        [PYTHON, "-m", "prefect", "server", "start", "--host", LOOPBACK, "--port", str(ports.prefect)],
        ready_url=f"{ports.prefect_api}/health",
        env={"PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
             "PREFECT_UI_API_URL": ports.prefect_api},  # fmt: skip
        shown_url=f"http://{LOOPBACK}:{ports.prefect}",
        ready_within_s=180.0,  # a first start creates and migrates its database
    )


def dask_scheduler(ports: Ports) -> Program:
    return Program(
        "dask-scheduler",
        [PYTHON, "-m", "dask", "scheduler", "--host", LOOPBACK, "--port", str(ports.scheduler),
         "--dashboard-address", f"{LOOPBACK}:{ports.dashboard}"],  # fmt: skip
        ready_url=f"http://{LOOPBACK}:{ports.dashboard}/health",
        shown_url=ports.scheduler_address,
    )


def dask_worker(index: int, ports: Ports, env: dict[str, str]) -> Program:
    """One single-threaded worker under a nanny (torch and GDAL get a core each), as in the compose file."""
    dashboard = free_port()
    return Program(
        f"dask-worker-{index}",
        [PYTHON, "-m", "dask", "worker", ports.scheduler_address, "--name", f"cropai-{index}", "--nthreads", "1",
         "--host", LOOPBACK, "--dashboard-address", f"{LOOPBACK}:{dashboard}"],  # fmt: skip
        ready_url=f"http://{LOOPBACK}:{dashboard}/health",
        env=env,
    )


def deployment_server(env: dict[str, str], schedules: bool = True) -> Program:
    """`cropai serve`: runs flow runs of the deployments; ready once its runner polls Prefect."""
    port = free_port()
    argv = [PYTHON, "-m", "cropai.cli", "serve"] + ([] if schedules else ["--no-schedules"])
    return Program(
        "deployments", argv, ready_url=f"http://{LOOPBACK}:{port}/health",
        env={**env, "PREFECT_RUNNER_SERVER_ENABLE": "true", "PREFECT_RUNNER_SERVER_HOST": LOOPBACK,
             "PREFECT_RUNNER_SERVER_PORT": str(port)},
    )  # fmt: skip


def api_server(ports: Ports, env: dict[str, str]) -> Program:
    return Program(
        "api", [PYTHON, "-m", "api.serve", "--host", LOOPBACK, "--port", str(ports.api)],
        ready_url=f"{ports.api_url}/healthz", env=env, shown_url=ports.api_url,
    )  # fmt: skip


def stack_environment(settings: Settings, ports: Ports) -> dict[str, str]:
    """What every Crop AI process of the stack is started with: the same settings, pointed at
    this stack's Prefect server and Dask scheduler."""
    pointed = settings.model_copy(update={
        "prefect_api_url": ports.prefect_api, "dask_address": ports.scheduler_address,
        "api_host": LOOPBACK, "api_port": ports.api,
    })  # fmt: skip
    return {**pointed.as_environment(), "PREFECT_API_URL": ports.prefect_api,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}  # fmt: skip


def start_stack(stack: Stack, settings: Settings, ports: Ports, workers: int, schedules: bool = True) -> None:
    """Prefect server, Dask scheduler, ``workers`` Dask workers and the API start together;
    the deployment server once Prefect answers (it registers the deployments there)."""
    env = stack_environment(settings, ports)
    prefect = stack.launch(prefect_server(ports, settings.home / "prefect"))
    scheduler = stack.launch(dask_scheduler(ports))
    api = stack.launch(api_server(ports, env))
    stack.wait_ready(scheduler)
    dask_workers = [stack.launch(dask_worker(i, ports, env)) for i in range(1, workers + 1)]
    stack.wait_ready(prefect)
    deployments = stack.launch(deployment_server(env, schedules))
    for running in (*dask_workers, api, deployments):
        stack.wait_ready(running)
