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
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from cropai.cli.loopback import free_port
from cropai.config import Settings
from cropai.errors import CropAIError

LOOPBACK = "127.0.0.1"
PYTHON = sys.executable
# The folder holding the cropai, flows and tasks packages: served flow runs import from it.
PROJECT_ROOT = Path(__file__).resolve().parents[2]
STOP_GRACE_S = 20.0
GONE_WITHIN_S = 5.0  # after SIGKILL
LOG_TAIL_LINES = 15
# Like compose's `restart: unless-stopped`, but a program that keeps dying stops the stack:
# one crash now and then (a Dask worker killed for memory) is survivable for days, five
# within ten minutes is a program that cannot run. A program that dies within a minute of
# starting waits before its next start, 1 s, then 2, 4, ... at most 30 s.
RESTARTS_PER_WINDOW = 5
RESTART_WINDOW_S = 600.0
RESTART_BACKOFF_S = 1.0
RESTART_BACKOFF_MAX_S = 30.0
QUICK_EXIT_S = 60.0
# Ctrl-C, `kill` or `docker stop`, and a closed terminal: each stops the stack in order.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
# What `cropai serve` registers (flows/serve.py); the API 503s on a submission until they exist.
SERVED_DEPLOYMENTS = ("analyze/analyze", "ingest_scenes/ingest-scheduled", "train/train")


class StackError(CropAIError):
    """A program of the stack did not start, or stopped on its own too often."""


@dataclass(frozen=True)
class Program:
    """One server: how to start it and the URLs that all answer 2xx once it is ready."""

    name: str
    argv: list[str]
    ready_urls: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    shown_url: str = ""  # what the operator is told to open; empty for internal programs
    ready_within_s: float = 90.0


@dataclass(frozen=True)
class RestartPolicy:
    """How often a program that stops on its own is started again: at most ``budget``
    restarts within any ``window_s`` seconds, after a back-off that doubles while it keeps
    dying within ``quick_exit_s`` of its start."""

    budget: int = RESTARTS_PER_WINDOW
    window_s: float = RESTART_WINDOW_S
    backoff_s: float = RESTART_BACKOFF_S
    backoff_max_s: float = RESTART_BACKOFF_MAX_S
    quick_exit_s: float = QUICK_EXIT_S

    def recent(self, restarts: Sequence[float], now: float) -> tuple[float, ...]:
        """The restart times (monotonic seconds) that still count against the budget at ``now``."""
        return tuple(at for at in restarts if now - at < self.window_s)

    def allows(self, restarts: Sequence[float], now: float) -> bool:
        return len(self.recent(restarts, now)) < self.budget

    def delay_s(self, restarts: Sequence[float], now: float, ran_s: float) -> float:
        """Seconds to wait before the next start of a program that ran ``ran_s`` seconds."""
        if ran_s >= self.quick_exit_s:
            return 0.0
        return min(self.backoff_max_s, self.backoff_s * 2.0 ** len(self.recent(restarts, now)))


