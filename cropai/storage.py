"""The object store: one interface, a local-folder backend and an S3 backend.

Keys are relative POSIX paths (``scenes/S2A_....tif``). Both backends write
atomically: a reader sees the old object or the new one, never half of one.
GDAL reads objects directly by :meth:`ObjectStore.gdal_path` inside
:meth:`ObjectStore.gdal_env`, so rasters never pass through Python memory whole.
"""

from __future__ import annotations

import errno
import io
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from cropai.config import Settings
from cropai.errors import InvalidInput, ObjectNotFound, ServiceUnavailable

if TYPE_CHECKING:
    import rasterio
    from minio import Minio

DEFAULT_URL_EXPIRY = timedelta(hours=1)
# GDAL's block cache defaults to 5 % of RAM per process; with a worker per core that
# adds up to gigabytes of decoded tiles nobody reads twice.
GDAL_CACHE_MB = 256
_TEMP_PREFIX = ".tmp-"
STREAM_CHUNK_BYTES = 1024 * 1024
# The content type of the Cloud-Optimized GeoTIFFs in the store: scenes, crop maps, evidence.
COG_CONTENT_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size_bytes: int


def validate_key(key: str) -> str:
    """Refuse keys that could escape the store or that S3 and a folder would treat differently."""
    path = PurePosixPath(key)
    if (
        not key
        or key.startswith("/")
        or key.endswith("/")
        or "\\" in key
        or any(part in ("", ".", "..") for part in key.split("/"))
        or path.name.startswith(_TEMP_PREFIX)
    ):
        raise InvalidInput(
            f"invalid object key {key!r}: expected a relative path such as 'scenes/a.tif' "
            "with no empty, '.' or '..' parts"
        )
    return key


class ObjectStore(ABC):
    """What Crop AI needs of object storage, whatever holds the bytes."""

    url: str

    @abstractmethod
    def put(self, key: str, data: bytes | Path, content_type: str | None = None, *, move: bool = False) -> None:
        """Store ``data`` (bytes, or the contents of a local file) under ``key``, replacing it.

        With ``move``, a local file is handed over: it may be renamed into place
        instead of copied, and is gone afterwards."""

    @abstractmethod
    def get(self, key: str) -> bytes:
        """The whole object; raises :class:`ObjectNotFound`."""

    @abstractmethod
    def open_stream(self, key: str) -> Iterator[bytes]:
        """The object in chunks of at most :data:`STREAM_CHUNK_BYTES`, for serving large objects.

        Raises :class:`ObjectNotFound` here, before the first chunk, so a server can still
        answer 404; the iterator releases its file or connection when exhausted or closed."""

    @abstractmethod
    def download(self, key: str, path: Path) -> None:
        """Copy the object to a local file."""

    @abstractmethod
    def size(self, key: str) -> int | None:
        """The object's size in bytes; None when there is no such object."""

    def exists(self, key: str) -> bool:
        return self.size(key) is not None

    @abstractmethod
    def list(self, prefix: str = "") -> list[ObjectInfo]:
        """Objects whose key starts with ``prefix``, sorted by key."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Remove the object; deleting a missing key is not an error."""

    @abstractmethod
    def presigned_url(self, key: str, expires: timedelta = DEFAULT_URL_EXPIRY) -> str:
        """A URL that lets a client without credentials read the object until it expires."""

    @abstractmethod
    def gdal_path(self, key: str) -> str:
        """The path GDAL/rasterio opens the object by (inside :meth:`gdal_env`)."""

    @abstractmethod
    def gdal_env(self) -> AbstractContextManager[Any]:
        """A ``rasterio.Env`` configured to read this store's :meth:`gdal_path` paths."""

    @abstractmethod
    def check(self) -> None:
        """Raise :class:`ServiceUnavailable` naming the store and what to check if unusable."""


