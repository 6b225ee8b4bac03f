"""Zarr arrays on both store backends through ObjectZarrStore."""

import numpy as np
import zarr

from cropai.storage import ObjectStore
from cropai.zarr_store import ObjectZarrStore


def test_arrays_written_by_chunks_read_back_whole(store: ObjectStore) -> None:
    root = zarr.open_group(ObjectZarrStore(store, "analyses/a1/pred.zarr"), mode="w")
    labels = root.create_array("class", shape=(300, 500), chunks=(224, 224), dtype="uint8", fill_value=0)
    labels[0:224, 224:448] = 7
    labels[224:300, 448:500] = 3
    stored = zarr.open_group(ObjectZarrStore(store, "analyses/a1/pred.zarr"), mode="r")["class"]
    assert isinstance(stored, zarr.Array)
    again = np.asarray(stored[:])
    assert again.shape == (300, 500) and again.dtype == np.uint8
    assert (again[0:224, 224:448] == 7).all() and (again[224:, 448:] == 3).all()
    assert again[0, 0] == 0
    assert any(info.key.startswith("analyses/a1/pred.zarr/class/") for info in store.list("analyses/a1/"))


def test_group_members_are_listed(store: ObjectStore) -> None:
    root = zarr.open_group(ObjectZarrStore(store, "z.zarr"), mode="w")
    root.create_array("class", shape=(4, 4), chunks=(2, 2), dtype="uint8")
    root.create_array("confidence", shape=(4, 4), chunks=(2, 2), dtype="uint8")
    assert sorted(zarr.open_group(ObjectZarrStore(store, "z.zarr"), mode="r").array_keys()) == ["class", "confidence"]