@dataclass
class Running:
    program: Program
    process: subprocess.Popen[bytes]
    log: Path
    launched_at: float
    restarts: tuple[float, ...] = ()  # when the program was started again (monotonic), for the budget
    restart_at: float | None = None  # once it has stopped: when to start it again


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
        for option, port in (
            ("--prefect-port", self.prefect),
            ("--api-port", self.api),
            ("--scheduler-port", self.scheduler),
            ("--dashboard-port", self.dashboard),
        ):
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
    """Processes started in order and stopped in reverse, as a context manager.

    Inside it (in the main thread), SIGINT, SIGTERM and SIGHUP never interrupt the stack
    half-way: the first makes ``wait_ready`` and ``watch`` raise KeyboardInterrupt, so the
    context stops every program in order; one more while stopping SIGKILLs every process
    group left at once."""

    def __init__(
        self, logs: Path, report: Callable[[str], None] = lambda line: None, restarts: RestartPolicy = RestartPolicy()
    ) -> None:
        self.logs = logs
        self.report = report
        self.restarts = restarts
        self.running: list[Running] = []
        self._signals = 0
        self._stopping = False
        self._killing = False
        self._previous_handlers: dict[int, object] = {}

    def __enter__(self) -> Stack:
        if threading.current_thread() is threading.main_thread():
            for signum in STOP_SIGNALS:
                if signum == signal.SIGHUP and signal.getsignal(signum) == signal.SIG_IGN:
                    continue  # started under nohup: a closed terminal must not stop the stack
                self._previous_handlers[signum] = signal.signal(signum, self._on_signal)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *exc_info: object) -> None:
        try:
            self.stop()
        finally:
            for signum, handler in self._previous_handlers.items():
                if handler is not None:  # None: a handler not set from Python, which cannot be put back
                    signal.signal(signum, handler)  # type: ignore[arg-type]  # what signal.signal returned
        if exc_type is None and self._signals:
            raise KeyboardInterrupt  # asked to stop while the body did not look

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._signals += 1
        if self._stopping or self._signals > 1:
            self._kill_all(signal.Signals(signum).name)

    def _kill_all(self, why: str) -> None:
        if not self._killing:
            self._killing = True
            self._tell(f"killing  every program at once ({why} while stopping)")
        for running in self.running:
            signal_group(running.process.pid, signal.SIGKILL)

    def _raise_if_signalled(self) -> None:
        if self._signals:
            raise KeyboardInterrupt

    def _tell(self, line: str) -> None:
        # While stopping, the terminal may be gone (SIGHUP): stopping matters more than telling.
        with suppress(OSError):
            self.report(line)

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
                program.argv,
                env={**os.environ, **program.env},
                cwd=PROJECT_ROOT,
                stdout=sink,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return Running(program, process, log, time.monotonic())

    def wait_ready(self, running: Running) -> None:
        """Block until every ready URL of the program answers 2xx; a StackError with its log
        if it exits first or takes longer than it may."""
        program = running.program
        deadline = running.launched_at + program.ready_within_s
        while problems := [problem for url in program.ready_urls if (problem := _probe(url))]:
            self._raise_if_signalled()
            if running.process.poll() is not None:
                raise StackError(
                    f"{program.name} exited with status {running.process.returncode} while starting; "
                    f"{_tail(running.log)}"
                )
            if time.monotonic() > deadline:
                raise StackError(
                    f"{program.name} was not ready within {program.ready_within_s:.0f} s "
                    f"({'; '.join(problems)}); {_tail(running.log)}"
                )
            time.sleep(0.2)
        took = time.monotonic() - running.launched_at
        self.report(f"ready    {program.name:<16} {program.shown_url:<34} pid {running.process.pid:<7} {took:5.1f} s")

    def watch(self, poll_s: float = 0.5) -> None:
        """Block while the programs run, restarting one that stops on its own (a crashed Dask
        worker, say) as the restart policy allows; a StackError once one has used its budget."""
        while True:
            self._raise_if_signalled()
            for index, running in enumerate(self.running):
                if running.process.poll() is not None:
                    self._restart_when_due(index, running)
            time.sleep(poll_s)

    def _restart_when_due(self, index: int, running: Running) -> None:
        now = time.monotonic()
        if running.restart_at is None:
            running.restart_at = now + self._plan_restart(running, now)
        if now < running.restart_at:
            return
        replacement = self._spawn(running.program)
        replacement.restarts = (*self.restarts.recent(running.restarts, now), now)
        self.running[index] = replacement  # keeps its place in the stopping order
        try:
            self.wait_ready(replacement)
        except StackError:
            # Dead or hung again while starting: one more stop, counted against its budget.
            self.report(f"failed   {running.program.name} while restarting; log {replacement.log}")
            signal_group(replacement.process.pid, signal.SIGKILL)
            replacement.process.wait()

    def _plan_restart(self, running: Running, now: float) -> float:
        """Seconds until a stopped program starts again; a StackError once its budget is spent."""
        name, status, policy = running.program.name, running.process.returncode, self.restarts
        signal_group(running.process.pid, signal.SIGKILL)  # what the dead leader left behind
        if not policy.allows(running.restarts, now):
            raise StackError(
                f"{name} stopped with status {status}, after {policy.budget} restarts within "
                f"{_span(policy.window_s)}; {_tail(running.log)}"
            )
        delay = policy.delay_s(running.restarts, now, now - running.launched_at)
        count = len(policy.recent(running.restarts, now)) + 1
        self.report(
            f"exited   {name} with status {status}; restarting ({count} of {policy.budget} within "
            f"{_span(policy.window_s)}) in {delay:.0f} s; log {running.log}"
        )
        return delay

    def stop(self) -> None:
        """SIGTERM every process group, newest first, and SIGKILL one still there after the
        grace time; a stop signal meanwhile SIGKILLs every group left at once. Every group
        is killed before this returns, whatever is raised on the way."""
        self._stopping = True
        if self.running:
            self._tell(f"stopping {len(self.running)} programs, newest first (Ctrl-C again kills them at once)")
        try:
            for running in reversed(self.running):
                self._stop_one(running)
        finally:
            groups = [running.process.pid for running in self.running]
            for group in groups:
                # Children that outlived their leader (a flow run, a Dask worker process) go too.
                signal_group(group, signal.SIGKILL)
            self.running.clear()
            if left := _wait_gone(groups):
                self._tell(
                    f"process groups {', '.join(map(str, left))} still there {GONE_WITHIN_S:.0f} s after SIGKILL"
                )

    def _stop_one(self, running: Running) -> None:
        if running.process.poll() is None:
            signal_group(running.process.pid, signal.SIGKILL if self._killing else signal.SIGTERM)
            try:
                running.process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                self._tell(f"killing  {running.program.name} (no exit {STOP_GRACE_S:.0f} s after SIGTERM)")
                signal_group(running.process.pid, signal.SIGKILL)
                running.process.wait()
        elif not self._killing:
            return  # it had stopped on its own, and was reported then
        self._tell(f"stopped  {running.program.name}")


