"""Crop AI: crop maps from Sentinel-2 seasons.

For notebooks: ``cropai.open_analysis(id)`` (an analysis' predictions) and
``cropai.open_season(aoi, start, end)`` (the composites a model sees), as xarray Datasets.
They load xarray when first used, so that importing the core stays light.
"""

from __future__ import annotations

from typing import Any

__all__ = ["open_analysis", "open_season"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from cropai import datasets

        return getattr(datasets, name)
    raise AttributeError(f"module 'cropai' has no attribute {name!r}")
