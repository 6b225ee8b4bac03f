"""Ingesting one scene, and the bookkeeping of an ingest run.

One scene: fetch its files (a SAFE product is opened and checked against its
metadata first), hash them, skip it if that content is already catalogued,
recognise and validate its bands, write the canonical COG (one radiometry, see
:mod:`cropai.radiometry`), measure footprint and cloud cover, upload to
``scenes/{scene_id}/{hash}.tif`` and add the Scene row with its provenance. The
object key holds the content hash, so two different files with the same scene id
never overwrite each other: the second becomes version 2.

A scene that cannot be used is copied to ``quarantine/{run}/`` with a JSON note
of the reason and reported as rejected; a file outside the bounds its source was
listed under is rejected without being read, so nothing of it is kept. I/O errors
propagate so that the caller can retry them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from cropai import safe
from cropai.db import IngestRun, RunStatus, Scene, as_utc, retry_transient, session_scope, utcnow
from cropai.errors import InvalidInput, InvalidScene
from cropai.provenance import NO_PROVENANCE, SceneProvenance
from cropai.radiometry import Radiometry
from cropai.raster import (
    DATETIME_TAGS,
    OFFSET_TAG,
    QUANTIFICATION_TAG,
    SceneLayout,
    SceneMeasures,
    SourceFile,
    acquisition_time_from,
    measure_scene,
    plan_layout,
    write_cog,
)
from cropai.sentinel2 import REFLECTANCE_SCALE
from cropai.source_bounds import STORE_PREFIX, SourceBounds, open_url
from cropai.sources import OPEN, SceneAsset, SceneCandidate
from cropai.storage import COG_CONTENT_TYPE, ObjectStore

log = logging.getLogger(__name__)

Status = Literal["ingested", "skipped", "rejected"]
HASH_CHUNK = 8 * 1024 * 1024
MAX_VERSION_ATTEMPTS = 5


@dataclass(frozen=True)
class IngestSummary:
    """What one ingest run did: the figures ``cropai ingest`` prints and the run's artifact shows."""

    ingest_run_id: int
    source: str
    found: int
    ingested: int
    skipped: int
    rejected: int
    status: str

    @classmethod
    def of(cls, run: IngestRun) -> IngestSummary:
        return cls(run.id, run.source, run.found, run.ingested, run.skipped, run.rejected, run.status.value)


@dataclass(frozen=True)
class IngestOutcome:
    """What became of one candidate."""

    source_uri: str
    status: Status
    scene_id: str | None = None
    version: int | None = None
    object_key: str | None = None
    reason: str | None = None  # why it was skipped or rejected
    size_bytes: int = 0


@dataclass(frozen=True)
class FileHints:
    """What the user says of files that do not describe themselves: their band names in
    order, and the offset (in digital numbers, e.g. -1000) their pixels carry when neither
    their tags nor their source say (``--radiometric-offset``, default 0)."""

    band_mapping: Sequence[str | None] | None = None
    radiometric_offset: int = 0

    @property
    def radiometry(self) -> Radiometry:
        return Radiometry.from_dn(self.radiometric_offset)


@dataclass(frozen=True)
class SceneSource:
    """A fetched scene before it is written: its files (with their radiometry where the source
    says it), the hash of its content and what its source says of it."""

    files: tuple[SourceFile, ...]
    content_hash: str
    provenance: SceneProvenance = NO_PROVENANCE
    acquired_at: datetime | None = None


def ingest_candidate(
    candidate: SceneCandidate,
    store: ObjectStore,
    sessions: sessionmaker[Session],
    run_id: int | None = None,
    band_mapping: Sequence[str | None] | None = None,
    radiometric_offset: int = 0,
) -> IngestOutcome:
    """Bring one scene into the store and the catalogue (see the module docstring)."""
    hints = FileHints(band_mapping, radiometric_offset)
    with tempfile.TemporaryDirectory(prefix="cropai-ingest-") as temp:
        work = Path(temp)
        try:
            paths = [] if _refused_unread(candidate) else fetch_candidate(candidate, store, work)
        except InvalidInput as exc:  # outside the bounds: nothing was read, so nothing is quarantined
            outcome = IngestOutcome(candidate.source_uri, "rejected", reason=str(exc))
        else:
            outcome = _ingest_files(candidate, paths, work, store, sessions, run_id, hints)
    if candidate.from_inbox:
        for asset in candidate.assets:
            store.delete(asset.href.removeprefix(STORE_PREFIX))
    _count(sessions, run_id, outcome.status)
    log.debug("%s %s%s", outcome.status, candidate.name, f": {outcome.reason}" if outcome.reason else "")
    return outcome


