"""Registered model versions and their held-out metrics."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import CurrentUser, ServicesDep
from api.schemas import ModelVersionOut
from cropai.db import ModelVersion
from models.versions import list_versions

router = APIRouter(prefix="/models", tags=["models"])


def model_out(row: ModelVersion) -> ModelVersionOut:
    return ModelVersionOut(
        ref=f"{row.name}@{row.version}",
        name=row.name,
        version=row.version,
        format=row.format,
        description=row.description,
        metrics=row.metrics,
        classes=row.contract.get("classes", []),
        bands=row.contract.get("bands", []),
        created_at=row.created_at,
    )


@router.get("", response_model=list[ModelVersionOut], summary="List model versions")
def list_models(user: CurrentUser, services: ServicesDep) -> list[ModelVersionOut]:
    return [model_out(row) for row in list_versions(services.sessions)]
