"""One suite, run against both backends: a local folder and an S3 bucket on a real
S3 API server on loopback."""

import urllib.request
from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from cropai.config import Settings
from cropai.errors import InvalidInput, ObjectNotFound, ServiceUnavailable
from cropai.storage import STREAM_CHUNK_BYTES, ObjectInfo, ObjectStore, S3Store, open_store
from tests.conftest import free_port, s3_settings


def test_put_then_get_returns_the_same_bytes(store: ObjectStore) -> None:
    store.put("a/b/c.bin", b"\x00\x01payload")
    assert store.get("a/b/c.bin") == b"\x00\x01payload"


def test_put_a_local_file_and_download_it(store: ObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "in.bin"
    source.write_bytes(np.random.default_rng(0).bytes(3 * 1024 * 1024))
    store.put("big/in.bin", source)
    store.download("big/in.bin", tmp_path / "out.bin")
    assert (tmp_path / "out.bin").read_bytes() == source.read_bytes()


def test_put_replaces_an_existing_object(store: ObjectStore) -> None:
    store.put("k.txt", b"old")
    store.put("k.txt", b"new")
    assert store.get("k.txt") == b"new"
    assert [info.key for info in store.list()] == ["k.txt"]


def test_list_filters_by_prefix_and_sorts(store: ObjectStore) -> None:
    for key in ("scenes/b.tif", "scenes/a.tif", "quarantine/x.tif"):
        store.put(key, b"12345")
    assert store.list("scenes/") == [ObjectInfo("scenes/a.tif", 5), ObjectInfo("scenes/b.tif", 5)]
    assert len(store.list()) == 3


def test_exists_and_delete(store: ObjectStore) -> None:
    store.put("x/y.bin", b"1")
    assert store.exists("x/y.bin")
    store.delete("x/y.bin")
    assert not store.exists("x/y.bin")
    store.delete("x/y.bin")  # deleting again is fine


def test_missing_object_is_a_clear_not_found(store: ObjectStore, tmp_path: Path) -> None:
    with pytest.raises(ObjectNotFound, match=r"no object 'nope\.bin'"):
        store.get("nope.bin")
    with pytest.raises(ObjectNotFound):
        store.download("nope.bin", tmp_path / "x")
    with pytest.raises(ObjectNotFound):
        store.presigned_url("nope.bin")
    with pytest.raises(ObjectNotFound):
        store.open_stream("nope.bin")


def test_open_stream_yields_the_object_in_bounded_chunks(store: ObjectStore) -> None:
    payload = np.random.default_rng(1).bytes(STREAM_CHUNK_BYTES * 2 + 17)
    store.put("maps/big.tif", payload)
    chunks = list(store.open_stream("maps/big.tif"))
    assert b"".join(chunks) == payload
    assert max(len(chunk) for chunk in chunks) <= STREAM_CHUNK_BYTES


@pytest.mark.parametrize("key", ["", "/abs.tif", "a/../b.tif", "a//b.tif", "dir/", "a\\b.tif", "./a.tif"])
def test_keys_that_escape_or_are_ambiguous_are_refused(store: ObjectStore, key: str) -> None:
    with pytest.raises(InvalidInput, match="invalid object key"):
        store.put(key, b"x")


def test_presigned_url_serves_the_object(store: ObjectStore) -> None:
    store.put("maps/q.png", b"PNGDATA")
    with urllib.request.urlopen(store.presigned_url("maps/q.png"), timeout=10) as response:
        assert response.read() == b"PNGDATA"


def _write_cog(path: Path) -> np.ndarray:
    data = (np.arange(2 * 600 * 700, dtype=np.uint16).reshape(2, 600, 700) % 9000) + 1
    profile = dict(
        driver="COG",
        width=700,
        height=600,
        count=2,
        dtype="uint16",
        nodata=0,
        crs="EPSG:32631",
        transform=Affine(10, 0, 400000, 0, -10, 5340000),
        blocksize=256,
    )
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(data)
    return data


def test_gdal_reads_a_cog_window_by_the_store_path(store: ObjectStore, tmp_path: Path) -> None:
    data = _write_cog(tmp_path / "scene.tif")
    store.put("scenes/scene.tif", tmp_path / "scene.tif")
    with store.gdal_env(), rasterio.open(store.gdal_path("scenes/scene.tif")) as src:
        assert src.crs.to_string() == "EPSG:32631"
        window = src.read(2, window=((300, 310), (500, 520)))
    assert np.array_equal(window, data[1, 300:310, 500:520])


def test_gdal_reads_a_cog_from_s3_by_presigned_url(s3_store: S3Store, tmp_path: Path) -> None:
    store = s3_store
    data = _write_cog(tmp_path / "scene.tif")
    store.put("scenes/scene.tif", tmp_path / "scene.tif")
    with rasterio.open(f"/vsicurl/{store.presigned_url('scenes/scene.tif')}") as src:
        assert np.array_equal(src.read(1), data[0])


def test_bucket_prefix_keeps_keys_relative(settings: Settings, s3_endpoint: str) -> None:
    prefixed = open_store(
        s3_settings(settings, s3_endpoint, "prefixed").model_copy(update={"storage_url": "s3://prefixed/tenant-a"})
    )
    assert isinstance(prefixed, S3Store)
    prefixed.ensure_bucket()
    prefixed.put("scenes/a.tif", b"1")
    assert [info.key for info in prefixed.list("scenes/")] == ["scenes/a.tif"]
    assert prefixed.gdal_path("scenes/a.tif") == "/vsis3/prefixed/tenant-a/scenes/a.tif"


def test_missing_bucket_says_how_to_create_it(settings: Settings, s3_endpoint: str) -> None:
    store = open_store(s3_settings(settings, s3_endpoint, "never-made"))
    with pytest.raises(ServiceUnavailable, match="cropai store init"):
        store.check()


def test_unreachable_s3_fails_fast_naming_the_endpoint(settings: Settings) -> None:
    endpoint = f"127.0.0.1:{free_port()}"
    store = open_store(s3_settings(settings, endpoint, "crops"))
    with pytest.raises(ServiceUnavailable, match=f"cannot reach the S3 API at http://{endpoint}/crops"):
        store.check()


def test_unwritable_folder_is_reported(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    store = open_store(Settings(storage_url=str(blocker / "store"), _env_file=None))
    with pytest.raises(ServiceUnavailable, match="CROPAI_STORAGE_URL"):
        store.check()


def test_failed_local_write_leaves_the_old_object(settings: Settings, tmp_path: Path) -> None:
    store = open_store(settings)
    store.put("k.bin", b"old")
    with pytest.raises(FileNotFoundError):
        store.put("k.bin", tmp_path / "missing-source.bin")
    assert store.get("k.bin") == b"old"
    assert [info.key for info in store.list()] == ["k.bin"]


def test_put_with_move_hands_the_file_over(store: ObjectStore, tmp_path: Path) -> None:
    source = tmp_path / "scene.cog.tif"
    source.write_bytes(b"cog bytes")
    store.put("scenes/x/abc.tif", source, move=True)
    assert not source.exists()
    assert store.get("scenes/x/abc.tif") == b"cog bytes"