def signal_group(leader_pid: int, signum: int) -> bool:
    """Signal a program's whole process group (its id is the leader's pid, as each program
    starts a session); False when no process of the group is left. Signal 0 only asks."""
    try:
        os.killpg(leader_pid, signum)
    except ProcessLookupError:
        return False
    return True


def _wait_gone(groups: list[int]) -> list[int]:
    """Wait, briefly, until the SIGKILLed groups are gone (init reaps their orphans a moment
    after they die, and whoever runs the stack may look right after it exits); those left."""
    deadline = time.monotonic() + GONE_WITHIN_S
    while (left := [group for group in groups if signal_group(group, 0)]) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


def _probe(url: str) -> str | None:
    """None when ``url`` answers 2xx (a ``redis://`` one: PONG to a PING), else what it did instead."""
    if url.startswith("redis://"):
        return _probe_redis(url)
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return None if 200 <= response.status < 300 else f"{url} answered {response.status}"
    except urllib.error.HTTPError as exc:
        return f"{url} answered {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        return f"{url} did not answer ({getattr(exc, 'reason', exc)})"


def _probe_redis(url: str) -> str | None:
    host, port = url.removeprefix("redis://").split("/")[0].rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=2) as connection:
            connection.sendall(b"PING\r\n")
            reply = connection.recv(16)
    except OSError as exc:
        return f"{url} did not answer ({exc})"
    return None if reply.startswith(b"+PONG") else f"{url} answered {reply!r}"


def _span(seconds: float) -> str:
    return f"{seconds / 60:.0f} min" if seconds >= 120 else f"{seconds:.0f} s"


def _tail(log: Path) -> str:
    lines = log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:] if log.exists() else []
    return f"last lines of {log}:\n" + "\n".join(f"  {line}" for line in lines)


# --- the programs ------------------------------------------------------------------------


def prefect_server(ports: Ports, home: Path) -> Program:
    """Prefect's API and UI on SQLite under ``home`` (PREFECT_API_DATABASE_CONNECTION_URL moves it)."""
    return Program(
        "prefect-server",
        [PYTHON, "-m", "prefect", "server", "start", "--host", LOOPBACK, "--port", str(ports.prefect)],
        ready_urls=(f"{ports.prefect_api}/health",),
        env={
            "PREFECT_HOME": str(home),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PREFECT_UI_API_URL": ports.prefect_api,
        },
        shown_url=f"http://{LOOPBACK}:{ports.prefect}",
        ready_within_s=180.0,  # a first start creates and migrates its database
    )


def dask_scheduler(ports: Ports) -> Program:
    return Program(
        "dask-scheduler",
        [
            PYTHON,
            "-m",
            "dask",
            "scheduler",
            "--host",
            LOOPBACK,
            "--port",
            str(ports.scheduler),
            "--dashboard-address",
            f"{LOOPBACK}:{ports.dashboard}",
        ],
        ready_urls=(f"http://{LOOPBACK}:{ports.dashboard}/health",),
        shown_url=ports.scheduler_address,
    )


