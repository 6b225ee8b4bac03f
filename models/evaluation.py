"""How a prediction agrees with the truth: overall accuracy, per-class scores, confusion matrix."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TypedDict

import numpy as np
import numpy.typing as npt


class ClassScores(TypedDict):
    precision: float
    recall: float
    f1: float
    support_px: int  # pixels of the class in the truth


class ConfusionMatrix(TypedDict):
    classes: list[str]
    rows_truth_columns_predicted: list[list[int]]  # pixel counts


class Evaluation(TypedDict):
    """How a prediction agrees with the truth; ``per_class`` holds the classes present in the truth."""

    overall_accuracy: float
    macro_f1: float  # over the classes present in the truth; NaN when there are none
    per_class: dict[str, ClassScores]
    confusion_matrix: ConfusionMatrix


def evaluate(
    truth: npt.NDArray[np.integer],
    predicted: npt.NDArray[np.integer],
    class_ids: Sequence[int],
    names: Sequence[str],
) -> Evaluation:
    """Overall accuracy, macro F1 over the classes present in ``truth``, per-class
    precision/recall/F1 and the confusion matrix (rows: truth, columns: prediction)."""
    index = {c: i for i, c in enumerate(class_ids)}
    matrix = np.zeros((len(class_ids), len(class_ids)), dtype=np.int64)
    np.add.at(matrix, ([index[t] for t in truth], [index[p] for p in predicted]), 1)
    per_class: dict[str, ClassScores] = {}
    for i, name in enumerate(names):
        support = int(matrix[i].sum())
        if support == 0:
            continue
        precision = matrix[i, i] / max(matrix[:, i].sum(), 1)
        recall = matrix[i, i] / support
        f1 = 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)
        per_class[name] = {
            "precision": round(float(precision), 4),
            "recall": round(float(recall), 4),
            "f1": round(float(f1), 4),
            "support_px": support,
        }
    return {
        "overall_accuracy": round(float(np.trace(matrix) / max(matrix.sum(), 1)), 4),
        "macro_f1": round(float(np.mean([c["f1"] for c in per_class.values()])), 4) if per_class else math.nan,
        "per_class": per_class,
        "confusion_matrix": {"classes": list(names), "rows_truth_columns_predicted": matrix.tolist()},
    }
