"""``python -m api.serve``: uvicorn serving the API with JSON request logs (what ``cropai api`` runs)."""

from __future__ import annotations

import argparse
import logging
from typing import Any

import uvicorn

from api.observability import configure_logging
from api.proxies import trusted_proxies
from cropai.config import DEV_SECRET_KEY, Settings, load_settings
from cropai.errors import SettingsError

# Outside the "cropai.api" loggers, whose lines are JSON request records: a plain line on stderr,
# where the person who started the server sees it.
logger = logging.getLogger("cropai.serve")


def proxy_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's proxy-header options: ``X-Forwarded-For`` and ``-Proto`` are read only from the
    proxies in ``CROPAI_TRUSTED_PROXIES``, and not at all when there are none (uvicorn's default
    would believe any process on loopback)."""
    trusted = sorted(trusted_proxies(settings))
    if not trusted:
        return {"proxy_headers": False}
    return {"proxy_headers": True, "forwarded_allow_ips": trusted}


def warn_if_signed_with_dev_key(settings: Settings) -> None:
    if settings.environment == "dev" and settings.secret_key.get_secret_value() == DEV_SECRET_KEY:
        logger.warning(
            "DEVELOPMENT MODE: tokens and admin-panel sessions are signed with the public development key, "
            "so anyone can forge an admin's. Do not expose this API beyond this machine; to serve others set "
            "CROPAI_ENVIRONMENT=production and a random CROPAI_SECRET_KEY."
        )


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the Crop AI API with uvicorn.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    configure_logging()
    try:
        settings = load_settings()
    except SettingsError as exc:
        raise SystemExit(str(exc)) from None
    warn_if_signed_with_dev_key(settings)
    uvicorn.run(
        "api.main:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        access_log=False,
        log_level="warning",
        **proxy_options(settings),
    )


if __name__ == "__main__":
    main()
