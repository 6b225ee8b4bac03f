"""A TCP proxy on loopback that a test can cut and restore, to stage a real outage of a
server (PostgreSQL) without touching the server itself.

Each accepted connection is forwarded to the target by two threads, one per direction.
``cut()`` shuts every forwarded connection down, as a crashed or restarting server would,
and hangs up on new ones at once until ``restore()``.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from types import TracebackType

from sqlalchemy import make_url

BUFFER_BYTES = 64 * 1024
ACCEPT_POLL_S = 0.1  # how soon the accepting thread notices close()
CONNECT_TIMEOUT_S = 5.0


class TcpProxy:
    """Forwards ``127.0.0.1:port`` to ``target_host:target_port`` until cut."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(ACCEPT_POLL_S)
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._live: set[socket.socket] = set()
        self._is_cut = False
        self._closed = threading.Event()
        self._acceptor = threading.Thread(target=self._accept, name=f"tcp-proxy-{self.port}", daemon=True)

    def __enter__(self) -> TcpProxy:
        self._acceptor.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self._closed.set()
        self.cut()
        self._acceptor.join()
        self._listener.close()

    def route(self, database_url: str) -> str:
        """``database_url`` with its host and port replaced by the proxy's."""
        return make_url(database_url).set(host="127.0.0.1", port=self.port).render_as_string(hide_password=False)

    def is_cut(self) -> bool:
        """Read under the lock; a cut may come from another thread at any moment."""
        return self._is_cut

    def cut(self) -> None:
        """Drop every forwarded connection and hang up on new ones until ``restore()``."""
        with self._lock:
            self._is_cut = True
            for sock in self._live:  # shutdown wakes the forwarding threads; they close the sockets
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    def restore(self) -> None:
        """Forward new connections again."""
        with self._lock:
            self._is_cut = False

    @contextmanager
    def outage(self, seconds: float) -> Iterator[None]:
        """Cut now and restore ``seconds`` later (from a timer thread), or when the block ends."""
        self.cut()
        timer = threading.Timer(seconds, self.restore)
        timer.start()
        try:
            yield
        finally:
            timer.cancel()
            self.restore()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            client.settimeout(None)
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            with self._lock:
                if self.is_cut():
                    return
            upstream = socket.create_connection(self._target, timeout=CONNECT_TIMEOUT_S)
            upstream.settimeout(None)
            with self._lock:
                if self.is_cut():  # cut while this connection was being made
                    return
                self._live |= {client, upstream}
            back = threading.Thread(target=self._pump, args=(upstream, client), daemon=True)
            back.start()
            self._pump(client, upstream)
            back.join()
        except OSError:
            return  # the target refused: the client sees its connection closed
        finally:
            with self._lock:
                self._live.discard(client)
                self._live.discard(upstream)
            client.close()
            if upstream is not None:
                upstream.close()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(BUFFER_BYTES):
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):  # either side gone: end the other direction too
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
