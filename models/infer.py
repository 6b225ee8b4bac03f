"""Running one batch of an analysis: read, composite, predict, keep the cores, write.

The same function serves the ``predict_batch`` task on Dask workers and the bare
loop of ``bench/pipeline.py``. A batch that finished before (its marker object
exists for this analysis, model version and batch index) is not recomputed.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import numpy as np
import zarr

from cropai.analysis import AnalysisPlan, batch_input
from cropai.storage import ObjectStore
from cropai.zarr_store import ObjectZarrStore

if TYPE_CHECKING:  # torch loads where batches run (Dask workers), not in the flow's process
    from models.predict import Predictor

CONFIDENCE_SCALE = 255  # confidence is stored as uint8: probability x 255


@dataclass(frozen=True)
class BatchResult:
    batch_index: int
    tiles: int
    pixels: int
    class_pixels: dict[str, int]  # class id (as text, for JSON) -> pixels of the batch's cores
    seconds: float
    reused: bool = False


def create_outputs(plan: AnalysisPlan, store: ObjectStore) -> None:
    """The prediction Zarr (class ids and confidence), unless a previous run made it already."""
    root = zarr.open_group(ObjectZarrStore(store, plan.zarr_prefix), mode="a")
    core = plan.tiles.core_size
    for name in ("class", "confidence"):
        if name not in root:
            root.create_array(name, shape=plan.grid.shape, chunks=(core, core), dtype="uint8", fill_value=0)


def run_batch(plan: AnalysisPlan, batch_index: int, store: ObjectStore, predictor: Predictor) -> BatchResult:
    marker = plan.batch_marker(batch_index)
    if store.exists(marker):
        return BatchResult(**{**json.loads(store.get(marker)), "reused": True})
    started = time.perf_counter()
    batch = plan.tiles.batches[batch_index]
    predictions = ObjectZarrStore(store, plan.zarr_prefix)
    class_band = zarr.open_array(predictions, path="class", mode="r+")
    confidence_band = zarr.open_array(predictions, path="confidence", mode="r+")
    class_ids = np.asarray(predictor.contract.class_ids, dtype=np.uint8)
    counts: dict[str, int] = {}
    made = batch_input(plan, batch, store)
    if made is not None:  # every tile of the batch in one call: the predictor sizes its own batches
        cubes = np.stack([made.tile(tile)[0] for tile in batch.tiles])
        probabilities = predictor.predict(cubes)
    for number, tile in enumerate(batch.tiles):
        if made is None:
            labels = np.zeros((tile.height, tile.width), np.uint8)
            confidence = np.zeros_like(labels)
        else:
            core = probabilities[number][:, tile.halo : tile.halo + tile.height, tile.halo : tile.halo + tile.width]
            labels = class_ids[core.argmax(axis=0)]
            confidence = np.rint(core.max(axis=0) * CONFIDENCE_SCALE).astype(np.uint8)
            never_seen = ~made.tile(tile)[1]
            labels[never_seen], confidence[never_seen] = 0, 0
        window = (slice(tile.row, tile.row + tile.height), slice(tile.col, tile.col + tile.width))
        class_band[window] = labels
        confidence_band[window] = confidence
        for value, count in zip(*np.unique(labels, return_counts=True), strict=True):
            counts[str(int(value))] = counts.get(str(int(value)), 0) + int(count)
    result = BatchResult(batch_index, len(batch.tiles), batch.pixels, counts, round(time.perf_counter() - started, 3))
    store.put(marker, json.dumps(asdict(result)).encode(), content_type="application/json")
    return result
