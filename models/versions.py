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