def _ingest_files(
    candidate: SceneCandidate,
    paths: list[Path],
    work: Path,
    store: ObjectStore,
    sessions: sessionmaker[Session],
    run_id: int | None,
    hints: FileHints,
) -> IngestOutcome:
    """Skip, land or quarantine a scene whose files are fetched into ``paths``."""
    try:
        source = scene_source(candidate, paths)
    except InvalidScene as exc:
        return quarantine(candidate, paths, str(exc), store, run_id)
    with sessions() as session:
        duplicate = session.scalar(select(Scene).where(Scene.content_hash == source.content_hash))
    if duplicate is not None:
        return IngestOutcome(
            candidate.source_uri,
            "skipped",
            duplicate.scene_id,
            duplicate.version,
            duplicate.object_key,
            f"same content as {duplicate.scene_id} v{duplicate.version}",
        )
    try:
        return _land(candidate, source, work, store, sessions, run_id, hints)
    except InvalidScene as exc:
        return quarantine(candidate, paths, str(exc), store, run_id)


def _refused_unread(candidate: SceneCandidate) -> bool:
    """Whether the source already says the scene cannot be used (a Level-1C STAC item): then
    nothing of it is downloaded, and its note references it."""
    return candidate.provenance.is_level_1c


def scene_source(candidate: SceneCandidate, paths: list[Path]) -> SceneSource:
    """What a fetched candidate holds: a SAFE product is opened and checked against its
    metadata; other files are taken as they are. Level-1C is refused either way."""
    if _refused_unread(candidate):
        raise safe.level_1c(candidate.name)
    if candidate.is_safe:
        product = safe.open_safe(paths[0])
        safe.check_rasters(product)
        files = tuple(
            SourceFile(path, (band,), product.radiometry.get(band)) for band, path in product.band_files.items()
        )
        return SceneSource(files, safe.content_hash(product), product.provenance, product.acquired_at)
    files = tuple(
        SourceFile(str(path), asset.bands, asset.radiometry)
        for path, asset in zip(paths, candidate.assets, strict=True)
    )
    return SceneSource(files, hash_files(paths), candidate.provenance, candidate.acquired_at)


def fetch_candidate(candidate: SceneCandidate, store: ObjectStore, work: Path) -> list[Path]:
    """Local files of the candidate's assets; a SAFE folder in the inbox is downloaded whole,
    keeping its layout, and given as its folder."""
    if candidate.is_safe and len(candidate.assets) > 1:
        return [_fetch_safe_folder(candidate, store, work / "safe")]
    return [fetch(asset, store, work / str(i), candidate.bounds) for i, asset in enumerate(candidate.assets)]


def _fetch_safe_folder(candidate: SceneCandidate, store: ObjectStore, folder: Path) -> Path:
    """Download the objects of a ``.SAFE/`` prefix into ``folder/<name>.SAFE/...``."""
    root = folder / candidate.name
    for asset in candidate.assets:
        key = asset.href.removeprefix(STORE_PREFIX)
        candidate.bounds.store_key(key)
        relative = key.split(f"{candidate.name}/", 1)[1]
        target = (root / relative).resolve()
        if not target.is_relative_to(root.resolve()):
            raise InvalidInput(f"{key}: escapes the SAFE folder {candidate.name}")
        target.parent.mkdir(parents=True, exist_ok=True)
        store.download(key, target)
    return root


