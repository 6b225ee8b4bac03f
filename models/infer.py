"""Running one batch of an analysis: read, composite, predict, keep the cores, write.

The same function serves the ``predict_batch`` task on Dask workers and the bare
loop of ``bench/pipeline.py``. A batch that finished before (its marker object
exists for this analysis, model version and batch index) is not recomputed.
Beside each prediction the batch writes its evidence: the clear observations
behind every time bin of every pixel, so the map can say where it guessed.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import zarr

from cropai.analysis import AnalysisPlan, batch_input
from cropai.datasets import georeference
from cropai.input_check import InputMoments
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
    # InputMoments.as_record() of the clear composite values of the batch's cores (markers of
    # runs before it was measured have none)
    input_moments: dict[str, Any] | None = None


def create_outputs(plan: AnalysisPlan, store: ObjectStore) -> None:
    """The prediction Zarr, unless a previous run made it already: ``class`` ids and ``confidence``
    (y, x), and ``evidence`` (time, y, x), the clear observations behind each time bin's value;
    georeferenced for xarray (:mod:`cropai.datasets`)."""
    root = zarr.open_group(ObjectZarrStore(store, plan.zarr_prefix), mode="a")
    core = plan.tiles.core_size
    for name in ("class", "confidence"):
        if name not in root:
            root.create_array(
                name,
                shape=plan.grid.shape,
                chunks=(core, core),
                dtype="uint8",
                fill_value=0,
                dimension_names=("y", "x"),
            )
    if "evidence" not in root:
        bins = len(plan.time_bins)
        root.create_array(
            "evidence",
            shape=(bins, *plan.grid.shape),
            chunks=(bins, core, core),
            dtype="uint8",
            fill_value=0,
            dimension_names=("time", "y", "x"),
        )
    if getattr(root["class"].metadata, "dimension_names", None) is None:  # made before georeferencing: kept so
        return
    georeference(root, plan.grid, plan.time_bins, plan.legend, analysis_id=str(plan.analysis_id), model=plan.model)


def run_batch(plan: AnalysisPlan, batch_index: int, store: ObjectStore, predictor: Predictor) -> BatchResult:
    marker = plan.batch_marker(batch_index)
    if store.exists(marker):
        earlier = json.loads(store.get(marker))
        if "input_moments" in earlier:  # older markers' batches wrote no evidence: computed again
            return BatchResult(**{**earlier, "reused": True})
    started = time.perf_counter()
    batch = plan.tiles.batches[batch_index]
    predictions = ObjectZarrStore(store, plan.zarr_prefix)
    class_band = zarr.open_array(predictions, path="class", mode="r+")
    confidence_band = zarr.open_array(predictions, path="confidence", mode="r+")
    evidence_band = zarr.open_array(predictions, path="evidence", mode="r+")
    class_ids = np.asarray(predictor.contract.class_ids, dtype=np.uint8)
    counts: dict[str, int] = {}
    moments = InputMoments.empty(len(plan.time_bins), len(plan.band_means))
    median = None  # on the CPU: cropai.composite.clear_median and its sorting networks
    if predictor.device.type == "cuda":  # on a CUDA worker the median runs on its GPU as well
        from models.gpu_composite import device_clear_median

        median = device_clear_median(predictor.device)
    made = batch_input(plan, batch, store, median)
    # The model runs over the block a few tiles at a time (as many as one pass of the predictor
    # takes): only those tiles' gap-filled inputs and probabilities are held beside the composite.
    per_pass = predictor.batch_size(batch.tiles[0].input_height * batch.tiles[0].input_width)
    for first in range(0, len(batch.tiles), per_pass):
        tiles = batch.tiles[first : first + per_pass]
        probabilities = None if made is None else predictor.predict(np.stack([made.tile(tile) for tile in tiles]))
        for number, tile in enumerate(tiles):
            if made is None or probabilities is None:
                labels = np.zeros((tile.height, tile.width), np.uint8)
                confidence = np.zeros_like(labels)
                evidence = np.zeros((len(plan.time_bins), tile.height, tile.width), np.uint8)
            else:
                core = probabilities[number][:, *tile.core_in_input]
                labels = class_ids[core.argmax(axis=0)]
                confidence = np.rint(core.max(axis=0) * CONFIDENCE_SCALE).astype(np.uint8)
                evidence = made.core_clear_counts(tile)
                never_seen = ~evidence.any(axis=0)
                labels[never_seen], confidence[never_seen] = 0, 0
                moments = moments + InputMoments.of_cube(made.core_observed(tile))
            window = (slice(tile.row, tile.row + tile.height), slice(tile.col, tile.col + tile.width))
            class_band[window] = labels
            confidence_band[window] = confidence
            evidence_band[(slice(None), *window)] = evidence
            for value, count in zip(*np.unique(labels, return_counts=True), strict=True):
                counts[str(int(value))] = counts.get(str(int(value)), 0) + int(count)
    seconds = round(time.perf_counter() - started, 3)
    result = BatchResult(
        batch_index, len(batch.tiles), batch.pixels, counts, seconds, input_moments=moments.as_record()
    )
    store.put(marker, json.dumps(asdict(result)).encode(), content_type="application/json")
    return result