def dask_worker(index: int, ports: Ports, env: dict[str, str]) -> Program:
    """One single-threaded worker under a nanny (torch and GDAL get a core each), as in the compose file."""
    dashboard = free_port()
    return Program(
        f"dask-worker-{index}",
        [
            PYTHON,
            "-m",
            "dask",
            "worker",
            ports.scheduler_address,
            "--name",
            f"cropai-{index}",
            "--nthreads",
            "1",
            "--host",
            LOOPBACK,
            "--dashboard-address",
            f"{LOOPBACK}:{dashboard}",
        ],
        ready_urls=(f"http://{LOOPBACK}:{dashboard}/health",),
        env=env,
    )


def deployment_server(ports: Ports, env: dict[str, str], schedules: bool = True) -> Program:
    """`cropai serve`: runs flow runs of the deployments; ready once its runner polls Prefect
    and Prefect lists every deployment it serves (until then the API cannot start a run)."""
    port = free_port()
    argv = [PYTHON, "-m", "cropai.cli", "serve"] + ([] if schedules else ["--no-schedules"])
    listed = tuple(f"{ports.prefect_api}/deployments/name/{name}" for name in SERVED_DEPLOYMENTS)
    return Program(
        "deployments",
        argv,
        ready_urls=(f"http://{LOOPBACK}:{port}/health", *listed),
        env={
            **env,
            "PREFECT_RUNNER_SERVER_ENABLE": "true",
            "PREFECT_RUNNER_SERVER_HOST": LOOPBACK,
            "PREFECT_RUNNER_SERVER_PORT": str(port),
        },
    )


def redis_server(binary: str, port: int) -> Program:
    """Redis for the API's rate limits and cache invalidations; it keeps nothing on disk."""
    return Program(
        "redis",
        [binary, "--port", str(port), "--bind", LOOPBACK, "--save", "", "--appendonly", "no"],
        ready_urls=(f"redis://{LOOPBACK}:{port}",),
        shown_url=f"redis://{LOOPBACK}:{port}/0",
    )


def api_server(ports: Ports, env: dict[str, str]) -> Program:
    return Program(
        "api",
        [PYTHON, "-m", "api.serve", "--host", LOOPBACK, "--port", str(ports.api)],
        ready_urls=(f"{ports.api_url}/healthz",),
        env=env,
        shown_url=ports.api_url,
    )


def machine_bounds(cores: int) -> dict[str, int]:
    """How much work the stack runs at once on a machine of ``cores`` cores: flow runs of
    the deployment server, and analyses among them (each flow run is a process of ~350 MB;
    an analysis also keeps the Dask workers busy)."""
    return {"flow_concurrency": max(2, cores), "analysis_concurrency": max(1, cores // 2)}


def stack_environment(settings: Settings, ports: Ports, cores: int) -> dict[str, str]:
    """What every Crop AI process of the stack is started with: the same settings, pointed at
    this stack's Prefect server and Dask scheduler, with the concurrency bounds sized to
    ``cores`` unless the settings set them."""
    bounds = {name: value for name, value in machine_bounds(cores).items() if name not in settings.model_fields_set}
    pointed = settings.model_copy(
        update={
            "prefect_api_url": ports.prefect_api,
            "dask_address": ports.scheduler_address,
            "api_host": LOOPBACK,
            "api_port": ports.api,
            **bounds,
        }
    )
    return {
        **pointed.as_environment(),
        "PREFECT_API_URL": ports.prefect_api,
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }


def start_stack(
    stack: Stack, settings: Settings, ports: Ports, workers: int, schedules: bool = True, redis: str | None = None
) -> None:
    """Prefect server, Dask scheduler, ``workers`` Dask workers and the API start together;
    the deployment server once Prefect answers (it registers the deployments there). With
    ``redis`` (the path of a redis-server), a Redis first, which the API shares its limits on."""
    if redis:
        port = free_port()
        stack.wait_ready(stack.launch(redis_server(redis, port)))
        settings = settings.model_copy(update={"redis_url": f"redis://{LOOPBACK}:{port}/0"})
    env = stack_environment(settings, ports, os.cpu_count() or 1)
    prefect = stack.launch(prefect_server(ports, settings.home / "prefect"))
    scheduler = stack.launch(dask_scheduler(ports))
    api = stack.launch(api_server(ports, env))
    stack.wait_ready(scheduler)
    dask_workers = [stack.launch(dask_worker(i, ports, env)) for i in range(1, workers + 1)]
    stack.wait_ready(prefect)
    deployments = stack.launch(deployment_server(ports, env, schedules))
    for running in (*dask_workers, api, deployments):
        stack.wait_ready(running)
