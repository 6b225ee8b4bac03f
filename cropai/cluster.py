"""The one place that yields a Dask cluster for an analysis.

- ``CROPAI_DASK_ADDRESS`` set: that scheduler (a compose stack, Kubernetes, Dask Gateway).
- else, with NVIDIA GPUs visible: ``dask_cuda.LocalCUDACluster``, one worker per GPU.
- else: ``distributed.LocalCluster`` with one single-threaded worker process per core
  (``CROPAI_DASK_WORKERS`` to change), so that torch and GDAL get a core each.

Local workers get ``CROPAI_WORKER_MEMORY`` as their memory limit when it is set.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

from cropai.config import Settings

log = logging.getLogger(__name__)


def visible_gpus() -> int:
    """NVIDIA GPUs this process may use (CUDA_VISIBLE_DEVICES first, else nvidia-smi)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return 0
    return sum(line.startswith("GPU ") for line in listing.stdout.splitlines())


@contextmanager
def dask_cluster(settings: Settings, worker_env: dict[str, str] | None = None) -> Iterator[str]:
    """Yield the scheduler address to run on, starting (and afterwards stopping) a local cluster if needed.

    ``worker_env`` is set in the worker processes of a local cluster (e.g. the API
    URL of this process' ephemeral Prefect server, which they could not find alone).
    """
    if settings.dask_address:
        yield settings.dask_address
        return
    memory = settings.worker_memory or "auto"
    gpus = visible_gpus()
    if gpus:
        from dask_cuda import LocalCUDACluster

        log.info("starting a LocalCUDACluster with %d GPU worker(s)", gpus)
        with LocalCUDACluster(dashboard_address=":0", env=worker_env or {}, memory_limit=memory) as cluster:
            yield cluster.scheduler_address
        return
    from distributed import LocalCluster

    workers = settings.dask_workers or os.cpu_count() or 1
    log.info("starting a LocalCluster with %d single-threaded worker process(es)", workers)
    with LocalCluster(  # type: ignore[no-untyped-call]  # distributed leaves LocalCluster's __init__ untyped
        n_workers=workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",
        host="127.0.0.1",
        env=worker_env or {},
        memory_limit=memory,
    ) as cluster:
        log.info("Dask dashboard of this analysis' cluster: %s", cluster.dashboard_link)
        yield cluster.scheduler_address


def worker_memory(address: str) -> int | None:
    """The smallest memory limit (bytes) among the cluster's workers; None when no worker has one.
    Batches are sized to it, so that a batch fits the worker that runs it."""
    from distributed import Client

    with Client(address, timeout=30) as client:  # type: ignore[no-untyped-call]
        limits = [w.get("memory_limit") or 0 for w in client.scheduler_info()["workers"].values()]
    return min((limit for limit in limits if limit), default=None)


# glibc's mallopt parameters, and the values batch tasks want: freed blocks up to 16 MiB (a
# tile's model input, the median's planes) stay on the heap for the next arrays of the same
# sizes instead of being unmapped and faulted in again page by page. Dask's nanny starts workers
# with MALLOC_TRIM_THRESHOLD_=65536, which also pins the mmap threshold at 128 KiB: every array of
# a batch is then a fresh mmap. bench/pipeline.py's flow took 30.6 s so, 23.6 s with these
# (32 and 64 MiB gave 22.6 s for 70 MB more per worker).
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
TRIM_THRESHOLD_BYTES = 16 * 2**20
MMAP_THRESHOLD_BYTES = 16 * 2**20
_tuned = False


def reuse_freed_memory() -> None:
    """Let this process' allocator keep freed array memory for reuse (once per process; glibc
    only, elsewhere nothing). Called by batch tasks, whatever started their worker."""
    global _tuned
    if _tuned:
        return
    _tuned = True
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)