def fetch(asset: SceneAsset, store: ObjectStore, folder: Path, bounds: SourceBounds = OPEN) -> Path:
    """A local file with the asset's bytes: the file itself (its real path when ``bounds`` has
    roots), or a download into ``folder``. An asset outside ``bounds`` raises
    :class:`InvalidInput` before any of it is read."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / (Path(asset.href.split("?")[0]).name or "asset")
    if asset.href.startswith(STORE_PREFIX):
        key = asset.href.removeprefix(STORE_PREFIX)
        bounds.store_key(key)
        store.download(key, target)
        return target
    if asset.href.startswith(("http://", "https://")):
        with open_url(asset.href, bounds) as response:
            response.raise_for_status()
            with target.open("wb") as out:
                for chunk in response.iter_bytes(HASH_CHUNK):
                    out.write(chunk)
        return target
    scheme = urlsplit(asset.href).scheme
    if scheme not in ("", "file") and len(scheme) > 1:  # one letter: a Windows drive
        raise InvalidInput(f"{asset.href}: {scheme}:// assets are not read; expected http(s), store: or a local path")
    path = bounds.local_path(asset.href.removeprefix("file://"))
    if not (path.is_file() or path.is_dir()):
        raise FileNotFoundError(f"{path} disappeared before it could be ingested")
    return path


def hash_files(paths: Sequence[Path]) -> str:
    """SHA-256 of a scene's content: of the file, or of its files' digests in order."""
    digests = []
    for path in paths:
        digest = hashlib.sha256()
        with path.open("rb") as src:
            while chunk := src.read(HASH_CHUNK):
                digest.update(chunk)
        digests.append(digest.hexdigest())
    if len(digests) == 1:
        return digests[0]
    return hashlib.sha256("\n".join(digests).encode()).hexdigest()


@dataclass(frozen=True)
class _CanonicalScene:
    """A scene rewritten as its canonical COG (``cog``, in the work folder) and what the
    catalogue records of it."""

    scene_id: str
    content_hash: str  # SHA-256 of the source files (see ``hash_files``)
    acquired_at: datetime
    provenance: SceneProvenance
    layout: SceneLayout
    measures: SceneMeasures
    cloud_fraction: float | None
    cog: Path
    size_bytes: int

    @property
    def object_key(self) -> str:
        """Where the COG is stored: the content hash in the key keeps versions of one scene apart."""
        return f"scenes/{self.scene_id}/{self.content_hash[:16]}.tif"


def _land(
    candidate: SceneCandidate,
    source: SceneSource,
    work: Path,
    store: ObjectStore,
    sessions: sessionmaker[Session],
    run_id: int | None,
    hints: FileHints,
) -> IngestOutcome:
    """Write the canonical COG, upload it and catalogue it as the scene's next version."""
    scene = _canonical_scene(candidate, source, work, hints)
    store.put(scene.object_key, scene.cog, content_type=COG_CONTENT_TYPE, move=True)
    return _catalogue(candidate, scene, store, sessions, run_id)


def _canonical_scene(candidate: SceneCandidate, source: SceneSource, work: Path, hints: FileHints) -> _CanonicalScene:
    """Recognise the scene's bands, write the canonical COG into ``work`` and measure it;
    raises :class:`InvalidScene` when the scene cannot be used."""
    layout = plan_layout(source.files, hints.band_mapping, hints.radiometry)
    provenance = (
        source.provenance.or_else(SceneProvenance.from_tags(layout.tags))
        .or_else(SceneProvenance.from_product_name(candidate.scene_id))
        .or_else(SceneProvenance.from_product_name(candidate.name))
    )
    if provenance.is_level_1c:
        raise safe.level_1c(candidate.name)
    scene_id = scene_id_of(candidate, layout, provenance)
    acquired_at = as_utc(source.acquired_at) if source.acquired_at else acquisition_time(candidate, layout)
    cog = work / "scene.cog.tif"
    write_cog(layout, _cog_tags(candidate, source, scene_id, acquired_at, provenance, layout), cog)
    measures = measure_scene(cog)
    cloud = measures.cloud_fraction if measures.cloud_fraction is not None else candidate.cloud_fraction
    return _CanonicalScene(
        scene_id, source.content_hash, acquired_at, provenance, layout, measures, cloud, cog, cog.stat().st_size
    )


