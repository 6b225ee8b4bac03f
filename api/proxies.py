"""Who is calling: the TCP peer, or, behind reverse proxies named in ``CROPAI_TRUSTED_PROXIES``,
the address they forwarded. Login limits count per client by this address."""

from __future__ import annotations

import ipaddress

from starlette.requests import Request

from cropai.config import Settings


def trusted_proxies(settings: Settings) -> frozenset[str]:
    """The proxies whose ``X-Forwarded-For`` is believed, as normalised addresses; empty = none."""
    return frozenset(_normal(address) for address in settings.trusted_proxies.split(",") if address.strip())


def client_address(request: Request, trusted: frozenset[str]) -> str:
    """The TCP peer, unless it is a trusted proxy: then the right-most ``X-Forwarded-For`` address
    that is not a trusted proxy itself (every proxy appends the address it was called from, so the
    addresses left of the last untrusted one are whatever the client chose to send)."""
    peer = _normal(request.client.host) if request.client else "unknown"
    if peer not in trusted:
        return peer
    forwarded = [
        _normal(address)
        for value in request.headers.getlist("x-forwarded-for")
        for address in value.split(",")
        if address.strip()
    ]
    for address in reversed(forwarded):
        if address not in trusted:
            return address
    return forwarded[0] if forwarded else peer  # a chain of trusted proxies only: the first is the client


def _normal(address: str) -> str:
    """One spelling per IP address (``0::1`` is ``::1``), ports dropped; anything that is not an
    IP address is kept as written."""
    address = address.strip()
    if address.startswith("[") and "]" in address:  # [v6]:port
        address = address[1 : address.index("]")]
    elif address.count(":") == 1:  # v4:port
        address = address.split(":")[0]
    try:
        return str(ipaddress.ip_address(address))
    except ValueError:
        return address
