"""S3 credentials for GDAL as a rasterio session, kept apart from ``storage`` so that
processes that never read rasters (the API) do not load rasterio and GDAL."""

from __future__ import annotations

from typing import Any

import rasterio.session


class StaticS3Credentials(rasterio.session.Session):  # type: ignore[misc]  # rasterio ships no types
    """Hands fixed S3 keys to GDAL as a rasterio session (no boto3 needed)."""

    def __init__(self, access_key: str, secret_key: str, region: str) -> None:
        self._options = {
            "AWS_ACCESS_KEY_ID": access_key,
            "AWS_SECRET_ACCESS_KEY": secret_key,
            "AWS_REGION": region,
        }

    @classmethod
    def hascreds(cls, config: dict[str, Any]) -> bool:
        return "AWS_ACCESS_KEY_ID" in config and "AWS_SECRET_ACCESS_KEY" in config

    @property
    def credentials(self) -> dict[str, str]:
        return dict(self._options)

    def get_credential_options(self) -> dict[str, str]:
        return dict(self._options)
