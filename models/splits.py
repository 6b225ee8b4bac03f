"""Splitting labelled fields into training and validation, by field and by spatial block.

Pixels of one field are strongly correlated, and so are neighbouring fields (same
farmer, soil, sowing week): a pixel split reports how well a model memorises
fields, and a random field split still flatters it. Fields are therefore held out
whole, in square blocks of the grid (Roberts et al., "Cross-validation strategies
for data with temporal, spatial, hierarchical, or phylogenetic structure",
Ecography 40:913-929, 2017), and no class ever loses its last training field.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import numpy.typing as npt

BLOCK_PX = 50  # 500 m at 10 m: a few fields wide in European farmland


def field_classes(
    labels: npt.NDArray[np.integer], fields: npt.NDArray[np.integer], among: npt.NDArray[np.bool_]
) -> dict[int, int]:
    """Field id -> its class (the majority label of its pixels in ``among``)."""
    chosen = among & (fields > 0) & (labels > 0)
    pairs = Counter(zip(fields[chosen].tolist(), labels[chosen].tolist(), strict=True))
    classes: dict[int, tuple[int, int]] = {}
    for (field, label), count in pairs.items():
        if field not in classes or count > classes[field][1]:
            classes[field] = (label, count)
    return {field: label for field, (label, _) in classes.items()}


def split_fields(
    labels: npt.NDArray[np.integer],
    fields: npt.NDArray[np.integer],
    fraction: float,
    seed: int,
    among: npt.NDArray[np.bool_] | None = None,
    block_px: int = BLOCK_PX,
) -> npt.NDArray[np.bool_]:
    """A (y, x) mask of held-out pixels: whole fields of ``among`` (default: every labelled
    pixel), chosen block by block in a seeded order until about ``fraction`` of each class's
    fields are held out. A block is skipped when it would take a class's last training field;
    when blocks are too coarse for that, single fields are held out instead."""
    among = (labels > 0) if among is None else among
    classes = field_classes(labels, fields, among)
    if not classes:
        return np.zeros(labels.shape, dtype=bool)
    centres = _field_centres(fields, among, list(classes))
    held = _choose(
        classes, {f: (int(r) // block_px, int(c) // block_px) for f, (r, c) in centres.items()}, fraction, seed
    )
    if not _enough(classes, held, fraction):
        held = _choose(classes, {f: (f, 0) for f in classes}, fraction, seed)
    return np.isin(fields, sorted(held)) & among & (labels > 0)


def _field_centres(
    fields: npt.NDArray[np.integer], among: npt.NDArray[np.bool_], ids: list[int]
) -> dict[int, tuple[float, float]]:
    rows, cols = np.nonzero(among & np.isin(fields, ids))
    owner = fields[rows, cols]
    return {int(f): (float(rows[owner == f].mean()), float(cols[owner == f].mean())) for f in np.unique(owner)}


def _choose(classes: dict[int, int], block_of: dict[int, tuple[int, int]], fraction: float, seed: int) -> set[int]:
    totals = Counter(classes.values())
    wanted = {c: max(1, round(n * fraction)) if n > 1 else 0 for c, n in totals.items()}
    blocks: dict[tuple[int, int], list[int]] = {}
    for field, block in sorted(block_of.items()):
        blocks.setdefault(block, []).append(field)
    order = sorted(blocks)
    rng = np.random.default_rng(seed)
    held: set[int] = set()
    taken: Counter[int] = Counter()
    for index in rng.permutation(len(order)):
        members = blocks[order[int(index)]]
        adding = Counter(classes[f] for f in members)
        useful = any(taken[c] < wanted[c] for c in adding)
        keeps_one = all(taken[c] + n < totals[c] for c, n in adding.items())
        within = all(taken[c] + n <= max(wanted[c], 1) * 2 for c, n in adding.items())
        if useful and keeps_one and within:
            held.update(members)
            taken.update(adding)
    return held


def _enough(classes: dict[int, int], held: set[int], fraction: float) -> bool:
    totals = Counter(classes.values())
    taken = Counter(classes[f] for f in held)
    return all(taken[c] >= 1 for c, n in totals.items() if n > 1) and len(held) >= fraction * len(classes) / 2