def _cog_tags(
    candidate: SceneCandidate,
    source: SceneSource,
    scene_id: str,
    acquired_at: datetime,
    provenance: SceneProvenance,
    layout: SceneLayout,
) -> dict[str, str]:
    """The stored COG's tags: who it is, where it came from, and its radiometry, stated so
    that reading the file again (even re-ingesting it) never applies an offset twice."""
    return {
        "SCENE_ID": scene_id,
        "ACQUISITION_DATETIME": acquired_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "SOURCE": candidate.source_uri,
        "CONTENT_SHA256": source.content_hash,
        **provenance.as_tags(),
        "RADIOMETRY": f"surface reflectance x {REFLECTANCE_SCALE}, no offset, nodata 0",
        OFFSET_TAG: "0",
        QUANTIFICATION_TAG: str(REFLECTANCE_SCALE),
        "SOURCE_BOA_ADD_OFFSET": str(layout.radiometry.offset_dn),
    }


def _catalogue(
    candidate: SceneCandidate,
    scene: _CanonicalScene,
    store: ObjectStore,
    sessions: sessionmaker[Session],
    run_id: int | None,
) -> IngestOutcome:
    """Add the stored scene's row under the next free version; skip it (removing an orphaned
    upload) when the same content landed meanwhile from another task."""
    key = scene.object_key
    for _ in range(MAX_VERSION_ATTEMPTS):
        try:
            with session_scope(sessions) as session:
                existing = session.scalar(select(Scene).where(Scene.content_hash == scene.content_hash))
                if existing is not None:
                    if existing.object_key != key:  # under another name: ours would be an orphan
                        store.delete(key)
                    return IngestOutcome(
                        candidate.source_uri,
                        "skipped",
                        existing.scene_id,
                        existing.version,
                        existing.object_key,
                        "same content landed concurrently",
                    )
                latest = session.scalar(select(func.max(Scene.version)).where(Scene.scene_id == scene.scene_id))
                version = (latest or 0) + 1
                session.add(_scene_row(scene, version, candidate.source_uri, run_id))
            return IngestOutcome(
                candidate.source_uri, "ingested", scene.scene_id, version, key, size_bytes=scene.size_bytes
            )
        except IntegrityError:
            continue  # another task took this version number; count again
    raise RuntimeError(f"could not assign a version to {scene.scene_id} after {MAX_VERSION_ATTEMPTS} attempts")


def _scene_row(scene: _CanonicalScene, version: int, source_uri: str, run_id: int | None) -> Scene:
    minx, miny, maxx, maxy = scene.measures.bbox_wgs84
    return Scene(
        scene_id=scene.scene_id,
        version=version,
        content_hash=scene.content_hash,
        object_key=scene.object_key,
        source_uri=source_uri,
        platform=scene.provenance.platform or "",
        product_id=scene.provenance.product_id,
        mgrs_tile=scene.provenance.mgrs_tile,
        relative_orbit=scene.provenance.relative_orbit,
        processing_baseline=scene.provenance.processing_baseline,
        radiometric_offset=scene.layout.radiometry.offset_dn,
        acquired_at=scene.acquired_at,
        crs=scene.layout.crs,
        resolution_m=scene.layout.resolution_m,
        width=scene.layout.width,
        height=scene.layout.height,
        bands=scene.layout.bands,
        cloud_fraction=scene.cloud_fraction,
        footprint_geojson=scene.measures.footprint_wgs84,
        minx=minx,
        miny=miny,
        maxx=maxx,
        maxy=maxy,
        size_bytes=scene.size_bytes,
        ingest_run_id=run_id,
    )


def scene_id_of(candidate: SceneCandidate, layout: SceneLayout, provenance: SceneProvenance) -> str:
    """The provider's id: the STAC item id, the SAFE product's id, the file's SCENE_ID tag,
    else the file name."""
    product = provenance.product_id if candidate.is_safe else None
    raw = candidate.scene_id or product or layout.tags.get("SCENE_ID") or candidate.name.split(".")[0]
    return re.sub(r"[^A-Za-z0-9._-]", "_", raw)[:200]


