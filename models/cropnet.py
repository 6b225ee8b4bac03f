"""CropNet: a compact spatio-temporal network for crop typing from a season of images.

The input cube ``(batch, time, band, y, x)`` is flattened to ``(batch, time*band, y, x)``.
A per-pixel encoder (1x1 convolutions) reads each pixel's whole spectro-temporal
profile, the approach of the pixel-wise classifiers that set the baselines on
crop-type benchmarks (TempCNN: Pelletier, Webb & Petitjean, "Temporal
Convolutional Neural Network for the Classification of Satellite Image Time
Series", Remote Sensing 11(5):523, 2019; the MLP and TempCNN baselines of
BreizhCrops: Russwurm et al., ISPRS Archives XLIII-B2, 2020). Two 3x3
convolutions then add spatial context (a 5x5 pixel receptive field, 50 m), as
the fully convolutional U-Net / U-TAE family does at larger scale (Garnot &
Landrieu, "Panoptic Segmentation of Satellite Image Time Series with
Convolutional Temporal Attention Networks", ICCV 2021), which smooths
single-pixel noise inside fields without blurring field edges much.

At the default widths (64, 24) it has about 24 k parameters and runs at about
0.8 Mpix/s on two CPU cores (see ``bench/model.py``).
"""

from __future__ import annotations

import torch
from torch import nn


class CropNet(nn.Module):
    def __init__(
        self, bands: int, time_bins: int, classes: int, encoder_width: int = 64, context_width: int = 24
    ) -> None:
        super().__init__()
        self.bands, self.time_bins = bands, time_bins
        self.layers = nn.Sequential(
            nn.Conv2d(bands * time_bins, encoder_width, kernel_size=1, bias=False),
            nn.BatchNorm2d(encoder_width),
            nn.ReLU(inplace=True),
            nn.Conv2d(encoder_width, context_width, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(context_width),
            nn.ReLU(inplace=True),
            nn.Conv2d(context_width, context_width, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(context_width),
            nn.ReLU(inplace=True),
            nn.Conv2d(context_width, classes, kernel_size=1),
        )

    def forward(self, cube: torch.Tensor) -> torch.Tensor:
        """``(batch, time, band, y, x)`` normalised reflectance -> ``(batch, class, y, x)`` logits."""
        batch, time, band, height, width = cube.shape
        logits: torch.Tensor = self.layers(cube.reshape(batch, time * band, height, width))
        return logits
