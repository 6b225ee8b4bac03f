"""Batched prediction: input cubes in, per-pixel class probabilities out.

A :class:`Predictor` checks cubes against its model's contract, normalises them,
and runs the model under ``torch.inference_mode`` in batches sized to the
memory at hand: on CUDA with autocast (bfloat16 where the GPU supports it, else
float16), on the CPU in float32. :func:`load_predictor` loads each model version
once per process.
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager, nullcontext
from typing import Any

import numpy as np
import numpy.typing as npt
import psutil
import torch
from sqlalchemy.orm import Session, sessionmaker

from cropai.errors import InvalidInput
from cropai.storage import ObjectStore
from models.contract import ModelContract
from models.registry import LoadedModel, ModelRef, load, resolve

# Bytes of activations per pixel and input channel-equivalent, with room for temporaries.
ACTIVATION_BYTES_PER_CHANNEL = 4 * 3
CPU_MEMORY_SHARE = 0.25  # of the memory available now
# On CPU one 256 x 256 tile per pass is both the fastest and the lightest (bench/model.py: one
# thread, 1.4 Mpix/s and 50 MB of activations, against 0.65 Mpix/s and 0.8 GB for 16 tiles).
CPU_PASS_PIXELS = 65_536
GPU_MEMORY_SHARE = 0.6  # of the free GPU memory


class Predictor:
    """Runs one model version on batches of ``(batch, time, band, y, x)`` reflectance cubes."""

    def __init__(self, loaded: LoadedModel, device: str | None = None, max_batch: int | None = None) -> None:
        self.contract: ModelContract = loaded.contract
        self.name, self.version = loaded.name, loaded.version
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model = loaded.model.to(self.device).eval()
        self.max_batch = max_batch
        self._means = torch.tensor(self.contract.band_means, device=self.device).view(1, 1, -1, 1, 1)
        self._stds = torch.tensor(self.contract.band_stds, device=self.device).view(1, 1, -1, 1, 1)
        if self.device.type == "cuda":
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            self.autocast_dtype: torch.dtype | None = dtype
        else:
            self.autocast_dtype = None

    def check(self, cubes: npt.NDArray[Any]) -> None:
        """Raise :class:`InvalidInput` naming what the contract expects."""
        expected = (self.contract.time_bins_count, len(self.contract.bands))
        if cubes.ndim != 5:
            raise InvalidInput(
                f"input has shape {cubes.shape}: expected 5 dimensions (batch, time={expected[0]}, "
                f"band={expected[1]}, y, x)"
            )
        if cubes.shape[2] != expected[1]:
            raise InvalidInput(
                f"input has {cubes.shape[2]} bands: {self.name}@{self.version} expects {expected[1]} "
                f"({', '.join(self.contract.bands)})"
            )
        if cubes.shape[1] != expected[0]:
            raise InvalidInput(
                f"input has {cubes.shape[1]} time bins: {self.name}@{self.version} expects {expected[0]} "
                f"({self.contract.season.describe()}, {self.contract.binning_rule})"
            )
        if not np.issubdtype(cubes.dtype, np.floating):
            raise InvalidInput(f"input dtype {cubes.dtype}: expected float reflectance (0..1)")
        if np.isnan(cubes).any():
            raise InvalidInput(
                "input contains NaN: fill gaps first (cropai.composite.fill_gaps), as the contract's binning rule says"
            )

    def predict(self, cubes: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
        """``(batch, time, band, y, x)`` reflectance -> ``(batch, class, y, x)`` float32 probabilities."""
        self.check(cubes)
        out = np.empty((cubes.shape[0], len(self.contract.classes), *cubes.shape[3:]), dtype=np.float32)
        batch = self.batch_size(cubes.shape[3] * cubes.shape[4])
        start = 0
        while start < len(cubes):
            try:
                out[start : start + batch] = self._run(cubes[start : start + batch])
            except torch.OutOfMemoryError:
                if batch == 1:
                    raise
                batch //= 2  # the estimate was too generous: retry the same cubes in smaller batches
                if self.device.type == "cuda":
                    torch.cuda.empty_cache()
                continue
            start += batch
        return out

    def batch_size(self, pixels_per_cube: int) -> int:
        """Cubes per forward pass that fit the memory available now (at least 1)."""
        widths = [p for p in self.contract.architecture_params.values() if isinstance(p, int)] or [64]
        inputs = self.contract.time_bins_count * len(self.contract.bands)
        channels = inputs + 4 * max(widths) + len(self.contract.classes)
        per_cube = pixels_per_cube * channels * ACTIVATION_BYTES_PER_CHANNEL
        if self.device.type == "cuda":
            budget = torch.cuda.mem_get_info(self.device)[0] * GPU_MEMORY_SHARE
        else:
            budget = psutil.virtual_memory().available * CPU_MEMORY_SHARE
        size = max(1, int(budget // max(per_cube, 1)))
        if self.device.type == "cpu":
            size = min(size, max(1, CPU_PASS_PIXELS // pixels_per_cube))
        return min(size, self.max_batch) if self.max_batch else size

    @torch.inference_mode()
    def _run(self, cubes: npt.NDArray[np.floating]) -> npt.NDArray[np.float32]:
        x = torch.from_numpy(np.ascontiguousarray(cubes, dtype=np.float32)).to(self.device, non_blocking=True)
        x = (x - self._means) / self._stds
        autocast: AbstractContextManager[object] = (
            torch.autocast(device_type="cuda", dtype=self.autocast_dtype) if self.autocast_dtype else nullcontext()
        )
        with autocast:
            logits = self.model(x)
        probabilities: npt.NDArray[np.float32] = torch.softmax(logits.float(), dim=1).cpu().numpy()
        return probabilities


_loaded: dict[tuple[str, str, str, str, str], Predictor] = {}
_lock = threading.Lock()


def load_predictor(
    store: ObjectStore, sessions: sessionmaker[Session], reference: str, device: str | None = None
) -> Predictor:
    """The predictor of a model version, loaded once per process (and per device)."""
    row = resolve(sessions, ModelRef.parse(reference))
    key = (store.url, row.name, row.version, row.checksum_sha256, device or "auto")
    with _lock:
        if key not in _loaded:
            _loaded[key] = Predictor(load(store, sessions, f"{row.name}@{row.version}"), device=device)
        return _loaded[key]
