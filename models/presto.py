"""Presto: a pretrained transformer encoder for per-pixel time series, and a classifier on it.

Presto (Tseng, Cartuyvels, Zvonkov, Purohit, Rolnick & Kerner, "Lightweight, Pre-trained
Transformers for Remote Sensing Timeseries", arXiv:2304.14065, 2023; MIT licence) was pretrained
as a masked autoencoder on monthly series of one pixel (12-month windows; its position encoding
covers 24 months): Sentinel-1, Sentinel-2, ERA5, SRTM, NDVI and Dynamic World. Each channel
group of each month becomes one token; the encoder
(2 transformer blocks, width 128, about 0.4 M parameters) pools its tokens into a 128-value
embedding on which a small head can be trained with few labels.

Why our own implementation: the reference code carries a module-wide device, einops and its data
pipelines. This module is the encoder alone, typed and checked like the rest of ``models/``,
with parameter names equal to the published ones so that the authors' weights
(``models/pretrained/presto/``, see its README) load with ``strict=True``.

Why Sentinel-2 only: Crop AI composites Sentinel-2 L2A and nothing else. Presto drops the tokens
of missing channel groups instead of reading made-up values, so ``presto_inputs`` declares S1,
ERA5 and SRTM missing and Dynamic World unknown; the encoder then sees only the six S2 and NDVI
tokens per month (plus one location token).

Conventions taken from the reference code (nasaharvest/presto, ``presto/presto.py`` and
``presto/dataops/pipelines/s1_s2_era5_srtm.py``):

- ``month`` is 0-based, January = 0: the month of the first timestep; timestep ``t`` is month
  ``(month + t) mod 12``.
- S2 inputs are reflectance (DN / 10000, no offset); NDVI is (B8 - B4) / (B8 + B4) in -1..1,
  0 where B8 + B4 <= 0.
- The pooled embedding is the final LayerNorm of the mean over the tokens that were not masked,
  the location token included.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from cropai import sentinel2

PRESTO_WEIGHTS = Path(__file__).parent / "pretrained" / "presto" / "default_model.pt"

EMBEDDING_SIZE = 128
# The position encoding has 24 monthly entries: the longest series the encoder can place in time
# (pretraining used 12-month windows, so steps 13..24 are positions it never saw).
MAX_TIMESTEPS = 24
# Dynamic World has 9 land-cover classes; index 9 is Presto's "unknown", whose tokens are dropped.
DYNAMIC_WORLD_UNKNOWN = 9

# Presto's 17 input channels, in its order.
PRESTO_CHANNELS: tuple[str, ...] = (
    "VV",
    "VH",
    "B02",
    "B03",
    "B04",
    "B05",
    "B06",
    "B07",
    "B08",
    "B8A",
    "B11",
    "B12",
    "temperature_2m",
    "total_precipitation",
    "elevation",
    "slope",
    "NDVI",
)
# Channel groups, one token per group and month. The order sets each group's channel-encoding
# row (and "dynamic_world" takes the row after them), as in the reference code.
CHANNEL_GROUPS: dict[str, tuple[int, ...]] = {
    "S1": (0, 1),
    "S2_RGB": (2, 3, 4),
    "S2_Red_Edge": (5, 6, 7),
    "S2_NIR_10m": (8,),
    "S2_NIR_20m": (9,),
    "S2_SWIR": (10, 11),
    "ERA5": (12, 13),
    "SRTM": (14, 15),
    "NDVI": (16,),
}
_CHANNEL_ENCODING_ROW: dict[str, int] = {name: row for row, name in enumerate([*CHANNEL_GROUPS, "dynamic_world"])}
# Our reflectance bands (cropai.sentinel2.BANDS: B02 ... B12) are Presto channels 2..11, in order.
_S2_CHANNELS = slice(2, 12)
_NDVI_CHANNEL = PRESTO_CHANNELS.index("NDVI")
_RED, _NIR = sentinel2.BANDS.index("B04"), sentinel2.BANDS.index("B08")

# Token width split: month (sinusoid of the calendar month), channel group (learned), position in
# the series (sinusoid); 32 + 32 + 64 = 128.
_MONTH_WIDTH, _CHANNEL_WIDTH, _POSITION_WIDTH = 32, 32, 64
_HEADS, _DEPTH, _MLP_RATIO = 8, 2, 4


class PrestoInputs(NamedTuple):
    """The encoder's inputs for ``N`` pixels of ``T`` monthly steps (``PrestoEncoder(*inputs)``)."""

    x: torch.Tensor  # (N, T, 17) float, normalised as Presto's pretraining data
    dynamic_world: torch.Tensor  # (N, T) int64, Dynamic World class, 9 = unknown
    latlons: torch.Tensor  # (N, 2) float, latitude and longitude in degrees (WGS 84)
    mask: torch.Tensor  # (N, T, 17) float, 1 = missing
    month: torch.Tensor  # (N,) int64, month of the first step, 0 = January


