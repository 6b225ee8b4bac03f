"""Zarr v3 on Crop AI's object store, so that ``analyses/{id}/pred.zarr`` lives in the
same folder or bucket as everything else and workers reach it the same way.

Zarr keys map one to one onto object keys under a prefix. Chunks are small
(one tile core), so a byte-range read fetches the object and slices it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable

from zarr.abc.store import ByteRequest, OffsetByteRequest, RangeByteRequest, Store, SuffixByteRequest
from zarr.core.buffer import Buffer, BufferPrototype

from cropai.errors import ObjectNotFound
from cropai.storage import ObjectStore


class ObjectZarrStore(Store):
    supports_writes: bool = True
    supports_deletes: bool = True
    supports_listing: bool = True

    def __init__(self, store: ObjectStore, prefix: str, *, read_only: bool = False) -> None:
        super().__init__(read_only=read_only)
        self.store = store
        self.prefix = prefix.strip("/")

    def with_read_only(self, read_only: bool = False) -> ObjectZarrStore:
        return type(self)(self.store, self.prefix, read_only=read_only)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectZarrStore) and (other.store.url, other.prefix) == (self.store.url, self.prefix)

    def __str__(self) -> str:
        return f"{self.store.url}/{self.prefix}"

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if key else self.prefix

    async def get(self, key: str, prototype: BufferPrototype, byte_range: ByteRequest | None = None) -> Buffer | None:
        try:
            data = await asyncio.to_thread(self.store.get, self._key(key))
        except ObjectNotFound:
            return None
        return prototype.buffer.from_bytes(_slice(data, byte_range))

    async def get_partial_values(
        self, prototype: BufferPrototype, key_ranges: Iterable[tuple[str, ByteRequest | None]]
    ) -> list[Buffer | None]:
        return [await self.get(key, prototype, byte_range) for key, byte_range in key_ranges]

    async def exists(self, key: str) -> bool:
        return await asyncio.to_thread(self.store.exists, self._key(key))

    async def set(self, key: str, value: Buffer) -> None:
        self._check_writable()
        await asyncio.to_thread(self.store.put, self._key(key), value.to_bytes())

    async def delete(self, key: str) -> None:
        self._check_writable()
        await asyncio.to_thread(self.store.delete, self._key(key))

    async def list(self) -> AsyncIterator[str]:
        async for key in self.list_prefix(""):
            yield key

    async def list_prefix(self, prefix: str) -> AsyncIterator[str]:
        infos = await asyncio.to_thread(self.store.list, f"{self.prefix}/{prefix}")
        for info in infos:
            yield info.key[len(self.prefix) + 1 :]

    async def list_dir(self, prefix: str) -> AsyncIterator[str]:
        base = f"{self.prefix}/{prefix.strip('/')}/" if prefix.strip("/") else f"{self.prefix}/"
        infos = await asyncio.to_thread(self.store.list, base)
        seen = set()
        for info in infos:
            child = info.key[len(base) :].split("/", 1)[0]
            if child not in seen:
                seen.add(child)
                yield child


def _slice(data: bytes, byte_range: ByteRequest | None) -> bytes:
    if byte_range is None:
        return data
    if isinstance(byte_range, RangeByteRequest):
        return data[byte_range.start : byte_range.end]
    if isinstance(byte_range, OffsetByteRequest):
        return data[byte_range.offset :]
    if isinstance(byte_range, SuffixByteRequest):
        return data[-byte_range.suffix :]
    raise ValueError(f"unexpected byte range {byte_range!r}")
