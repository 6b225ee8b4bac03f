"""The model families a version may be built from, by the name its contract gives."""

from __future__ import annotations

from typing import Any

from torch import nn

from models.contract import ModelContract
from models.cropnet import CropNet
from models.presto import PrestoClassifier

ARCHITECTURES: dict[str, type[nn.Module]] = {"cropnet": CropNet, "presto": PrestoClassifier}


def build(name: str, bands: int, time_bins: int, classes: int, **params: Any) -> nn.Module:
    """An untrained model of family ``name`` for a contract's bands, time bins and classes."""
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {name!r}: expected one of {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[name](bands, time_bins, classes, **params)


def build_for(contract: ModelContract) -> nn.Module:
    """An untrained model of the contract's family, shaped by its bands, bins and classes."""
    return build(
        contract.architecture,
        len(contract.bands),
        contract.time_bins_count,
        len(contract.classes),
        **contract.architecture_params,
    )