def _check_time_bins(time_bins: int) -> None:
    if not 1 <= time_bins <= MAX_TIMESTEPS:
        raise ValueError(
            f"Presto takes 1 to {MAX_TIMESTEPS} monthly time bins (its position encoding has "
            f"{MAX_TIMESTEPS} entries): got {time_bins}"
        )


def _position_table(positions: int, width: int) -> torch.Tensor:
    """``(positions, width)`` transformer sinusoids (base 1000): sin on even, cos on odd columns."""
    position = torch.arange(positions, dtype=torch.float64)[:, None]
    frequency = 1000.0 ** (-2 * (torch.arange(width) // 2) / width).to(torch.float64)
    angles = position * frequency
    table = torch.where(torch.arange(width) % 2 == 0, torch.sin(angles), torch.cos(angles))
    return table.float()


def _month_table(width: int) -> torch.Tensor:
    """``(12, width)``: sin of the month's angle on the first half of the columns, cos on the second."""
    angles = torch.arange(12, dtype=torch.float64)[:, None] * (2 * math.pi / 12)
    half = width // 2
    return torch.cat([torch.sin(angles).expand(12, half), torch.cos(angles).expand(12, half)], dim=1).float()


def _unit_sphere(latlons: torch.Tensor) -> torch.Tensor:
    """``(N, 2)`` degrees -> ``(N, 3)`` point on the unit sphere: no seam at the antimeridian."""
    latitude, longitude = torch.deg2rad(latlons).unbind(-1)
    return torch.stack(
        [torch.cos(latitude) * torch.cos(longitude), torch.cos(latitude) * torch.sin(longitude), torch.sin(latitude)],
        dim=-1,
    )


class _Attention(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.proj = nn.Linear(width, width)

    def forward(self, tokens: torch.Tensor, attend: torch.Tensor | None) -> torch.Tensor:
        """``(N, L, width)`` -> same; ``attend`` ``(N, 1, 1, L)`` bool, True = key may be attended."""
        batch, length, width = tokens.shape
        qkv = self.qkv(tokens).reshape(batch, length, 3, self.heads, width // self.heads).permute(2, 0, 3, 1, 4)
        query, key, value = qkv.unbind(0)
        mixed = F.scaled_dot_product_attention(query, key, value, attn_mask=attend)
        out: torch.Tensor = self.proj(mixed.transpose(1, 2).reshape(batch, length, width))
        return out


class _Mlp(nn.Module):
    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.fc2(F.gelu(self.fc1(tokens)))
        return out


class _Block(nn.Module):
    """Pre-norm transformer block (ViT style), as Presto's."""

    def __init__(self, width: int, heads: int, mlp_ratio: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.attn = _Attention(width, heads)
        self.norm2 = nn.LayerNorm(width)
        self.mlp = _Mlp(width, width * mlp_ratio)

    def forward(self, tokens: torch.Tensor, attend: torch.Tensor | None) -> torch.Tensor:
        tokens = tokens + self.attn(self.norm1(tokens), attend)
        out: torch.Tensor = tokens + self.mlp(self.norm2(tokens))
        return out


class PrestoEncoder(nn.Module):
    """Presto's encoder: one pixel's monthly series -> a 128-value embedding.

    Parameter names and shapes are those of the published state dict's ``encoder.`` keys. The
    position and month encodings are fixed sinusoids (stored in the weights too), never trained.
    """

    pos_embed: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.eo_patch_embed = nn.ModuleDict(
            {name: nn.Linear(len(channels), EMBEDDING_SIZE) for name, channels in CHANNEL_GROUPS.items()}
        )
        self.dw_embed = nn.Embedding(DYNAMIC_WORLD_UNKNOWN + 1, EMBEDDING_SIZE)
        self.latlon_embed = nn.Linear(3, EMBEDDING_SIZE)
        self.blocks = nn.ModuleList([_Block(EMBEDDING_SIZE, _HEADS, _MLP_RATIO) for _ in range(_DEPTH)])
        self.norm = nn.LayerNorm(EMBEDDING_SIZE)
        # A buffer, not a parameter: the state dict key is the same and optimisers never see it.
        self.register_buffer("pos_embed", _position_table(MAX_TIMESTEPS, _POSITION_WIDTH)[None])
        self.month_embed = nn.Embedding(12, _MONTH_WIDTH)
        with torch.no_grad():
            self.month_embed.weight.copy_(_month_table(_MONTH_WIDTH))
        self.month_embed.weight.requires_grad_(False)
        self.channel_embed = nn.Embedding(len(_CHANNEL_ENCODING_ROW), _CHANNEL_WIDTH)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                # The reference's initialisation (JAX ViT): only matters for a randomly initialised encoder.
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(
        self,
        x: torch.Tensor,
        dynamic_world: torch.Tensor,
        latlons: torch.Tensor,
        mask: torch.Tensor,
        month: torch.Tensor,
    ) -> torch.Tensor:
        """Embed ``N`` pixels' series; see ``PrestoInputs`` for the arguments.

        Args:
            x: ``(N, T, 17)`` float, Presto-normalised channels (``PRESTO_CHANNELS``), 1 <= T <= 24.
            dynamic_world: ``(N, T)`` int64 Dynamic World class, 9 = unknown (token dropped).
            latlons: ``(N, 2)`` latitude, longitude in degrees.
            mask: ``(N, T, 17)``, 1 = missing; a group's token is dropped when any of its channels is.
            month: ``(N,)`` int64, calendar month of the first step, 0 = January .. 11.

        Returns:
            ``(N, 128)`` float: LayerNorm of the mean of the output tokens that were not dropped.
        """
        _check_encoder_inputs(x, dynamic_world, latlons, mask, month)
        tokens, missing = self._tokens(x, dynamic_world, mask, month)
        location = self.latlon_embed(_unit_sphere(latlons.to(x.dtype)))[:, None]
        tokens = torch.cat([location, tokens], dim=1)
        missing = torch.cat([missing.new_zeros(len(missing), 1), missing], dim=1)
        # Only pixels whose masks differ need an attention mask; the location token is never
        # missing, so no pixel ends up with nothing to attend to.
        attend = ~missing[:, None, None, :] if bool(missing.any()) else None
        for block in self.blocks:
            tokens = block(tokens, attend)
        present = (~missing)[:, :, None].to(tokens.dtype)
        pooled = (tokens * present).sum(dim=1) / present.sum(dim=1)
        embedding: torch.Tensor = self.norm(pooled)
        return embedding

    def _tokens(
        self, x: torch.Tensor, dynamic_world: torch.Tensor, mask: torch.Tensor, month: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Tokens ``(N, L, 128)`` and their missing flags ``(N, L)`` bool, without the location token.

        Tokens missing in every pixel are left out altogether (the usual case: whole groups absent),
        as the reference does, which also saves their compute; the rest keep a per-pixel flag.
        """
        batch, time, _ = x.shape
        months = torch.remainder(month[:, None] + torch.arange(time, device=x.device), 12)
        month_encoding = self.month_embed(months)
        position_encoding = self.pos_embed[:, :time].expand(batch, -1, -1)
        tokens: list[torch.Tensor] = []
        missing: list[torch.Tensor] = []
        for group, channels in CHANNEL_GROUPS.items():
            values, group_missing = x[:, :, list(channels)], mask[:, :, list(channels)].amax(dim=-1) > 0
            group_months, group_positions = month_encoding, position_encoding
            if group == "SRTM":
                # Static: one token, read at the first step, that carries no month or position.
                values, group_missing = values[:, :1], group_missing[:, :1]
                group_months = torch.zeros_like(month_encoding[:, :1])
                group_positions = torch.zeros_like(position_encoding[:, :1])
            kept = ~group_missing.all(dim=0)
            encoding = self._encoding(group, group_months[:, kept], group_positions[:, kept])
            tokens.append(self.eo_patch_embed[group](values[:, kept]) + encoding)
            missing.append(group_missing[:, kept])
        group_missing = dynamic_world == DYNAMIC_WORLD_UNKNOWN
        kept = ~group_missing.all(dim=0)
        encoding = self._encoding("dynamic_world", month_encoding[:, kept], position_encoding[:, kept])
        tokens.append(self.dw_embed(dynamic_world[:, kept]) + encoding)
        missing.append(group_missing[:, kept])
        return torch.cat(tokens, dim=1), torch.cat(missing, dim=1)

    def _encoding(self, group: str, month_encoding: torch.Tensor, position_encoding: torch.Tensor) -> torch.Tensor:
        """``(N, T', 128)``: the month, channel-group and position encodings side by side."""
        channel = self.channel_embed.weight[_CHANNEL_ENCODING_ROW[group]]
        return torch.cat([month_encoding, channel.expand(*month_encoding.shape[:2], -1), position_encoding], dim=-1)


def _check_encoder_inputs(
    x: torch.Tensor, dynamic_world: torch.Tensor, latlons: torch.Tensor, mask: torch.Tensor, month: torch.Tensor
) -> None:
    if x.dim() != 3 or x.shape[-1] != len(PRESTO_CHANNELS):
        raise ValueError(f"x must be (pixels, time, {len(PRESTO_CHANNELS)}): got {tuple(x.shape)}")
    pixels, time, _ = x.shape
    _check_time_bins(time)
    expected = {
        "mask": (mask, (pixels, time, len(PRESTO_CHANNELS))),
        "dynamic_world": (dynamic_world, (pixels, time)),
        "latlons": (latlons, (pixels, 2)),
        "month": (month, (pixels,)),
    }
    for name, (tensor, shape) in expected.items():
        if tuple(tensor.shape) != shape:
            raise ValueError(f"{name} must be {shape} for x of shape {tuple(x.shape)}: got {tuple(tensor.shape)}")
    if pixels and (int(month.min()) < 0 or int(month.max()) > 11):
        raise ValueError("month is the 0-based month of the first step (0 = January .. 11)")


def load_presto_encoder(path: Path = PRESTO_WEIGHTS) -> PrestoEncoder:
    """The encoder with the published Presto weights, in eval mode.

    The file is the authors' whole masked autoencoder: every ``encoder.`` key must load into
    ``PrestoEncoder`` exactly (``strict=True``) and every other key must be the decoder's.
    """
    state = torch.load(path, map_location="cpu", weights_only=True)
    unexpected = sorted(key for key in state if not key.startswith(("encoder.", "decoder.")))
    if unexpected:
        raise ValueError(f"{path} is not a Presto checkpoint: unexpected keys {unexpected[:5]}")
    encoder = PrestoEncoder()
    encoder.load_state_dict(
        {key.removeprefix("encoder."): value for key, value in state.items() if key.startswith("encoder.")},
        strict=True,
    )
    return encoder.eval()


def presto_inputs(reflectance: torch.Tensor, start_month: int, latitude: float, longitude: float) -> PrestoInputs:
    """Presto's inputs for Sentinel-2-only series, every other channel group declared missing.

    Args:
        reflectance: ``(N, T, 10)`` float surface reflectance (0..1, i.e. DN / 10000, which is
            also Presto's S2 normalisation) in the order of ``cropai.sentinel2.BANDS``
            (B02 B03 B04 B05 B06 B07 B08 B8A B11 B12), gaps already filled; 1 <= T <= 24.
        start_month: calendar month of the first time bin, 1 = January .. 12.
        latitude, longitude: the pixels' location in degrees (WGS 84); one for all ``N`` pixels.

    Returns:
        ``PrestoInputs``: S1, ERA5 and SRTM channels 0 and masked, Dynamic World unknown (9)
        everywhere, NDVI from B08 and B04, ``month`` = ``start_month - 1``.
    """
    if reflectance.dim() != 3 or reflectance.shape[-1] != len(sentinel2.BANDS):
        raise ValueError(
            f"reflectance must be (pixels, time, {len(sentinel2.BANDS)}) in band order "
            f"{' '.join(sentinel2.BANDS)}: got {tuple(reflectance.shape)}"
        )
    pixels, time, _ = reflectance.shape
    _check_time_bins(time)
    if not 1 <= start_month <= 12:
        raise ValueError(f"start_month is a calendar month, 1 = January .. 12: got {start_month}")
    if not (-90.0 <= latitude <= 90.0 and -180.0 <= longitude <= 180.0):
        raise ValueError(f"latitude and longitude must be degrees: got {latitude}, {longitude}")
    red, nir = reflectance[..., _RED], reflectance[..., _NIR]
    total = nir + red
    # 0 where the sum is not positive, as the reference; the clamp keeps the reference's -1..1
    # range where L2A reflectance dips below 0 (offset baselines), which pretraining never saw.
    ndvi = torch.where(total > 0, (nir - red) / torch.where(total > 0, total, 1.0), 0.0).clamp(-1.0, 1.0)
    zeros = reflectance.new_zeros
    x = torch.cat([zeros(pixels, time, 2), reflectance, zeros(pixels, time, 4), ndvi[..., None]], dim=-1)
    present = torch.zeros(len(PRESTO_CHANNELS), dtype=reflectance.dtype, device=reflectance.device)
    present[_S2_CHANNELS] = 1.0
    present[_NDVI_CHANNEL] = 1.0
    return PrestoInputs(
        x=x,
        dynamic_world=torch.full((pixels, time), DYNAMIC_WORLD_UNKNOWN, dtype=torch.int64, device=reflectance.device),
        latlons=reflectance.new_tensor([latitude, longitude]).repeat(pixels, 1),
        mask=(1.0 - present).repeat(pixels, time, 1),
        month=torch.full((pixels,), start_month - 1, dtype=torch.int64, device=reflectance.device),
    )


class PrestoClassifier(nn.Module):
    """Per-pixel crop classifier: Presto's embedding of each pixel's series, then a linear head.

    Takes the cubes every Crop AI model takes, ``(batch, time, band, y, x)`` standardised per
    band, and gives ``(batch, classes, y, x)`` logits. Pixels are independent (no spatial
    context); they go through the encoder ``pixels_per_pass`` at a time, which bounds memory:
    the peak grows by about 35 kB per pixel of a pass and time bin (float32), so 3.3 GB for
    8192 pixels of 12 bins; the default 1024 (0.4 GB at 12 bins) runs as fast on CPU.
    """

    band_means: torch.Tensor
    band_stds: torch.Tensor

    def __init__(
        self,
        bands: int,
        time_bins: int,
        classes: int,
        start_month: int = 4,
        latitude: float = 0.0,
        longitude: float = 0.0,
        band_means: list[float] | None = None,
        band_stds: list[float] | None = None,
        pixels_per_pass: int = 1024,
        encoder_weights: Path | None = PRESTO_WEIGHTS,
    ) -> None:
        """
        Args:
            bands: must be 10, the bands of ``cropai.sentinel2.BANDS`` in that order.
            time_bins: monthly bins, 1..24, the first in calendar month ``start_month`` (1..12).
            classes: outputs of the head.
            latitude, longitude: where the model is used, in degrees (one location per model).
            band_means, band_stds: the per-band standardisation the caller applied to reflectance
                (0..1); undone before the encoder. Default 0 and 1: the input is reflectance.
            pixels_per_pass: pixels per encoder call.
            encoder_weights: Presto weights for the encoder (default: the published ones); None
                leaves it randomly initialised, e.g. before loading a trained classifier's state.
        """
        super().__init__()
        if bands != len(sentinel2.BANDS):
            raise ValueError(
                f"Presto reads the {len(sentinel2.BANDS)} Sentinel-2 bands {' '.join(sentinel2.BANDS)}: "
                f"got {bands} bands"
            )
        _check_time_bins(time_bins)
        if not 1 <= start_month <= 12:
            raise ValueError(f"start_month is a calendar month, 1 = January .. 12: got {start_month}")
        if pixels_per_pass < 1:
            raise ValueError(f"pixels_per_pass must be at least 1: got {pixels_per_pass}")
        means = torch.tensor(band_means if band_means is not None else [0.0] * bands, dtype=torch.float32)
        stds = torch.tensor(band_stds if band_stds is not None else [1.0] * bands, dtype=torch.float32)
        if means.shape != (bands,) or stds.shape != (bands,) or not bool((stds > 0).all()):
            raise ValueError(f"band_means and band_stds need {bands} values each, stds positive")
        self.bands, self.time_bins = bands, time_bins
        self.start_month, self.latitude, self.longitude = start_month, latitude, longitude
        self.pixels_per_pass = pixels_per_pass
        # Buffers, so that a saved state dict carries the standardisation it was trained with.
        self.register_buffer("band_means", means)
        self.register_buffer("band_stds", stds)
        self.encoder = load_presto_encoder(encoder_weights) if encoder_weights is not None else PrestoEncoder()
        self.head = nn.Linear(EMBEDDING_SIZE, classes)

    def forward(self, cube: torch.Tensor) -> torch.Tensor:
        """``(batch, time, band, y, x)`` standardised reflectance -> ``(batch, class, y, x)`` logits."""
        return self._per_pixel(cube, self.head)

    def embed(self, cube: torch.Tensor) -> torch.Tensor:
        """``(batch, time, band, y, x)`` standardised reflectance -> ``(batch, 128, y, x)`` embeddings."""
        return self._per_pixel(cube, None)

    def _per_pixel(self, cube: torch.Tensor, head: nn.Module | None) -> torch.Tensor:
        if cube.dim() != 5 or cube.shape[1:3] != (self.time_bins, self.bands):
            raise ValueError(
                f"expected a cube (batch, {self.time_bins} time bins, {self.bands} bands, y, x): "
                f"got {tuple(cube.shape)}"
            )
        batch, time, band, height, width = cube.shape
        reflectance = cube * self.band_stds[:, None, None] + self.band_means[:, None, None]
        pixels = reflectance.permute(0, 3, 4, 1, 2).reshape(batch * height * width, time, band)
        outputs = []
        for chunk in torch.split(pixels, self.pixels_per_pass):
            embedding = self.encoder(*presto_inputs(chunk, self.start_month, self.latitude, self.longitude))
            outputs.append(head(embedding) if head is not None else embedding)
        per_pixel = torch.cat(outputs)
        return per_pixel.reshape(batch, height, width, -1).permute(0, 3, 1, 2).contiguous()
