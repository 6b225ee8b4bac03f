"""A multinomial logistic regression on per-pixel features, and per-field pixel sampling.

It serves twice: as the baseline trained beside every network (on the composites,
time x band values per pixel: the classic pixel classifier that a network has to
beat to earn its keep), and as the head of the pretrained-encoder family (on its
embeddings). Fitted with L-BFGS to convergence on standardised features, classes
weighted so that each weighs the same, L2-regularised.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

PIXELS_PER_FIELD = 400  # a big field must not outvote many small ones


@dataclass(frozen=True)
class LinearClassifier:
    """``softmax(((features - means) / stds) @ weights + bias)``; class indexes, not ids."""

    weights: npt.NDArray[np.float32]  # (features, classes)
    bias: npt.NDArray[np.float32]  # (classes,)
    means: npt.NDArray[np.float32]  # (features,)
    stds: npt.NDArray[np.float32]  # (features,)

    def predict(self, features: npt.NDArray[np.floating]) -> npt.NDArray[np.int64]:
        """(pixels, features) -> (pixels,) class index."""
        scores = ((features - self.means) / self.stds) @ self.weights + self.bias
        return np.asarray(scores.argmax(axis=1), dtype=np.int64)

    def as_linear(self) -> nn.Linear:
        """The same classifier on features already standardised, as a torch layer."""
        layer = nn.Linear(self.weights.shape[0], self.weights.shape[1])
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(self.weights.T.copy()))
            layer.bias.copy_(torch.from_numpy(self.bias))
        return layer


def fit_linear(
    features: npt.NDArray[np.floating], targets: npt.NDArray[np.int64], classes: int, l2: float = 1e-3
) -> LinearClassifier:
    """Fit on (pixels, features) with (pixels,) class indexes in 0..classes-1."""
    means = features.mean(axis=0).astype(np.float32)
    stds = (features.std(axis=0) + 1e-6).astype(np.float32)
    x = torch.from_numpy(((features - means) / stds).astype(np.float32))
    y = torch.from_numpy(targets)
    counts = np.bincount(targets, minlength=classes).astype(np.float64)
    weight = torch.tensor(
        np.where(counts > 0, counts.sum() / np.maximum(counts, 1) / classes, 0.0), dtype=torch.float32
    )
    layer = nn.Linear(x.shape[1], classes)
    nn.init.zeros_(layer.weight)
    nn.init.zeros_(layer.bias)
    loss_fn = nn.CrossEntropyLoss(weight=weight)
    optimiser = torch.optim.LBFGS(layer.parameters(), lr=1.0, max_iter=500, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = loss_fn(layer(x), y) + l2 * layer.weight.pow(2).sum()
        loss.backward()
        return loss

    optimiser.step(closure)
    return LinearClassifier(layer.weight.detach().numpy().T.copy(), layer.bias.detach().numpy().copy(), means, stds)


def pixel_features(
    cube: npt.NDArray[np.floating], rows: npt.NDArray[np.intp], cols: npt.NDArray[np.intp]
) -> npt.NDArray[np.float32]:
    """The (time, band, y, x) cube's values at the pixels, as (pixels, time * band)."""
    time, band = cube.shape[:2]
    return np.ascontiguousarray(cube[:, :, rows, cols].reshape(time * band, -1).T, dtype=np.float32)


def sample_pixels(
    fields: npt.NDArray[np.integer],
    among: npt.NDArray[np.bool_],
    seed: int,
    per_field: int = PIXELS_PER_FIELD,
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Rows and columns of at most ``per_field`` random pixels of each field in ``among``
    (pixels outside any field count as one field each)."""
    rng = np.random.default_rng(seed)
    rows, cols = np.nonzero(among)
    owner = fields[rows, cols]
    keep = np.zeros(len(rows), dtype=bool)
    for field in np.unique(owner):
        members = np.flatnonzero(owner == field)
        if field == 0 or len(members) <= per_field:
            keep[members] = True
        else:
            keep[rng.choice(members, per_field, replace=False)] = True
    return rows[keep], cols[keep]
