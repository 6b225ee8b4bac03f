"""What an ingestion run may read, and the one HTTP client its sources are read with.

Runs started through the API or a deployment read local paths only inside the folders
of ``CROPAI_INGEST_ROOTS`` (after ``~``, ``..`` and symbolic links are resolved) and the
store only under ``inbox/``. Every http(s) URL, the source's own and each redirect and
link it leads to, must name a host whose addresses are public; loopback and private
networks pass only with ``CROPAI_STAC_ALLOW_PRIVATE``, and link-local (cloud metadata
services), multicast and unspecified addresses never do.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from cropai.config import ENV_PREFIX, Settings
from cropai.errors import InvalidInput

if TYPE_CHECKING:  # loaded on first use: the API checks sources without fetching any
    import httpx

STORE_PREFIX = "store:"  # "store:inbox/" = the inbox/ prefix of the configured object store
INBOX_PREFIX = "inbox/"
MAX_REDIRECTS = 5
HTTP_TIMEOUT_S = 60.0
ROOTS_VARIABLE = f"{ENV_PREFIX}INGEST_ROOTS"
PRIVATE_VARIABLE = f"{ENV_PREFIX}STAC_ALLOW_PRIVATE"
# Kinds of address no setting lets through: nothing to ingest lives there, cloud metadata services do.
NEVER_READ = ("link-local", "multicast", "unspecified")


@dataclass(frozen=True)
class SourceBounds:
    """What one ingestion run may read.

    ``roots``: resolved folders every local path must lie in; None lets any local path
    through (an operator running the flow on their own machine). ``allow_private``: whether
    http(s) hosts may resolve to loopback or private-network addresses.
    """

    roots: tuple[Path, ...] | None = None
    allow_private: bool = False

    @classmethod
    def for_server(cls, settings: Settings) -> SourceBounds:
        """Runs started through the API, the schedule or the Prefect UI: the configured roots."""
        roots = tuple(
            Path(root.strip()).expanduser().resolve() for root in settings.ingest_roots.split(",") if root.strip()
        )
        return cls(roots, settings.stac_allow_private)

    @classmethod
    def for_operator(cls, settings: Settings) -> SourceBounds:
        """Runs an operator starts on their own machine (``cropai ingest``): any local path."""
        return cls(None, settings.stac_allow_private)

    def local_path(self, path: str | Path) -> Path:
        """``path`` with ``~`` expanded; within roots, its real path, refused unless inside one."""
        try:
            expanded = Path(path).expanduser()
            if self.roots is None:
                return expanded
            real = expanded.resolve()
        except (OSError, RuntimeError, ValueError) as exc:  # no such user, a link loop, a NUL byte
            raise InvalidInput(f"{path}: not a usable path ({exc})") from None
        if not any(real.is_relative_to(root) for root in self.roots):
            how = "" if real == expanded.absolute() else f" (it resolves to {real})"
            raise InvalidInput(f"{path} is outside the folders ingestion may read{how}; {self._where_to()}")
        return real

    def store_key(self, key: str) -> None:
        """Refuse a store key or prefix outside ``inbox/`` (other prefixes hold the catalogue's own objects)."""
        if self.roots is None:
            return
        parts = key.split("/")
        if not key.startswith(INBOX_PREFIX) or any(part in (".", "..") for part in parts):
            raise InvalidInput(
                f"{STORE_PREFIX}{key}: only the store's inbox ({STORE_PREFIX}{INBOX_PREFIX}...) "
                "may be ingested from the object store"
            )

    def url(self, url: str) -> None:
        """Refuse a URL that is not http(s) or whose host has an address these bounds exclude."""
        check_url(url, self.allow_private)

    def _where_to(self) -> str:
        roots = ", ".join(str(root) for root in self.roots or ()) or "none is set"
        return (
            f"the folders are {ROOTS_VARIABLE} ({roots}) and the store's inbox ({STORE_PREFIX}{INBOX_PREFIX}); "
            f"add the folder to {ROOTS_VARIABLE} (comma-separated) or drop the files into the inbox"
        )


def check_source(source: str, bounds: SourceBounds) -> None:
    """Refuse an ingestion source outside ``bounds`` before anything of it is read: a store
    prefix, an http(s) URL, or a local path (``file://`` or plain)."""
    if source.startswith(STORE_PREFIX):
        bounds.store_key(source.removeprefix(STORE_PREFIX))
        return
    scheme = urlsplit(source).scheme
    if scheme in ("http", "https"):
        bounds.url(source)
    elif scheme in ("", "file") or bounds.roots is None:
        bounds.local_path(source.removeprefix("file://"))
    else:
        raise InvalidInput(
            f"{source}: {scheme}:// sources are not read; give {STORE_PREFIX}{INBOX_PREFIX}..., "
            "an http(s) URL or a folder"
        )


def check_url(url: str, allow_private: bool) -> None:
    """Refuse ``url`` unless it is http(s) and every address its host resolves to is allowed:
    public, or (with ``allow_private``) loopback or private. Link-local, multicast and
    unspecified addresses are always refused."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput(f"{url}: only http(s) URLs with a host are read")
    host = parts.hostname
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise InvalidInput(f"{url}: the port is not a number from 0 to 65535") from None
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise InvalidInput(f"{url}: cannot resolve {host} ({exc}); check the host name") from None
    for *_, sockaddr in found:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        if kind := _excluded_kind(address, allow_private):
            hint = (
                "such addresses are never read"
                if kind in NEVER_READ
                else f"ingestion reads only public hosts; set {PRIVATE_VARIABLE}=true to allow loopback and "
                "private-network hosts"
            )
            raise InvalidInput(f"{url}: {host} resolves to {address}, a {kind} address; {hint}")


def _excluded_kind(address: ipaddress.IPv4Address | ipaddress.IPv6Address, allow_private: bool) -> str | None:
    """What kind of address ``address`` is when it may not be read; None when it may."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    # Before private: 169.254.169.254 (cloud metadata) and 0.0.0.0 count as private too.
    for kind, excluded in (
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("unspecified", address.is_unspecified),
    ):
        if excluded:
            return kind
    if allow_private:
        return None
    if address.is_loopback:
        return "loopback"
    if address.is_private:
        return "private"
    return None if address.is_global else "reserved"


@contextmanager
def open_url(url: str, bounds: SourceBounds, method: str = "GET", **request: Any) -> Iterator[httpx.Response]:
    """A streamed response to ``method url`` (``request``: httpx's json, params, headers).

    Redirects are followed here, at most :data:`MAX_REDIRECTS`, each target checked against
    ``bounds`` before it is requested; the client never follows one by itself.
    """
    import httpx

    with httpx.Client(timeout=HTTP_TIMEOUT_S, follow_redirects=False) as client:
        pending = client.build_request(method, url, **request)
        for _ in range(MAX_REDIRECTS + 1):
            bounds.url(str(pending.url))
            response = client.send(pending, stream=True)
            redirect = response.next_request
            if redirect is None:
                try:
                    yield response
                finally:
                    response.close()
                return
            response.close()
            pending = redirect
    raise InvalidInput(f"{url}: more than {MAX_REDIRECTS} redirects; give the URL they end at")
