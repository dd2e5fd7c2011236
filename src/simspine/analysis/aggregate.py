"""Aggregation per action and per subject (mean ± sd) with conservative outlier removal.

The paper (Sec. 3.2) says only that "outliers were conservatively removed" before the Fig. 3
violins and Tab. B2, and (Sec. 3.1) that frames with implausible curvature are rejected; it gives
no rule. We use Tukey's *far-out* fences: a value is an outlier when it lies more than 3 × IQR
below the first or above the third quartile of its group (the usual 1.5 × IQR marks "outside"
values; 3 × IQR keeps all but gross ones, hence conservative), applied per group (action or
subject) and per quantity. Groups with fewer than 4 finite values are kept whole.

Per-frame angles (LLA, TKA) are pooled over all frames of a group's sequences (as Tab. B2's
mean ± sd); per-sequence ROM values are aggregated over the group's sequences.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

IQR_FACTOR = 3.0
MIN_FOR_FENCES = 4


def inlier_mask(values: np.ndarray, k: float = IQR_FACTOR) -> np.ndarray:
    """Boolean mask (same shape) of finite values inside Tukey's fences Q1 - k IQR, Q3 + k IQR."""
    v = np.asarray(values, float)
    ok = np.isfinite(v)
    if ok.sum() < MIN_FOR_FENCES:
        return ok
    q1, q3 = np.percentile(v[ok], [25, 75])
    iqr = q3 - q1
    return ok & (v >= q1 - k * iqr) & (v <= q3 + k * iqr)


def mean_sd(values: np.ndarray, remove_outliers: bool = True) -> dict:
    """``{'mean', 'sd', 'n', 'removed'}`` of the finite values (sd with ddof=1; NaN when n < 2)."""
    v = np.asarray(values, float).ravel()
    finite = np.isfinite(v)
    keep = inlier_mask(v) if remove_outliers else finite
    x = v[keep]
    return {"mean": float(x.mean()) if x.size else float("nan"),
            "sd": float(x.std(ddof=1)) if x.size > 1 else float("nan"),
            "n": int(x.size), "removed": int(finite.sum() - keep.sum())}


def group_values(labels: Iterable[str], values: Iterable[np.ndarray]) -> dict[str, np.ndarray]:
    """Concatenate value arrays by label, in first-seen label order."""
    out: dict[str, list] = {}
    for lab, v in zip(labels, values, strict=True):
        out.setdefault(lab, []).append(np.asarray(v, float).ravel())
    return {k: np.concatenate(v) for k, v in out.items()}


def filtered(values: np.ndarray) -> np.ndarray:
    """The finite inliers of ``values`` (what the violins show)."""
    v = np.asarray(values, float).ravel()
    return v[inlier_mask(v)]
