"""Servers on loopback: a free port to start one on, and waiting until it answers.
Used where Crop AI starts its own servers as processes (the embedded stack, tests,
benchmarks)."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_http(url: str, deadline_s: float = 30.0) -> None:
    """Poll ``url`` until it answers at all (any HTTP status) or the deadline passes."""
    end = time.monotonic() + deadline_s
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return
        except urllib.error.HTTPError:
            return
        except OSError:
            if time.monotonic() > end:
                raise TimeoutError(f"{url} did not answer within {deadline_s} s") from None
            time.sleep(0.1)
