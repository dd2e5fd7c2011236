"""Scoring lifters on a store's test subjects: the Tab. 5 and Tab. 6 figures (paper §4.3).

Both variants are scored on the 15 spine-centric keypoints (``spine15_simspine``; the full-body
lifter's other 22 outputs are left out): P-MPJPE after a per-frame similarity Procrustes alignment
over those 15 points, and root-relative MPJPE (root Hip, which every prediction has at the origin).
Tab. 5: spine P-MPJPE per action and the mean over actions; Tab. 6: lumbar / thoracic / cervical /
spine P-MPJPE and root-relative MPJPE (means over actions). The mean-pose row predicts the
training set's mean root-relative pose (the normaliser's mean, which a lifter decodes from zeros) for
every frame: what a lifter must beat.
"""

from __future__ import annotations

import numpy as np

from simspine.bench.table import format_table
from simspine.lift.data import LiftSamples, variant_keypoints
from simspine.metrics import ROOT, breakdown, regions

REGIONS = ("lumbar", "thoracic", "cervical", "spine")


def score(pred: np.ndarray, samples: LiftSamples) -> dict:
    """``{"p_mpjpe": {action: {region: mm}}, "rr_mpjpe": {...}}`` of predictions (N, K, 3) on the spine 15."""
    spine = variant_keypoints("spine")
    cols = np.array([int(np.flatnonzero(samples.keypoints == k)[0]) for k in spine])
    p, g = pred[:, cols], samples.y3d[:, cols]
    root = int(np.flatnonzero(spine == ROOT)[0])
    acts = np.asarray(samples.action)
    out = {}
    for metric in ("p_mpjpe", "rr_mpjpe"):
        items = [(str(a), p[acts == a], g[acts == a]) for a in dict.fromkeys(acts.tolist())]
        out[metric] = breakdown(items, metric, regions(REGIONS), keypoints=spine, root=root)
    return out


def lifter_mean_pose(lifter, n: int) -> np.ndarray:
    """(n, K, 3) copies of the training set's mean root-relative pose, from a lifter's normaliser
    (what it decodes from a zero output; the root at the origin)."""
    out = np.zeros((n, lifter.K, 3))
    out[:, lifter.index.numpy()] = lifter.mean3d.numpy().astype(float)
    return out


def tables(rows: dict[str, dict], actions: list[str]) -> dict[str, str]:
    """Tab. 5 and Tab. 6 texts; ``rows``: label (e.g. ``"Full-Body | GT"``) → :func:`score` result."""
    h5 = ["Train set | 2D", *actions, "Avg"]
    t5 = [[label, *(r["p_mpjpe"].get(a, {}).get("spine", float("nan")) for a in actions), r["p_mpjpe"]["Mean"]["spine"]]
          for label, r in rows.items()]
    h6 = ["Train set | 2D", *(f"P {c}" for c in REGIONS), *(f"MPJPE {c}" for c in REGIONS)]
    t6 = [[label, *(r["p_mpjpe"]["Mean"][c] for c in REGIONS), *(r["rr_mpjpe"]["Mean"][c] for c in REGIONS)]
          for label, r in rows.items()]
    return {"tab5": "Tab. 5 layout: spine P-MPJPE (mm) per action\n" + format_table(h5, t5, ".2f"),
            "tab6": "Tab. 6 layout: P-MPJPE and root-relative MPJPE (mm) per spine region, mean over actions\n"
                    + format_table(h6, t6, ".2f")}
