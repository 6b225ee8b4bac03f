"""The clear median on a torch device: composites on the GPU of a CUDA worker.

The same steps as :func:`cropai.composite.clear_median`, as tensors: unclear observations
set to the largest uint16 and sorted to the end, the one or two middle numbers of each pixel
taken, made float32 reflectance and averaged. The float32 operations are the same ones in the
same order, so the values match the CPU's (tests compare them on the CPU device).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch

from cropai import sentinel2
from cropai.composite import Median

UNCLEAR = np.iinfo(np.uint16).max


def device_clear_median(device: torch.device | str) -> Median:
    """A median for :func:`cropai.composite.composite` that runs on ``device``."""
    target = torch.device(device)

    @torch.inference_mode()
    def median(numbers: npt.NDArray[np.uint16], clear: npt.NDArray[np.bool_]) -> npt.NDArray[np.float32]:
        values = torch.from_numpy(numbers.astype(np.int32)).to(target)  # torch sorts no uint16 on every device
        seen = torch.from_numpy(clear).to(target)
        values = values.masked_fill(~seen[:, None], UNCLEAR).sort(dim=0).values
        count = seen.sum(dim=0)
        last = max(len(numbers) - 1, 0)
        lower = ((count - 1).div(2, rounding_mode="floor")).clamp(0, last).expand(values.shape[1:])[None]
        upper = count.div(2, rounding_mode="floor").clamp(0, last).expand(values.shape[1:])[None]
        scale = torch.tensor(sentinel2.REFLECTANCE_SCALE, dtype=torch.float32, device=target)
        low = values.gather(0, lower)[0].to(torch.float32) / scale
        high = values.gather(0, upper)[0].to(torch.float32) / scale
        result = (low + high) / 2
        result[:, count == 0] = torch.nan
        return np.ascontiguousarray(result.cpu().numpy())

    return median