class LocalStore(ObjectStore):
    """Objects as files under a root folder: the embedded default."""

    def __init__(self, root: Path) -> None:
        self.root = root.expanduser().resolve()
        self.url = self.root.as_uri()

    def _path(self, key: str) -> Path:
        return self.root / validate_key(key)

    def put(self, key: str, data: bytes | Path, content_type: str | None = None, *, move: bool = False) -> None:
        target = self._path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        if move and isinstance(data, Path):
            try:
                os.replace(data, target)  # same filesystem: no copy at all
                return
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
        fd, temp_name = tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as out:
                if isinstance(data, Path):
                    with data.open("rb") as src:
                        shutil.copyfileobj(src, out, length=8 * 1024 * 1024)
                else:
                    out.write(data)
            os.replace(temp_name, target)
        except BaseException:
            Path(temp_name).unlink(missing_ok=True)
            raise
        if move and isinstance(data, Path):
            data.unlink()

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            raise ObjectNotFound(f"no object {key!r} in {self.url}") from None

    def open_stream(self, key: str) -> Iterator[bytes]:
        try:
            handle = self._path(key).open("rb")
        except (FileNotFoundError, IsADirectoryError):
            raise ObjectNotFound(f"no object {key!r} in {self.url}") from None
        return _chunks(handle.read, handle.close)

    def download(self, key: str, path: Path) -> None:
        source = self._path(key)
        if not source.is_file():
            raise ObjectNotFound(f"no object {key!r} in {self.url}")
        shutil.copyfile(source, path)

    def size(self, key: str) -> int | None:
        path = self._path(key)
        return path.stat().st_size if path.is_file() else None

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        if not self.root.is_dir():
            return []
        found = []
        for path in self.root.rglob("*"):
            if path.is_file() and not path.name.startswith(_TEMP_PREFIX):
                key = path.relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    found.append(ObjectInfo(key, path.stat().st_size))
        return sorted(found, key=lambda info: info.key)

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def presigned_url(self, key: str, expires: timedelta = DEFAULT_URL_EXPIRY) -> str:
        # A folder needs no signature; the API streams local objects to remote clients.
        if not self.exists(key):
            raise ObjectNotFound(f"no object {key!r} in {self.url}")
        return self._path(key).as_uri()

    def gdal_path(self, key: str) -> str:
        return str(self._path(key))

    def gdal_env(self) -> AbstractContextManager[Any]:
        import rasterio

        env: AbstractContextManager[Any] = rasterio.Env(GDAL_CACHEMAX=GDAL_CACHE_MB)
        return env

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(prefix=_TEMP_PREFIX, dir=self.root):
                pass
        except OSError as exc:
            raise ServiceUnavailable(
                f"cannot write to the store folder {self.root}: {exc.strerror}. "
                "Check that CROPAI_STORAGE_URL points to a writable folder."
            ) from None


