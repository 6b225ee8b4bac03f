"""Query pieces the list endpoints share: a bbox intersection filter and paging."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from api.errors import field_error


def parse_bbox(text: str | None, name: str = "bbox") -> tuple[float, float, float, float] | None:
    """``minx,miny,maxx,maxy`` in degrees (EPSG:4326), checked; the 3D form
    ``minx,miny,minz,maxx,maxy,maxz`` (as STAC clients may send) is taken for its 2D box."""
    if text is None:
        return None
    try:
        numbers = [float(part) for part in text.split(",")]
    except ValueError:
        numbers = []
    if len(numbers) not in (4, 6):
        raise field_error(("query", name), "expected minx,miny,maxx,maxy in degrees, e.g. 1.6,48.2,1.64,48.22")
    minx, miny, maxx, maxy = numbers if len(numbers) == 4 else (numbers[0], numbers[1], numbers[3], numbers[4])
    if not (-180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90):
        raise field_error(("query", name), "expected -180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90")
    return minx, miny, maxx, maxy


def intersecting(query: Select, table: Any, bbox: str | None) -> Select:
    """Rows whose indexed bbox columns intersect ``bbox`` (all rows when it is None)."""
    box = parse_bbox(bbox)
    if box is None:
        return query
    minx, miny, maxx, maxy = box
    return query.where(table.maxx >= minx, table.minx <= maxx, table.maxy >= miny, table.miny <= maxy)


def paged(session: Session, query: Select, limit: int, offset: int, *order: Any) -> tuple[list[Any], int]:
    """One page of the query's rows in ``order``, and the count of all its rows."""
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    return list(session.scalars(query.order_by(*order).limit(limit).offset(offset))), total
