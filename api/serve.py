"""``python -m api.serve``: uvicorn serving the API with JSON request logs (what ``cropai api`` runs)."""

from __future__ import annotations

import argparse

import uvicorn

from api.observability import configure_logging


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the Crop AI API with uvicorn.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    configure_logging()
    uvicorn.run("api.main:create_app", factory=True, host=args.host, port=args.port, workers=args.workers,
                access_log=False, log_level="warning", proxy_headers=True)  # fmt: skip


if __name__ == "__main__":
    main()