class S3Store(ObjectStore):
    """Objects in an S3 bucket (MinIO, or any S3 API) through the ``minio`` client.

    ``s3://bucket/prefix`` keeps every key under ``prefix/``. GDAL reads through
    ``/vsis3/`` with the same endpoint and keys.
    """

    def __init__(self, url: str, settings: Settings) -> None:
        parts = urlsplit(url)
        self.url = url
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        endpoint = settings.s3_endpoint or "s3.amazonaws.com"
        endpoint_parts = urlsplit(endpoint if "://" in endpoint else f"//{endpoint}")
        self.endpoint = endpoint_parts.netloc
        self.secure = endpoint_parts.scheme == "https" or (endpoint_parts.scheme != "http" and settings.s3_secure)
        self.region = settings.s3_region
        self._access_key = settings.s3_access_key
        self._secret_key = settings.s3_secret_key.get_secret_value()
        self._client = _minio_client(self.endpoint, settings, self.secure)

    def _object_name(self, key: str) -> str:
        validate_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _key(self, object_name: str) -> str:
        return object_name[len(self.prefix) + 1 :] if self.prefix else object_name

    @contextmanager
    def _errors(self, key: str | None = None) -> Iterator[None]:
        """Turn the client's errors into ours, naming the endpoint and the key."""
        from minio.error import S3Error
        from urllib3.exceptions import HTTPError

        try:
            yield
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NotFound") and key is not None:
                raise ObjectNotFound(f"no object {key!r} in {self.url}") from None
            if exc.code == "NoSuchBucket":
                raise ServiceUnavailable(
                    f"bucket {self.bucket!r} does not exist at {self._where()}; "
                    "create it with `cropai store init` (or the compose `minio-init` service)."
                ) from None
            raise ServiceUnavailable(f"S3 error at {self._where()}: {exc.code}: {exc.message}") from None
        except HTTPError as exc:
            raise ServiceUnavailable(
                f"cannot reach the S3 API at {self._where()}: {exc}. Check that the server runs, "
                "CROPAI_S3_ENDPOINT (host:port) and CROPAI_S3_SECURE (TLS or not)."
            ) from None

    def _where(self) -> str:
        return f"{'https' if self.secure else 'http'}://{self.endpoint}/{self.bucket}"

    def put(self, key: str, data: bytes | Path, content_type: str | None = None, *, move: bool = False) -> None:
        name = self._object_name(key)
        content_type = content_type or "application/octet-stream"
        with self._errors(key):
            if isinstance(data, Path):
                self._client.fput_object(self.bucket, name, str(data), content_type=content_type)
            else:
                self._client.put_object(self.bucket, name, io.BytesIO(data), len(data), content_type=content_type)
        if move and isinstance(data, Path):
            data.unlink()

    def get(self, key: str) -> bytes:
        with self._errors(key):
            response = self._client.get_object(self.bucket, self._object_name(key))
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

    def open_stream(self, key: str) -> Iterator[bytes]:
        with self._errors(key):
            response = self._client.get_object(self.bucket, self._object_name(key))

        def release() -> None:
            response.close()
            response.release_conn()

        return _chunks(response.read, release)

    def download(self, key: str, path: Path) -> None:
        with self._errors(key):
            self._client.fget_object(self.bucket, self._object_name(key), str(path))

    def size(self, key: str) -> int | None:
        try:
            with self._errors(key):
                return self._client.stat_object(self.bucket, self._object_name(key)).size
        except ObjectNotFound:
            return None

    def list(self, prefix: str = "") -> list[ObjectInfo]:
        full_prefix = f"{self.prefix}/{prefix}" if self.prefix else prefix
        with self._errors():
            objects = self._client.list_objects(self.bucket, prefix=full_prefix, recursive=True)
            found = [ObjectInfo(self._key(o.object_name), o.size or 0) for o in objects]
        return sorted(found, key=lambda info: info.key)

    def delete(self, key: str) -> None:
        with self._errors(key):
            self._client.remove_object(self.bucket, self._object_name(key))

    def presigned_url(self, key: str, expires: timedelta = DEFAULT_URL_EXPIRY) -> str:
        if not self.exists(key):
            raise ObjectNotFound(f"no object {key!r} in {self.url}")
        with self._errors(key):
            return self._client.presigned_get_object(self.bucket, self._object_name(key), expires=expires)

    def gdal_path(self, key: str) -> str:
        return f"/vsis3/{self.bucket}/{self._object_name(key)}"

    def gdal_env(self) -> rasterio.Env:
        import rasterio

        from cropai.gdal_session import StaticS3Credentials

        # rasterio refuses AWS keys as Env options; a session object supplies them instead.
        return rasterio.Env(
            session=StaticS3Credentials(self._access_key, self._secret_key, self.region),
            AWS_S3_ENDPOINT=self.endpoint,
            AWS_HTTPS="YES" if self.secure else "NO",
            AWS_VIRTUAL_HOSTING="FALSE",
            GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR",
            GDAL_CACHEMAX=GDAL_CACHE_MB,
        )

    def ensure_bucket(self) -> None:
        with self._errors():
            if not self._client.bucket_exists(self.bucket):
                self._client.make_bucket(self.bucket, location=self.region)

    def check(self) -> None:
        with self._errors():
            exists = self._client.bucket_exists(self.bucket)
        if not exists:
            raise ServiceUnavailable(
                f"bucket {self.bucket!r} does not exist at {self._where()}; "
                "create it with `cropai store init` (or the compose `minio-init` service)."
            )


def _minio_client(endpoint: str, settings: Settings, secure: bool) -> Minio:
    import urllib3
    from minio import Minio

    # Fail fast when the server is down instead of minio's default of long retries.
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=settings.connect_timeout_s, read=300),
        retries=urllib3.Retry(total=3, connect=1, backoff_factor=0.2, status_forcelist=(500, 502, 503, 504)),
        maxsize=16,
    )
    return Minio(
        endpoint,
        access_key=settings.s3_access_key or None,
        secret_key=settings.s3_secret_key.get_secret_value() or None,
        secure=secure,
        region=settings.s3_region,
        http_client=http,
    )


def _chunks(read: Callable[[int], bytes], release: Callable[[], None]) -> Iterator[bytes]:
    try:
        while chunk := read(STREAM_CHUNK_BYTES):
            yield chunk
    finally:
        release()


def open_store(settings: Settings) -> ObjectStore:
    """The store named by the settings: the one place that picks a backend."""
    url = settings.resolved_storage_url
    parts = urlsplit(url)
    if parts.scheme == "s3":
        return S3Store(url, settings)
    if parts.scheme == "file":
        return LocalStore(Path(parts.path))
    return LocalStore(Path(url))
