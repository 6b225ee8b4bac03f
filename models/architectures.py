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


def receptive_radius(model: nn.Module) -> int:
    """Pixels of context on each side that an output pixel of ``model`` depends on: the sum of
    the reach of its 2-D convolutions (exact for a chain of them, an upper bound however they are
    wired). A tile whose core keeps this many pixels from its edge gives the same outputs there
    as one pass over the whole area. Raises ValueError for layers that change the resolution."""
    reach = 0
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            if module.stride != (1, 1):
                raise ValueError(f"{type(module).__name__} with stride {module.stride}: receptive radius not derived")
            kernel, dilation = module.kernel_size, module.dilation
            reach += max(((k - 1) * d + 1) // 2 for k, d in zip(kernel, dilation, strict=True))
        elif isinstance(module, (nn.MaxPool2d, nn.AvgPool2d, nn.Upsample, nn.ConvTranspose2d)):
            raise ValueError(f"{type(module).__name__}: receptive radius not derived")
    return reach
