"""The scene catalogue: search by area, date and cloud cover; download a scene's COG."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import StreamingResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.deps import CurrentUser, Limit, Offset, RowId, SessionDep, StoreDep
from api.queries import intersecting, paged
from api.schemas import Page, SceneOut
from cropai.db import Scene
from cropai.provenance import mgrs_tile
from cropai.storage import COG_CONTENT_TYPE

router = APIRouter(prefix="/scenes", tags=["scenes"])


def scene_out(scene: Scene) -> SceneOut:
    return SceneOut.model_validate(
        {
            **{c: getattr(scene, c) for c in SceneOut.model_fields if hasattr(scene, c)},
            "bbox_wgs84": (scene.minx, scene.miny, scene.maxx, scene.maxy),
        }
    )


@router.get("", response_model=Page[SceneOut], summary="Search scenes")
def search_scenes(
    user: CurrentUser,
    session: SessionDep,
    bbox: Annotated[str | None, Query(description="minx,miny,maxx,maxy in degrees; scenes that intersect it")] = None,
    start: Annotated[datetime | None, Query(description="acquired at or after (ISO 8601)")] = None,
    end: Annotated[datetime | None, Query(description="acquired at or before (ISO 8601)")] = None,
    max_cloud: Annotated[float | None, Query(ge=0, le=1, description="largest cloud fraction, 0..1")] = None,
    tile: Annotated[
        str | None, Query(max_length=8, description="MGRS tile, e.g. 31UFS or T31UFS", examples=["31UFS"])
    ] = None,
    limit: Limit = 50,
    offset: Offset = 0,
) -> dict:
    query = intersecting(select(Scene), Scene, bbox)
    if tile is not None:
        query = query.where(Scene.mgrs_tile == _tile(tile))
    if start is not None:
        query = query.where(Scene.acquired_at >= start)
    if end is not None:
        query = query.where(Scene.acquired_at <= end)
    if max_cloud is not None:
        query = query.where(Scene.cloud_fraction <= max_cloud)
    rows, total = paged(session, query, limit, offset, Scene.acquired_at, Scene.id)
    return {"items": [scene_out(s) for s in rows], "total": total, "limit": limit, "offset": offset}


def _tile(text: str) -> str:
    tile = mgrs_tile(text)
    if tile is None:
        raise HTTPException(422, f"tile {text!r} is not an MGRS tile such as 31UFS or T31UFS")
    return tile


@router.get("/{scene_id}", response_model=SceneOut, summary="Read a scene")
def read_scene(scene_id: RowId, user: CurrentUser, session: SessionDep) -> SceneOut:
    return scene_out(_scene(session, scene_id))


@router.get(
    "/{scene_id}/data",
    summary="The scene's COG (surface reflectance, one band per entry of its bands)",
    response_class=StreamingResponse,
    responses={200: {"content": {"image/tiff": {}}}},
)
def download_scene(scene_id: RowId, user: CurrentUser, session: SessionDep, store: StoreDep) -> StreamingResponse:
    scene = _scene(session, scene_id)
    return StreamingResponse(
        store.open_stream(scene.object_key),
        media_type=COG_CONTENT_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{scene.scene_id}-v{scene.version}.tif"'},
    )


def _scene(session: Session, scene_id: int) -> Scene:
    scene = session.get(Scene, scene_id)
    if scene is None:
        raise HTTPException(404, f"no scene {scene_id}")
    return scene
