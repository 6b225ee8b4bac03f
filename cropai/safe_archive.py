"""The files of a SAFE product wherever they are: a folder on disk, or a ``.zip`` read in
place (Python's ``zipfile`` for metadata and hashing, GDAL's ``/vsizip/`` for rasters), never
extracted. An archive with a member that would land outside its folder (zip slip) or that
is not one ``X.SAFE/`` folder is refused before anything in it is read."""

from __future__ import annotations

import re
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from fnmatch import fnmatch
from pathlib import Path, PurePosixPath
from typing import IO, Protocol

from cropai.errors import InvalidScene

DRIVE_LETTER = re.compile(r"^[A-Za-z]:")


class SafeFiles(Protocol):
    """The files of one SAFE product by path relative to its root (``GRANULE/.../MTD_TL.xml``)."""

    root: str  # the GDAL path of the SAFE root

    def exists(self, relative: str) -> bool: ...

    def matching(self, pattern: str) -> list[str]: ...

    def open(self, relative: str) -> AbstractContextManager[IO[bytes]]: ...


class FolderFiles:
    """A SAFE unpacked on disk."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder.resolve()
        self.root = str(self.folder)

    def exists(self, relative: str) -> bool:
        return (self.folder / relative).is_file()

    def matching(self, pattern: str) -> list[str]:
        return sorted(path.relative_to(self.folder).as_posix() for path in self.folder.glob(pattern) if path.is_file())

    def open(self, relative: str) -> AbstractContextManager[IO[bytes]]:
        return (self.folder / relative).open("rb")


class ZipFiles:
    """A SAFE inside a zip archive (Copernicus Data Space downloads), read in place."""

    def __init__(self, archive: zipfile.ZipFile, path: Path, safe_name: str) -> None:
        self.archive = archive
        self.safe_name = safe_name
        self.root = f"/vsizip/{path.resolve()}/{safe_name}"
        self.names = {name.removeprefix(f"{safe_name}/") for name in archive.namelist() if not name.endswith("/")}

    def exists(self, relative: str) -> bool:
        return relative in self.names

    def matching(self, pattern: str) -> list[str]:
        return sorted(name for name in self.names if fnmatch(name, pattern))

    @contextmanager
    def open(self, relative: str) -> Iterator[IO[bytes]]:
        try:
            with self.archive.open(f"{self.safe_name}/{relative}") as member:
                yield member
        except (zipfile.BadZipFile, zlib.error, EOFError) as exc:
            raise InvalidScene(f"{relative} cannot be read from the archive (corrupt?): {exc}") from None


@contextmanager
def safe_files(path: Path) -> Iterator[SafeFiles]:
    """The files of the SAFE at ``path`` (folder or zip), open for as long as the block runs."""
    if not path.exists():
        raise InvalidScene(f"{path} does not exist")
    if path.is_dir():
        yield FolderFiles(path)
        return
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise InvalidScene(f"not a readable zip archive (truncated or corrupt?): {path.name}: {exc}") from None
    with archive:
        yield ZipFiles(archive, path, _safe_folder_in(archive, path.name))


def _safe_folder_in(archive: zipfile.ZipFile, archive_name: str) -> str:
    """The one top-level ``X.SAFE`` folder of an archive, after refusing members that would
    land outside the archive's folder if it were ever extracted (zip slip)."""
    names = archive.namelist()
    for name in names:
        if escapes(name):
            raise InvalidScene(f"{archive_name}: member {name!r} escapes the archive's folder; refusing the archive")
    tops = sorted({name.split("/", 1)[0] for name in names})
    if len(tops) != 1 or not tops[0].upper().endswith(".SAFE"):
        held = ", ".join(tops[:5]) or "nothing"
        raise InvalidScene(
            f"not a SAFE archive: {archive_name} holds {held}; expected exactly one top-level X.SAFE/ folder "
            "(a Sentinel-2 product as the Copernicus Data Space delivers it)"
        )
    return tops[0]


def escapes(name: str) -> bool:
    return name.startswith("/") or "\\" in name or bool(DRIVE_LETTER.match(name)) or ".." in PurePosixPath(name).parts


# --- Metadata ---------------------------------------------------------------------------------
