"""The catalogue as a read-only STAC API under ``/stac``: a landing page, the ``analyses`` and
``scenes`` collections, their Items, and search by bbox or geometry, datetime, collection and id.

The same bearer token as the rest of the API; a user finds the analyses they may see
(``api.deps.visible_to``) and every scene. Items are built by ``cropai.stac_catalogue``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import urlencode

import shapely
import shapely.errors
import shapely.geometry
from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import Select, false, func, or_, select
from sqlalchemy.orm import Session

from api.deps import CurrentUser, SessionDep, StoreDep, visible_to
from api.errors import field_error
from api.queries import intersecting
from cropai import stac_catalogue as stac
from cropai.analysis_records import model_legend
from cropai.db import Analysis, AnalysisStatus, Scene, User, as_utc
from cropai.errors import InvalidInput
from cropai.storage import ObjectStore

if TYPE_CHECKING:
    import pystac
    from shapely.geometry.base import BaseGeometry

router = APIRouter(prefix="/stac", tags=["stac"])

GEOJSON = "application/geo+json"
DEFAULT_PAGE = 10  # STAC API's default page size
# A larger limit is served this many at a time, as STAC API asks (each analysis Item looks up
# its objects' sizes in the store).
MAX_PAGE = 100
MAX_IDS = 100


@dataclass(frozen=True)
class Search:
    """What a page of Items is asked for: every field None or empty means no filter."""

    collections: tuple[str, ...] = stac.COLLECTIONS
    ids: tuple[str, ...] = ()
    bbox: str | None = None  # "minx,miny,maxx,maxy", degrees
    datetime: str | None = None  # RFC 3339 instant or interval
    limit: int = DEFAULT_PAGE
    offset: int = 0
    intersects: dict[str, Any] | None = None  # a GeoJSON geometry, degrees

    def __post_init__(self) -> None:
        if len(self.ids) > MAX_IDS:
            raise field_error(("query", "ids"), f"{len(self.ids)} ids: at most {MAX_IDS} in one search")
        if self.bbox is not None and self.intersects is not None:
            raise field_error(("query", "intersects"), "give bbox or intersects, not both")
        object.__setattr__(self, "limit", min(self.limit, MAX_PAGE))  # served a page at a time

    @cached_property
    def area(self) -> BaseGeometry | None:
        """``intersects`` as a shapely geometry, checked."""
        if self.intersects is None:
            return None
        try:
            area = shapely.geometry.shape(self.intersects)
        except (shapely.errors.ShapelyError, ValueError, TypeError, KeyError, AttributeError, IndexError):
            area = None
        if area is None or area.is_empty or not area.is_valid:
            raise field_error(("query", "intersects"), "expected a valid, non-empty GeoJSON geometry in degrees")
        minx, miny, maxx, maxy = area.bounds
        if not (minx >= -180 and maxx <= 180 and miny >= -90 and maxy <= 90):
            raise field_error(("query", "intersects"), "expected coordinates in degrees: longitude, then latitude")
        return area

    @cached_property
    def window(self) -> stac.TimeWindow | None:
        if self.datetime is None:
            return None
        try:
            return stac.parse_datetime_filter(self.datetime)
        except InvalidInput as exc:
            raise field_error(("query", "datetime"), str(exc)) from None


class SearchBody(BaseModel):
    """``POST /stac/search``: the fields of ``GET /stac/search`` in JSON. Other STAC API fields
    (``filter``, ``sortby``...) are refused by name rather than ignored."""

    model_config = ConfigDict(extra="allow")

    collections: list[str] | None = None
    ids: list[str] | None = Field(None, max_length=MAX_IDS)
    bbox: list[float] | None = Field(
        None, min_length=4, max_length=6, description="minx, miny, maxx, maxy in degrees (or the 3D form of 6)"
    )
    intersects: dict[str, Any] | None = Field(None, description="a GeoJSON geometry in degrees (instead of bbox)")
    datetime: str | None = None
    limit: int = Field(DEFAULT_PAGE, ge=1, description=f"items per page; more than {MAX_PAGE} are served {MAX_PAGE}")
    offset: int = Field(0, ge=0, le=1_000_000_000)


PageLimit = Annotated[
    int, Query(ge=1, le=1_000_000_000, description=f"items per page; more than {MAX_PAGE} are served {MAX_PAGE}")
]
PageOffset = Annotated[int, Query(ge=0, le=1_000_000_000, description="items to skip (the next link sets it)")]
BBoxQuery = Annotated[str | None, Query(description="minx,miny,maxx,maxy in degrees: Items whose bbox intersects it")]
DatetimeQuery = Annotated[
    str | None,
    Query(description="an RFC 3339 instant, or start/end with .. for an open end, e.g. 2025-04-01T00:00:00Z/.."),
]


# --- what each collection's Items are --------------------------------------------------------


def _analyses(user: User, search: Search) -> Select:
    query = intersecting(
        select(Analysis).where(
            visible_to(user, Analysis.owner_id),
            Analysis.status == AnalysisStatus.completed,
            Analysis.map_key.is_not(None),
        ),
        Analysis,
        search.bbox,
    )
    if search.ids:
        query = query.where(Analysis.id.in_(_uuids(search.ids)))
    window = search.window
    if window is not None:  # the season overlaps the window (both in UTC)
        if window.start is not None:
            query = query.where(Analysis.end_date >= window.start.date())
        if window.end is not None:
            query = query.where(Analysis.start_date <= window.end.date())
    return query.order_by(Analysis.created_at, Analysis.id)


def _uuids(ids: Sequence[str]) -> list[uuid.UUID]:
    found = []
    for text in ids:
        try:
            number = uuid.UUID(text)
        except ValueError:
            continue  # not an analysis' id: it matches none
        if str(number) == text:  # an Item's id as it is written, not another spelling of the UUID
            found.append(number)
    return found


def _scenes(search: Search) -> Select:
    query = intersecting(select(Scene), Scene, search.bbox)
    if search.ids:
        versions = [v for v in map(stac.parse_scene_item_id, search.ids) if v is not None]
        pairs = [(Scene.scene_id == scene_id) & (Scene.version == number) for scene_id, number in versions]
        query = query.where(or_(*pairs) if pairs else false())
    window = search.window
    if window is not None:
        if window.start is not None:
            query = query.where(Scene.acquired_at >= window.start)
        if window.end is not None:
            query = query.where(Scene.acquired_at <= window.end)
    return query.order_by(Scene.acquired_at, Scene.id)


def _query(session: Session, collection_id: str, user: User, search: Search) -> Select:
    query = _analyses(user, search) if collection_id == stac.ANALYSES else _scenes(search)
    area = search.area
    return query if area is None else _intersecting_exactly(session, query, collection_id, area)


def _intersecting_exactly(session: Session, query: Select, collection_id: str, area: BaseGeometry) -> Select:
    """The query's rows whose geometry (an analysis' AOI, a scene's footprint) intersects
    ``area``: the indexed bboxes narrow them down, shapely decides."""
    table: type[Analysis] | type[Scene] = Analysis if collection_id == stac.ANALYSES else Scene
    geometry = Analysis.aoi_geojson if table is Analysis else Scene.footprint_geojson
    candidates = intersecting(
        query.with_only_columns(table.id, geometry).order_by(None), table, ",".join(map(str, area.bounds))
    )
    hits = [row_id for row_id, shape in session.execute(candidates) if area.intersects(shapely.geometry.shape(shape))]
    return query.where(table.id.in_(hits))


def _item(
    session: Session, store: ObjectStore, hrefs: stac.Hrefs, collection_id: str, row: Analysis | Scene
) -> pystac.Item:
    if isinstance(row, Analysis):
        return stac.analysis_item(row, model_legend(session, row.model_version_id), hrefs, store.size)
    return stac.scene_item(row, hrefs)


def _hrefs(request: Request) -> stac.Hrefs:
    return stac.Hrefs(str(request.base_url).rstrip("/"))


def _checked_collection(collection_id: str) -> str:
    if collection_id not in stac.COLLECTIONS:
        raise HTTPException(404, f"no collection {collection_id!r}: the collections are {', '.join(stac.COLLECTIONS)}")
    return collection_id


# --- pages -----------------------------------------------------------------------------------


def _page(
    request: Request, session: Session, store: ObjectStore, user: User, search: Search, post: bool = False
) -> dict[str, Any]:
    """One page over the collections in their order (analyses, then scenes), with next and
    previous links that repeat the search at the neighbouring offsets."""
    hrefs = _hrefs(request)
    items: list[pystac.Item] = []
    matched, skip = 0, search.offset
    for collection_id in search.collections:
        query = _query(session, collection_id, user, search)
        count = session.scalar(select(func.count()).select_from(query.subquery())) or 0
        matched += count
        wanted = search.limit - len(items)
        if wanted > 0 and skip < count:
            rows = session.scalars(query.limit(wanted).offset(skip))
            items.extend(_item(session, store, hrefs, collection_id, row) for row in rows)
        skip = max(0, skip - count)
    links = [
        _page_link(request, "self", search, post),
        {"rel": "root", "href": hrefs.root(), "type": "application/json"},
    ]
    if len(search.collections) == 1 and not post:  # a collection's items
        links += [
            {"rel": rel, "href": hrefs.collection(search.collections[0]), "type": "application/json"}
            for rel in ("collection", "parent")
        ]
    if search.offset + search.limit < matched:
        links.append(_page_link(request, "next", replace(search, offset=search.offset + search.limit), post))
    if search.offset > 0:
        links.append(_page_link(request, "prev", replace(search, offset=max(0, search.offset - search.limit)), post))
    return stac.item_collection(items, matched, links)


def _page_link(request: Request, rel: str, search: Search, post: bool) -> dict[str, Any]:
    if post:
        body = SearchBody(
            collections=list(search.collections),
            ids=list(search.ids) or None,
            bbox=[float(v) for v in search.bbox.split(",")] if search.bbox else None,
            intersects=search.intersects,
            datetime=search.datetime,
            limit=search.limit,
            offset=search.offset,
        )
        body_fields = body.model_dump(exclude_none=True)
        return {"rel": rel, "href": str(request.url), "type": GEOJSON, "method": "POST", "body": body_fields}
    params = {**dict(request.query_params), "limit": str(search.limit), "offset": str(search.offset)}
    return {"rel": rel, "href": f"{str(request.url).split('?', 1)[0]}?{urlencode(params)}", "type": GEOJSON}


def _extent(session: Session, user: User, collection_id: str) -> stac.Extent:
    """The bbox and time span of the Items ``user`` finds in the collection."""
    rows = (_analyses(user, Search()).order_by(None) if collection_id == stac.ANALYSES else select(Scene)).subquery()
    first, last = (
        (rows.c.start_date, rows.c.end_date)
        if collection_id == stac.ANALYSES
        else (rows.c.acquired_at, rows.c.acquired_at)
    )
    found: tuple[Any, ...] = tuple(
        session.execute(
            select(
                func.min(rows.c.minx),
                func.min(rows.c.miny),
                func.max(rows.c.maxx),
                func.max(rows.c.maxy),
                func.min(first),
                func.max(last),
            )
        ).one()
    )
    if found[0] is None:
        return stac.Extent()
    bbox = (found[0], found[1], found[2], found[3])
    if collection_id == stac.ANALYSES:
        return stac.Extent(bbox, *stac.season_bounds(found[4], found[5]))
    return stac.Extent(bbox, as_utc(found[4]), as_utc(found[5]))


# --- routes ----------------------------------------------------------------------------------


@router.get("", summary="The STAC API landing page")
def landing_page(request: Request, user: CurrentUser) -> dict[str, Any]:
    return stac.landing_page(_hrefs(request))


@router.get("/conformance", summary="The STAC API and OGC API classes this catalogue conforms to")
def conformance(user: CurrentUser) -> dict[str, Any]:
    return {"conformsTo": list(stac.CONFORMANCE)}


@router.get("/collections", summary="The collections: analyses and scenes")
def collections(request: Request, user: CurrentUser, session: SessionDep) -> dict[str, Any]:
    hrefs = _hrefs(request)
    return {
        "collections": [
            stac.collection(c, _extent(session, user, c), hrefs).to_dict(transform_hrefs=False)
            for c in stac.COLLECTIONS
        ],
        "links": [
            {"rel": "self", "href": hrefs.api("/stac/collections"), "type": "application/json"},
            {"rel": "root", "href": hrefs.root(), "type": "application/json"},
        ],
    }


@router.get("/collections/{collection_id}", summary="A collection, with the extent of what you may see")
def read_collection(collection_id: str, request: Request, user: CurrentUser, session: SessionDep) -> dict[str, Any]:
    _checked_collection(collection_id)
    return stac.collection(collection_id, _extent(session, user, collection_id), _hrefs(request)).to_dict(
        transform_hrefs=False
    )


@router.get("/collections/{collection_id}/items", summary="A page of a collection's Items")
def collection_items(
    collection_id: str,
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    store: StoreDep,
    bbox: BBoxQuery = None,
    datetime: DatetimeQuery = None,
    limit: PageLimit = DEFAULT_PAGE,
    offset: PageOffset = 0,
) -> JSONResponse:
    _refuse_unsupported(request.query_params.keys(), "query")
    search = Search((_checked_collection(collection_id),), (), bbox, datetime, limit, offset)
    return JSONResponse(_page(request, session, store, user, search), media_type=GEOJSON)


@router.get("/collections/{collection_id}/items/{item_id}", summary="One Item")
def read_item(
    collection_id: str, item_id: str, request: Request, user: CurrentUser, session: SessionDep, store: StoreDep
) -> JSONResponse:
    search = Search((_checked_collection(collection_id),), (item_id,), limit=1)
    row = session.scalars(_query(session, collection_id, user, search).limit(1)).first()
    if row is None:  # another owner's analysis is not there for you
        raise HTTPException(404, f"no item {item_id!r} in collection {collection_id!r}")
    item = _item(session, store, _hrefs(request), collection_id, row).to_dict(transform_hrefs=False)
    return JSONResponse(item, media_type=GEOJSON)


@router.get("/search", summary="Search Items by collection, id, bbox or geometry, and datetime")
def search_get(
    request: Request,
    user: CurrentUser,
    session: SessionDep,
    store: StoreDep,
    collections: Annotated[str | None, Query(description="comma-separated: analyses, scenes (default both)")] = None,
    ids: Annotated[str | None, Query(description="comma-separated Item ids")] = None,
    bbox: BBoxQuery = None,
    datetime: DatetimeQuery = None,
    limit: PageLimit = DEFAULT_PAGE,
    offset: PageOffset = 0,
    intersects: Annotated[
        str | None,
        Query(description='a GeoJSON geometry as JSON, e.g. {"type": "Point", "coordinates": [1.62, 48.21]}'),
    ] = None,
) -> JSONResponse:
    _refuse_unsupported(request.query_params.keys(), "query")
    search = Search(
        _collections(_split(collections), ("query", "collections")),
        _split(ids) or (),
        bbox,
        datetime,
        limit,
        offset,
        _geojson(intersects),
    )
    return JSONResponse(_page(request, session, store, user, search), media_type=GEOJSON)


@router.post("/search", summary="Search Items by collection, id, bbox or geometry, and datetime (JSON body)")
def search_post(
    body: SearchBody, request: Request, user: CurrentUser, session: SessionDep, store: StoreDep
) -> JSONResponse:
    _refuse_unsupported((body.model_extra or {}).keys(), "body")
    search = Search(
        _collections(tuple(body.collections) if body.collections else None, ("body", "collections")),
        tuple(body.ids or ()),
        ",".join(str(v) for v in body.bbox) if body.bbox else None,
        body.datetime,
        body.limit,
        body.offset,
        body.intersects,
    )
    return JSONResponse(_page(request, session, store, user, search, post=True), media_type=GEOJSON)


def _geojson(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        geometry = json.loads(text)
    except ValueError:
        geometry = None
    if not isinstance(geometry, dict):
        raise field_error(("query", "intersects"), "expected a GeoJSON geometry as JSON")
    return geometry


# Search parameters of STAC API and its extensions that this catalogue does not implement: refused
# by name, so that a client never takes unfiltered results for filtered ones.
UNSUPPORTED = ("filter", "filter-lang", "filter_lang", "query", "sortby", "fields", "q", "token")


def _refuse_unsupported(asked: Iterable[str], where: str) -> None:
    for name in asked:
        if name in UNSUPPORTED:
            raise field_error(
                (where, name),
                f"{name} is not supported here: search by collections, ids, bbox, intersects and datetime",
            )
        if where == "body":
            raise field_error(
                (where, name), f"unknown search field {name!r}: the fields are {', '.join(SEARCH_FIELDS)}"
            )


SEARCH_FIELDS = tuple(SearchBody.model_fields)


def _split(text: str | None) -> tuple[str, ...] | None:
    return tuple(part.strip() for part in text.split(",") if part.strip()) if text else None


def _collections(asked: tuple[str, ...] | None, location: tuple[str, ...]) -> tuple[str, ...]:
    if not asked:
        return stac.COLLECTIONS
    unknown = [c for c in asked if c not in stac.COLLECTIONS]
    if unknown:
        raise field_error(location, f"no collection {unknown[0]!r}: the collections are {', '.join(stac.COLLECTIONS)}")
    return tuple(c for c in stac.COLLECTIONS if c in asked)