def acquisition_time(candidate: SceneCandidate, layout: SceneLayout) -> datetime:
    """From the STAC item, the file's tags, or a date in its name (UTC)."""
    if candidate.acquired_at is not None:
        return as_utc(candidate.acquired_at)
    moment = acquisition_time_from(layout.tags, candidate.name)
    if moment is None:
        raise InvalidScene(
            f"no acquisition time: expected a tag ({', '.join(DATETIME_TAGS)}), a STAC item datetime, "
            "or a date such as 20250415T103021 in the file name"
        )
    return moment


def quarantine(
    candidate: SceneCandidate, paths: list[Path], reason: str, store: ObjectStore, run_id: int | None
) -> IngestOutcome:
    """Keep a rejected scene's files under ``quarantine/`` with a JSON note saying why."""
    folder = f"quarantine/run-{run_id}" if run_id is not None else f"quarantine/{utcnow():%Y%m%dT%H%M%S}"
    # Two rejected files of one name (the same product from two folders) keep apart.
    source_tag = hashlib.sha256(candidate.source_uri.encode()).hexdigest()[:8]
    base = f"{folder}/{source_tag}-{re.sub(r'[^A-Za-z0-9._-]', '_', candidate.name)}"
    kept = []
    if len(paths) == 1 and paths[0].is_file():  # a single file (or zip) is kept whole
        store.put(base, paths[0])
        kept.append(base)
    elif len(paths) == 1 and candidate.from_inbox:  # a SAFE folder leaving the inbox is kept whole too
        for path in sorted(p for p in paths[0].rglob("*") if p.is_file()):
            key = f"{base}/{path.relative_to(paths[0]).as_posix()}"
            store.put(key, path)
            kept.append(key)
    # a local folder or a STAC item stays where it is: the note references it
    note = {
        "source": candidate.source_uri,
        "reason": reason,
        "ingest_run_id": run_id,
        "rejected_at": utcnow().isoformat(),
        "kept": kept,
        "assets": [asset.href for asset in candidate.assets],
    }
    store.put(f"{base}.json", json.dumps(note, indent=2).encode(), content_type="application/json")
    return IngestOutcome(candidate.source_uri, "rejected", reason=reason, object_key=f"{base}.json")


# --- the run ----------------------------------------------------------------------------
# The ingest_runs bookkeeping waits out a short database outage (``retry_transient``).


@retry_transient
def start_run(sessions: sessionmaker[Session], source: str, flow_run_id: object = None) -> int:
    with session_scope(sessions) as session:
        run = IngestRun(source=source, flow_run_id=flow_run_id)
        session.add(run)
        session.flush()
        return run.id


@retry_transient
def set_found(sessions: sessionmaker[Session], run_id: int, found: int) -> None:
    with session_scope(sessions) as session:
        session.execute(update(IngestRun).where(IngestRun.id == run_id).values(found=found))


@retry_transient
def _count(sessions: sessionmaker[Session], run_id: int | None, status: Status) -> None:
    """Live counters, so operators (and the CLI's progress bar) see a run move.

    A retry after a lost commit may count a scene twice; ``finish_run`` recounts from the outcomes."""
    if run_id is None:
        return
    column = {"ingested": IngestRun.ingested, "skipped": IngestRun.skipped, "rejected": IngestRun.rejected}[status]
    with session_scope(sessions) as session:
        session.execute(update(IngestRun).where(IngestRun.id == run_id).values({column: column + 1}))


@retry_transient
def finish_run(
    sessions: sessionmaker[Session], run_id: int, outcomes: Sequence[IngestOutcome], error: str | None = None
) -> IngestRun:
    """Close the run with its final counts (recomputed from the outcomes) and rejection reasons."""
    with session_scope(sessions) as session:
        run = session.get_one(IngestRun, run_id)
        run.ingested = sum(o.status == "ingested" for o in outcomes)
        run.skipped = sum(o.status == "skipped" for o in outcomes)
        run.rejected = sum(o.status == "rejected" for o in outcomes)
        run.rejections = [
            {"file": o.source_uri, "reason": o.reason, "note": o.object_key} for o in outcomes if o.status == "rejected"
        ]
        run.error = error
        run.status = RunStatus.failed if error else RunStatus.completed
        run.finished_at = utcnow()
    return run
