"""Model versions in the catalogue: parse ``name@version`` references and resolve them
to ``model_versions`` rows. Free of torch, so the API can validate and list models."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from packaging.version import InvalidVersion, Version
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cropai.db import ModelVersion
from cropai.errors import InvalidInput, ModelNotFound
from cropai.season import Season

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,99}$")
VERSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,49}$")
LATEST = "latest"


@dataclass(frozen=True)
class ModelRef:
    """``name@version``, where version may be ``latest``."""

    name: str
    version: str = LATEST

    @classmethod
    def parse(cls, text: str) -> ModelRef:
        name, _, version = text.strip().partition("@")
        version = version or LATEST
        if not NAME_PATTERN.match(name) or not (version == LATEST or VERSION_PATTERN.match(version)):
            raise InvalidInput(
                f"model reference {text!r}: expected name@version such as cropnet@1.0.0 or cropnet@latest "
                "(name: lowercase letters, digits, '-' or '_')"
            )
        return cls(name, version)

    def __str__(self) -> str:
        return f"{self.name}@{self.version}"


def list_versions(sessions: sessionmaker[Session], name: str | None = None) -> list[ModelVersion]:
    with sessions() as session:
        query = select(ModelVersion).order_by(ModelVersion.name, ModelVersion.created_at)
        if name:
            query = query.where(ModelVersion.name == name)
        return list(session.scalars(query))


def resolve(sessions: sessionmaker[Session], reference: str | ModelRef) -> ModelVersion:
    """The catalogue row of ``name@version`` or ``name@latest``; :class:`ModelNotFound` otherwise."""
    ref = reference if isinstance(reference, ModelRef) else ModelRef.parse(reference)
    versions = list_versions(sessions, ref.name)
    if ref.version == LATEST:
        if versions:
            return max(versions, key=_version_order)
    else:
        for row in versions:
            if row.version == ref.version:
                return row
    known = ", ".join(f"{r.name}@{r.version}" for r in list_versions(sessions)) or "none registered"
    raise ModelNotFound(f"no model version {ref}; known versions: {known}")


def _version_order(row: ModelVersion) -> tuple[int, Any, Any]:
    try:
        return (1, Version(row.version), row.created_at)
    except InvalidVersion:
        return (0, row.created_at, row.version)


def model_card(row: ModelVersion) -> dict[str, Any]:
    """What a user should know before trusting a version: what it learnt from (region, season,
    legend, fields and pixels per class, real or synthetic scenes), how it scored on held-out
    fields beside the baseline, its encoder, and whether analyses can check their inputs against
    it. ``cropai models show`` and ``GET /models`` show it."""
    training, metrics, contract = row.training or {}, row.metrics or {}, row.contract
    season = Season.of_contract(contract)
    baseline = metrics.get("baseline") or {}
    return {
        "family": contract.get("architecture", "cropnet"),
        "encoder": training.get("encoder"),
        "synthetic_only": training.get("synthetic_only"),
        "trained_on": training.get("data"),
        "region_bbox_wgs84": training.get("region_bbox_wgs84"),
        "season": season.model_dump(),
        "season_described": season.describe(),
        "classes": [
            {"id": c["id"], "name": c["name"], "colour": c["colour"], "codes": c.get("codes", [])}
            for c in contract.get("classes", [])
        ],
        "fields_per_class": metrics.get("fields_per_class"),
        "pixels_per_class": metrics.get("pixels_per_class"),
        "held_out": {k: metrics.get(k) for k in ("overall_accuracy", "macro_f1", "validation_fields")},
        "baseline": {k: baseline.get(k) for k in ("overall_accuracy", "macro_f1")} if baseline else None,
        "input_statistics": _input_statistics_kept(training.get("input_statistics")),
    }


def _input_statistics_kept(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """That the version keeps its training inputs' statistics (analyses check their inputs
    against them), and over how much; None for a version made before they were kept."""
    if not record:
        return None
    return {
        "bands": len(record["bands"]),
        "bins": len(record["bins"]),
        "clear_values": int(sum(sum(row) for row in record["count"])),
    }
