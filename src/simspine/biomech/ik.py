"""Inverse kinematics: marker trajectories -> model coordinates per frame.

Objective per frame (OpenSim's IK objective)::

    min_q  sum_m w_m c_m(t) |p_m(q) - x_m(t)|^2  +  sum_k w_k (q_k - v_k)^2

subject to the model's coupler constraints. ``w_m`` are per-marker weights (defaults: SpineTrack-37
IK weights from ``spinetrack37.json``), ``c_m(t)`` per-frame confidences from the
:class:`~simspine.trajectories.Trajectories`; markers that are NaN in a frame are dropped from
that frame. ``w_k, v_k`` are coordinate tasks: by default (:func:`default_coordinate_tasks`) the
ones of ``spinetrack37_info().coordinate_tasks`` (L5_S1_Flex_Ext towards 0) with their weight
times :data:`COORDINATE_TASK_SCALE` = 0.01. Why: the cost mixes m^2 and rad^2, and a weight of 1
on a 1 degree deviation costs as much as a weight-1 marker 17 mm off. Measured on the round trip
(subject 1.60 m, 40 frames, exact markers, scaled from them): task weight 1 -> L5_S1 flexion RMS
error 2.1 deg, marker RMS 9.5 mm; 0.1 (Pose2Sim's setup) -> 0.32 deg, 1.45 mm; 0.01 -> 0.03 deg,
0.19 mm; 0 -> 0.001 deg, 0.11 mm. 0.01 keeps a weak prior towards neutral lumbar flexion (it
matters when spine markers are missing) without biasing it when they are present.

Two interchangeable backends implement :class:`IKBackend`:

* :class:`OpenSimSolverIK` -- OpenSim's ``InverseKinematicsSolver`` run in-process: the markers
  go in as an in-memory ``TimeSeriesTableVec3`` (no TRC round trip), weights are updated per frame,
  each frame is warm-started from the previous one (``track``). ``accuracy`` is OpenSim's.
* :class:`JacobianIK` (default) -- damped Gauss-Newton on the same objective, using OpenSim's
  exact station Jacobians (``SimbodyMatterSubsystem.calcStationJacobian``) on the model's
  independent coordinates; the linear coupler constraints are eliminated exactly (dependent
  coordinates are linear functions of independent ones), warm-started from the previous frame.
  ``accuracy`` is the convergence threshold on the step (rad or m). It converges to the least
  squares optimum (sub-micrometre on exact data) in a few iterations per frame.

:class:`JacobianIK` replaces the squared marker distance by a robust loss (on by default;
``robust=False`` for plain least squares): e^2 up to a threshold delta per frame (5x the frame's
robust residual scale from the median marker distance, never below 1 cm), a logarithmic tail
beyond (``"log"``; ``"huber"`` also available), solved by IRLS inside the Gauss-Newton
iterations (see :data:`ROBUST_K`). Markers the model cannot follow -- an arm beyond the model's
shoulder range, a mislabelled or swapped marker -- then no longer drag the lumbar spine (L5_S1
flexion RMSE 2.3 -> 0.08 deg and 1.24 -> 0.03 deg on the generated trials of
``tests/test_ik_robust.py``); markers fitted within 1 cm give exactly the least-squares result.
The result reports each marker's robust weight per frame and the share of frames it was
down-weighted (:meth:`IKResult.downweighted_share`).

:class:`JacobianIK` optionally adds the paper's temporal smoothness term (``smoothness`` > 0):
after the frame-by-frame pass, Gauss-Seidel sweeps over the frames minimise the marker cost plus
``smoothness * |z_t - (z_t-1 + z_t+1)/2|^2`` (a zero-phase, discrete acceleration penalty). On the
demo's triangulated markers (200 frames at 50 Hz) a weight of 0.1 lowered the keypoint error
against the truth from 11.38 to 10.68 mm, neck rotation RMSE from 5.1 to 3.9 deg and L5_S1
flexion RMSE from 0.71 to 0.56 deg; on exact markers it costs ~0.15 mm of marker RMS. The
pipeline uses 0.1 at 50 Hz, scaled with the frame rate (:func:`smoothness_for_rate`).

Both return an :class:`IKResult` (all model coordinates per frame, per-marker errors, per-frame
RMS and max error; :func:`write_ik_errors` / :func:`read_ik_errors` store them per marker and
frame as CSV). :func:`solve_trials` runs many trials in a process pool and skips trials whose
``.mot`` a previous (interrupted) run already wrote from the same markers, model and options
(:func:`job_fingerprint` in the header). A batched (PyTorch) backend can implement the same
protocol.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import time as _time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from simspine.biomech.model import coordinate_info, coupler_constraints, load_model
from simspine.errors import InputError
from simspine.skeletons import spinetrack37_info
from simspine.trajectories import Trajectories


@dataclass
class IKResult:
    """IK output for one trial.

    Attributes:
        time: (T,) s.
        coordinate_names: all C model coordinates, model order.
        values: (T, C) radians for rotations, metres for translations.
        rotational: (C,) bool, which coordinates are rotations.
        marker_names: the M markers that took part (model and data both have them).
        marker_errors: (T, M) distance model marker - data marker, metres; NaN where dropped.
        rms: (T,) root mean square of the (unweighted) errors of the markers used, metres.
        max: (T,) largest error of the markers used, metres.
        n_markers: (T,) number of markers used.
        backend: which backend solved it; ``seconds``: solve wall time (excluding model load).
        robust_weights: (T, M) the robust loss's weight of each marker at the solution (1 = full
            least-squares weight, below 1 = down-weighted, NaN where the marker was not used);
            None when the backend has no robust loss (or it was off).
        robust_delta: (T,) the Huber threshold of each frame, metres (None likewise).
    """

    time: np.ndarray
    coordinate_names: list[str]
    values: np.ndarray
    rotational: np.ndarray
    marker_names: list[str]
    marker_errors: np.ndarray
    rms: np.ndarray
    max: np.ndarray
    n_markers: np.ndarray
    backend: str = ""
    seconds: float = float("nan")
    meta: dict = field(default_factory=dict)
    robust_weights: np.ndarray | None = None
    robust_delta: np.ndarray | None = None

    def downweighted_share(self) -> dict[str, float]:
        """Per marker: share of the frames in which it was used that the robust loss down-weighted
        it (its residual was above the frame's threshold); empty without a robust loss."""
        if self.robust_weights is None or not self.marker_names:
            return {}
        used = np.isfinite(self.robust_weights)
        down = used & (self.robust_weights < 1.0)
        n = np.maximum(used.sum(axis=0), 1)
        return {m: float(d) for m, d in zip(self.marker_names, down.sum(axis=0) / n, strict=True)}

    def column(self, name: str) -> np.ndarray:
        """(T,) values of one coordinate (rad / m)."""
        if name not in self.coordinate_names:
            raise InputError(None, f"no coordinate {name!r} in the IK result")
        return self.values[:, self.coordinate_names.index(name)]

    @property
    def fps(self) -> float:
        return len(self.time) / self.seconds if self.seconds > 0 else float("nan")

    def values_for_mot(self) -> np.ndarray:
        """(T, C) with rotations in degrees (the ``.mot`` convention)."""
        out = self.values.copy()
        out[:, self.rotational] = np.rad2deg(out[:, self.rotational])
        return out


def write_ik_mot(result: IKResult, path: str | os.PathLike, fingerprint: str | None = None) -> Path:
    """Write the coordinates as an OpenSim ``.mot`` (degrees for rotations), atomically.
    ``fingerprint`` (:func:`job_fingerprint`) goes into the header as ``simspine_input=``."""
    from simspine.io.mot import write_mot

    meta = {"simspine_input": fingerprint} if fingerprint else None
    return write_mot(path, result.time, result.coordinate_names, result.values_for_mot(), in_degrees=True,
                     name="simspine_ik", frame="opensim-ground (Y up)", meta=meta,
                     comment=f"simspine inverse kinematics ({result.backend})\n"
                             "rotations in degrees, translations in metres")


def write_ik_errors(result: IKResult, path: str | os.PathLike) -> Path:
    """Per-frame marker errors as CSV, atomically: ``time_s``, ``rms_m``, ``max_m``,
    ``n_markers``, ``downweighted`` (the markers the robust loss down-weighted in that frame,
    ``;``-separated) and one column ``<marker>_m`` per marker (distance model marker - data
    marker, metres; empty where the marker was missing or not used). Comment lines (``#``) give
    the units, the frame and ``key=value`` entries (backend, robust loss) for
    :func:`read_ik_errors`."""
    from simspine.fileio import write_text_atomic

    buf = io.StringIO()
    robust = result.meta.get("robust") or {}
    buf.write("# simspine IK marker errors per frame: time in seconds, errors in metres (distance between "
              "model and data marker); frame opensim-ground (Y up)\n")
    buf.write(f"# backend={result.backend}\n")
    if robust:
        buf.write(f"# robust_loss={robust.get('loss')}; k={robust.get('k')}; min_delta_m={robust.get('min_delta_m')}\n")
    buf.write(",".join(["time_s", "rms_m", "max_m", "n_markers", "downweighted"]
                       + [f"{m}_m" for m in result.marker_names]) + "\n")
    rw = result.robust_weights
    for t in range(len(result.time)):
        down = ";".join(m for j, m in enumerate(result.marker_names) if rw is not None and rw[t, j] < 1.0)
        errs = ["" if not np.isfinite(v) else f"{v:.6g}" for v in result.marker_errors[t]]
        buf.write(",".join([f"{result.time[t]:.6f}", f"{result.rms[t]:.6g}", f"{result.max[t]:.6g}",
                            str(int(result.n_markers[t])), down] + errs) + "\n")
    return write_text_atomic(path, buf.getvalue())


def read_ik_errors(path: str | os.PathLike) -> dict:
    """Read :func:`write_ik_errors`'s CSV back: ``time``, ``rms``, ``max``, ``n_markers`` (T,),
    ``marker_names``, ``marker_errors`` (T, M) metres (NaN where not used), ``downweighted``
    (T, M) bool, and the comment entries (``backend``, ``robust_loss``, ...). Files written
    before per-marker columns existed (``time,rms_m,max_m,n_markers``) read with M = 0."""
    lines = Path(path).read_text().splitlines()
    meta: dict = {}
    rows = []
    for ln in lines:
        if ln.startswith("#"):
            for part in ln[1:].split(";"):
                if "=" in part and ":" not in part.split("=")[0]:
                    k, v = part.split("=", 1)
                    meta[k.strip()] = v.strip()
        elif ln.strip():
            rows.append(ln.split(","))
    if not rows:
        raise InputError(path, "no header row in the IK errors file")
    head, body = rows[0], rows[1:]
    col = {h: i for i, h in enumerate(head)}
    tcol = col.get("time_s", col.get("time"))
    if tcol is None or "rms_m" not in col:
        raise InputError(path, "not an IK errors file (no time_s/rms_m columns)")
    markers = [h for h in head[col["downweighted"] + 1:]] if "downweighted" in col else []

    def num(v):
        return float(v) if v.strip() else np.nan

    T = len(body)
    out = dict(meta)
    out["time"] = np.array([num(r[tcol]) for r in body])
    out["rms"] = np.array([num(r[col["rms_m"]]) for r in body])
    out["max"] = np.array([num(r[col["max_m"]]) for r in body]) if "max_m" in col else np.full(T, np.nan)
    out["n_markers"] = np.array([int(num(r[col["n_markers"]])) for r in body]) if "n_markers" in col else np.zeros(T, int)
    out["marker_names"] = [m[:-2] if m.endswith("_m") else m for m in markers]
    first = col["downweighted"] + 1 if markers else len(head)
    out["marker_errors"] = np.array([[num(v) for v in r[first:first + len(markers)]] for r in body]).reshape(T, len(markers))
    down = [set(r[col["downweighted"]].split(";")) if markers else set() for r in body]
    out["downweighted"] = np.array([[m in d for m in out["marker_names"]] for d in down], dtype=bool).reshape(T, len(markers))
    return out


def error_figures(marker_names, marker_errors, rms, mx, n_markers, downweighted=None) -> dict:
    """Summary figures of IK marker errors (what ``summary.json``'s ``ik`` entry holds), from an
    :class:`IKResult`'s arrays or :func:`read_ik_errors`'s: mean/max RMS, largest error, markers
    used, RMS per marker (m) and, with ``downweighted`` (T, M) bool, the share of the frames in
    which each marker was used that the robust loss down-weighted it."""
    err = np.asarray(marker_errors, float)
    with np.errstate(invalid="ignore"):
        per = {m: float(np.sqrt(np.nanmean(err[:, j] ** 2))) if np.isfinite(err[:, j]).any() else None
               for j, m in enumerate(marker_names)}
    out = {"marker_rms_mean_m": float(np.nanmean(rms)) if np.isfinite(rms).any() else None,
           "marker_rms_max_m": float(np.nanmax(rms)) if np.isfinite(rms).any() else None,
           "marker_error_max_m": float(np.nanmax(mx)) if np.isfinite(mx).any() else None,
           "markers_used_mean": float(np.mean(n_markers)),
           "marker_rms_per_marker_m": per}
    if downweighted is not None:
        used = np.isfinite(err)
        n = np.maximum(used.sum(axis=0), 1)
        out["downweighted_share"] = {m: round(float(s), 4) for m, s in zip(
            marker_names, (np.asarray(downweighted) & used).sum(axis=0) / n, strict=True)}
    return out


class IKBackend(Protocol):
    """What an IK engine provides. ``model`` is an ``opensim.Model`` or a model path."""

    name: str

    def solve(self, model, markers: Trajectories, weights: dict[str, float] | None = None,
              coordinate_tasks: Sequence[dict] | None = None, progress: bool = False) -> IKResult: ...


#: Multiplier on the weights of spinetrack37.json's coordinate tasks (see the module docstring).
COORDINATE_TASK_SCALE = 0.01
RELATIVE_DECREASE = 1e-6
#: Relative cost decrease at which a frame with noise-level residual (above ~0.2 mm per marker)
#: counts as converged. Measured on the demo's triangulated markers (200 frames, 17 mm marker
#: RMS): 1e-4 -> 37 frames/s, keypoints 11.25 mm from the truth; 1e-3 -> 100 frames/s, 11.37 mm;
#: 1e-2 -> 245 frames/s, 11.48 mm. Exact markers always use RELATIVE_DECREASE.
NOISY_RELATIVE_DECREASE = 1e-3
#: Levenberg-Marquardt damping. Marquardt's scaling (the damping times H's diagonal) with a floor
#: of MARQUARDT_FLOOR times the largest diagonal entry: weakly observed coordinates (arm rotation
#: with a straight elbow, forearm pronation) have a tiny diagonal, so their steps were barely
#: damped, overshot, and half of all trial steps on 10 mm noise raised the cost. Warm starts begin
#: at WARM_DAMPING (was 1e-6: almost undamped, 3-4 rejected steps per frame before one fitted);
#: after a step accepted without raising the damping it falls by the gain ratio (Nielsen: by up to
#: 3x where the quadratic model predicted the decrease well, not at all where it did not), not
#: by 10x, which made every other step fail. Measured with the batched solver on 16 trials x 150
#: frames of 10 mm noise: 20 -> 7 trial steps per frame, marker RMS 13.96 -> 13.43 mm (old runs
#: stopped on a slow oscillation short of the minimum, or left a limb in another basin).
MARQUARDT_FLOOR = 1e-3
WARM_DAMPING = 1e-3


def marquardt_diagonal(diag: np.ndarray) -> np.ndarray:
    """Damping scale per coordinate from the Gauss-Newton matrix's diagonal (last axis): the
    diagonal, at least MARQUARDT_FLOOR times its largest entry (and 1e-12)."""
    return np.maximum(np.maximum(diag, MARQUARDT_FLOOR * np.max(diag, axis=-1, keepdims=True)), 1e-12)


def damping_factor(decrease, predicted):
    """Factor on the damping after an accepted step (Nielsen's rule): 1 - (2 rho - 1)^3 within
    [1/3, 1], rho = actual / predicted decrease of the cost."""
    # rho above 1 gives the smallest factor anyway (and no overflow in the cube).
    rho = np.minimum(np.asarray(decrease) / np.maximum(np.asarray(predicted), 1e-300), 2.0)
    return np.clip(1.0 - (2.0 * rho - 1.0) ** 3, 1.0 / 3.0, 1.0)


#: Robust loss on marker residuals (JacobianIK, on by default). Each marker's distance e to its
#: data point costs rho(e) = e^2 up to the frame's threshold delta (least squares) and grows
#: slower beyond, so a marker the model cannot follow (an arm past the model's shoulder range, a
#: mislabelled marker) stops dragging the other coordinates -- the lumbar spine first -- towards
#: it. Solved by iteratively reweighted least squares inside the Gauss-Newton iterations (the
#: marker's weight times rho'(e) / 2e). delta = ROBUST_K x the frame's robust residual scale,
#: sigma = median(e) / ROBUST_CHI3_MEDIAN (the per-axis noise of a 3D Gaussian residual with that
#: median distance; the median ignores up to half of the markers being wrong), recomputed every
#: iteration, never below ROBUST_MIN_DELTA. Losses (ROBUST_LOSSES): "log" (default, rho =
#: delta^2 (1 + 2 ln(e / delta)) beyond delta: the pull falls as 1/e) and "huber" (2 delta e -
#: delta^2: the pull stays at its value at delta). Measured (tests/test_ik_robust.py, exact markers
#: of a 60-frame trial with the right arm flexed to 150 deg, range +-90): L5_S1 flexion RMSE 2.3
#: deg with least squares, 1.99 with Huber, 0.08 with "log" (phases: see solve_frame); Spine_03 15 cm off for 50 of 100
#: frames: 1.24, 0.11, 0.03 deg.
#: k = 5: on noise alone (10 mm per axis, 200 frames, bench ik's trial) k = 3 down-weighted the
#: low-weight face, spine and clavicle markers in 10-14% of frames (they fit less closely than the
#: median marker), k = 4 any marker in up to 5-6%, k = 5 none. Measured there with the phases of
#: solve_frame: least squares 55 frames/s, keypoints 9.13 mm from the truth, largest marker error
#: 66 mm; k = 4: 52 frames/s, 9.05 mm, 51 mm; k = 5: 53 frames/s, 9.02 mm, 44 mm. Gross errors of
#: several cm stay beyond 5 sigma (delta ~4 cm at 10 mm noise, the 1 cm floor on good data).
ROBUST_K = 5.0
#: Median of the chi distribution with 3 degrees of freedom: median |e| = 1.538 sigma.
ROBUST_CHI3_MEDIAN = 1.5382
#: Floor on the robust threshold delta, metres. Why 1 cm: residuals below it are marker placement error,
#: soft-tissue motion or noise, which least squares should fit (they carry the information), not
#: labelling errors or motion outside the model's ranges (several cm). Without a floor, exact or
#: mm-accurate markers would have a residual scale of ~0.1 mm and every marker would be
#: "down-weighted" (L1 fitting), changing clean-data results; with it, markers fitted within 1 cm
#: give exactly the least-squares solution.
ROBUST_MIN_DELTA = 0.01


def robust_threshold(e: np.ndarray, used: np.ndarray, k: float = ROBUST_K,
                min_delta: float = ROBUST_MIN_DELTA) -> float:
    """Robust threshold delta (m) from the distances ``e`` of the ``used`` markers of one frame."""
    if not used.any():
        return float("inf")
    return max(min_delta, k * float(np.median(e[used])) / ROBUST_CHI3_MEDIAN)


def huber_rho(e: np.ndarray, delta: float) -> np.ndarray:
    """Huber loss scaled so that it equals e^2 below ``delta`` (the least-squares cost)."""
    return np.where(e <= delta, e * e, delta * (2.0 * e - delta))


def huber_weight(e: np.ndarray, delta: float) -> np.ndarray:
    """IRLS weight of the Huber loss: 1 below ``delta``, delta / e beyond."""
    d = np.minimum(delta, 1e300)  # delta = inf: least squares, weight 1
    return d / np.maximum(e, d)


def log_rho(e: np.ndarray, delta: float) -> np.ndarray:
    """Quadratic core, logarithmic tail: e^2 below ``delta``, delta^2 (1 + 2 ln(e / delta)) beyond
    (continuous with its slope at delta; concave in e^2, so IRLS decreases it monotonically).
    Its pull on the model (slope 2 delta^2 / e) falls as the error grows: a marker 15 cm off
    pulls 15x less than under Huber, whose pull stays at 2 delta."""
    d = np.minimum(delta, 1e150)  # delta = inf: least squares
    return np.where(e <= d, e * e, d * d * (1.0 + 2.0 * np.log(np.maximum(e, d) / d)))


def log_weight(e: np.ndarray, delta: float) -> np.ndarray:
    """IRLS weight of :func:`log_rho`: 1 below ``delta``, (delta / e)^2 beyond."""
    d = np.minimum(delta, 1e300)
    return (d / np.maximum(e, d)) ** 2


#: Robust losses of JacobianIK by name: (rho, IRLS weight).
ROBUST_LOSSES = {"huber": (huber_rho, huber_weight), "log": (log_rho, log_weight)}
ROBUST_LOSS = "log"


def default_coordinate_tasks() -> list[dict]:
    """SpineTrack-37's coordinate tasks with weights times :data:`COORDINATE_TASK_SCALE`."""
    return [dict(t, weight=float(t.get("weight", 1.0)) * COORDINATE_TASK_SCALE)
            for t in spinetrack37_info().coordinate_tasks]


# ----------------------------------------------------------------------------------------------
# shared preparation


@dataclass
class _Prepared:
    model: object
    state: object
    names: list[str]  # markers used (model order of the data)
    x: np.ndarray  # (T, M, 3)
    w: np.ndarray  # (T, M) weight * confidence, 0 where missing
    tasks: list[tuple[str, float, float]]


def _as_model(model):
    if isinstance(model, (str, os.PathLike)):
        return load_model(model)
    return model


def _prepare(model, markers: Trajectories, weights, coordinate_tasks, source=None) -> _Prepared:
    model = _as_model(model)
    state = model.initSystem()
    ms = model.getMarkerSet()
    model_markers = [ms.get(i).getName() for i in range(ms.getSize())]
    names = [n for n in markers.names if n in model_markers]
    if not names:
        raise InputError(source, "no marker of the data is in the model's marker set "
                                 f"(model markers: {', '.join(model_markers)})")
    if markers.n_frames == 0:
        raise InputError(source, "no frames")
    idx = [markers.names.index(n) for n in names]
    x = markers.xyz[:, idx]
    conf = np.nan_to_num(markers.conf[:, idx], nan=0.0)
    if np.isinf(x).any():
        bad = sorted({names[j] for j in np.nonzero(np.isinf(x).any(axis=(0, 2)))[0]})
        raise InputError(source, f"infinite marker coordinates in: {', '.join(bad)}")
    if (conf < 0).any():
        raise InputError(source, "negative marker confidences")
    weights = spinetrack37_info().ik_weights if weights is None else weights
    base = np.array([float(weights.get(n, 1.0)) for n in names])
    present = np.isfinite(x).all(axis=2)
    w = np.where(present, base[None, :] * conf, 0.0)
    tasks = []
    coords = {c.name for c in coordinate_info(model)}
    for task in (default_coordinate_tasks() if coordinate_tasks is None else coordinate_tasks):
        if task["coordinate"] not in coords:
            raise InputError(source, f"coordinate task on unknown coordinate {task['coordinate']!r}")
        if float(task.get("weight", 1.0)) > 0:
            tasks.append((task["coordinate"], float(task.get("value", 0.0)), float(task.get("weight", 1.0))))
    return _Prepared(model, state, names, x, w, tasks)


def _result(prep: _Prepared, time, values, errors, backend, seconds) -> IKResult:
    info = coordinate_info(prep.model)
    used = prep.w > 0
    err = np.where(used, errors, np.nan)
    with np.errstate(invalid="ignore"):
        n = used.sum(axis=1)
        rms = np.sqrt(np.nansum(err ** 2, axis=1) / np.maximum(n, 1))
        mx = np.nanmax(np.where(used, err, -np.inf), axis=1)
    rms[n == 0] = np.nan
    mx[n == 0] = np.nan
    return IKResult(np.asarray(time, float), [c.name for c in info], values,
                    np.array([c.rotational for c in info]), list(prep.names), err, rms, mx, n,
                    backend, seconds)


def _progress(iterable, enabled: bool, desc: str):
    if not enabled:
        return iterable
    from tqdm import tqdm

    return tqdm(iterable, desc=desc, unit="frame")


# ----------------------------------------------------------------------------------------------
# OpenSim's InverseKinematicsSolver, in-process


class OpenSimSolverIK:
    """OpenSim's ``InverseKinematicsSolver`` with in-memory markers, warm-started per frame."""

    name = "opensim-solver"

    def __init__(self, accuracy: float = 1e-5, constraint_weight: float = float("inf")):
        self.accuracy = accuracy
        self.constraint_weight = constraint_weight

    def solve(self, model, markers: Trajectories, weights=None, coordinate_tasks=None, progress=False) -> IKResult:
        import opensim as osim

        prep = _prepare(model, markers, weights, coordinate_tasks)
        model, names, T = prep.model, prep.names, markers.n_frames
        table = osim.TimeSeriesTableVec3()
        table.setColumnLabels(names)
        for t in range(T):
            row = osim.RowVectorVec3(len(names))
            for j in range(len(names)):
                # OpenSim drops NaN markers of a frame itself; we also zero their weight.
                row[j] = osim.Vec3(*prep.x[t, j])
            table.appendRow(float(markers.time[t]), row)
        table.addTableMetaDataString("Units", "m")
        wset = osim.SetMarkerWeights()
        for j, n in enumerate(names):
            wset.cloneAndAppend(osim.MarkerWeight(n, float(prep.w[:, j].max(initial=0.0)) or 1.0))
        mref = osim.MarkersReference(table, wset)
        crefs = osim.SimTKArrayCoordinateReference()
        for cname, value, weight in prep.tasks:
            cr = osim.CoordinateReference(cname, osim.Constant(value))
            cr.setWeight(weight)
            crefs.push_back(cr)
        solver = osim.InverseKinematicsSolver(model, mref, crefs, self.constraint_weight)
        solver.setAccuracy(self.accuracy)
        state = prep.state
        cs = model.getCoordinateSet()
        coords = [cs.get(i) for i in range(cs.getSize())]
        values = np.empty((T, len(coords)))
        errors = np.full((T, len(names)), np.nan)
        t0 = _time.perf_counter()
        for t in _progress(range(T), progress, "IK (opensim solver)"):
            state.setTime(float(markers.time[t]))
            if t == 0:
                # The solver's assembler exists only after assemble(); updating weights before
                # that crashes OpenSim. Assemble with the marker set's weights, then track.
                solver.assemble(state)
            for j, n in enumerate(names):
                solver.updateMarkerWeight(n, float(prep.w[t, j]))
            # A change in which markers are present changes the assembly problem: track() then
            # refuses to run, so assemble() (also warm-started from the current pose).
            if t > 0 and np.array_equal(prep.w[t] > 0, prep.w[t - 1] > 0):
                solver.track(state)
            else:
                solver.assemble(state)
            e = osim.SimTKArrayDouble()
            solver.computeCurrentMarkerErrors(e)
            for k in range(e.size()):
                errors[t, names.index(solver.getMarkerNameForIndex(k))] = e.getElt(k)
            values[t] = [c.getValue(state) for c in coords]
        seconds = _time.perf_counter() - t0
        return _result(prep, markers.time, values, errors, self.name, seconds)


# ----------------------------------------------------------------------------------------------
# Gauss-Newton on OpenSim's station Jacobians


class _Kinematic:
    """q-space bookkeeping for :class:`JacobianIK`: q = base + C z over the free coordinates z."""

    def __init__(self, model, state):
        import opensim as osim

        self.osim = osim
        self.model, self.state = model, state
        self.matter = model.getMatterSubsystem()
        if state.getNQ() != state.getNU():
            raise InputError(None, "model has quaternion joints; JacobianIK needs q' = u")
        cs = model.getCoordinateSet()
        self.coords = [cs.get(i) for i in range(cs.getSize())]
        info = coordinate_info(model)
        self.names = [c.name for c in info]
        q0 = state.getQ().to_numpy().copy()
        # Global q index of each coordinate, found by perturbation (robust to joint types).
        self.qidx = np.empty(len(self.coords), dtype=int)
        for i, c in enumerate(self.coords):
            v, locked = c.getValue(state), c.getLocked(state)
            c.setLocked(state, False)
            c.setValue(state, v + 0.125, False)
            d = np.nonzero(np.abs(state.getQ().to_numpy() - q0) > 1e-9)[0]
            c.setValue(state, v, False)
            c.setLocked(state, locked)
            if len(d) != 1:
                raise InputError(None, f"cannot map coordinate {c.getName()} to one generalized coordinate")
            self.qidx[i] = d[0]
        state.setQ(osim.Vector.createFromMat(q0))
        self.free = [i for i, c in enumerate(info) if not c.dependent and not c.locked]
        self.free_names = [self.names[i] for i in self.free]
        # Bounds: the root joint (pelvis in ground: any heading, any lab position) is unbounded;
        # every other coordinate stays within its model range. (OpenSim's IK bounds only
        # *clamped* coordinates; leaving the shoulders unbounded, or even within one turn, lets
        # their three Euler angles wander into equivalent or wrong configurations, so the model
        # ranges -- which the model's authors chose for these joints -- are used for all.)
        lo, hi = [], []
        for i in self.free:
            c, co = info[i], self.coords[i]
            root = co.getJoint().getParentFrame().findBaseFrame().getName() == "ground"
            lo.append(-np.inf if root else c.range[0])
            hi.append(np.inf if root else c.range[1])
        self.lo, self.hi = np.array(lo), np.array(hi)
        nq = len(q0)
        self.C = np.zeros((nq, len(self.free)))
        for k, i in enumerate(self.free):
            self.C[self.qidx[i], k] = 1.0
        self.dep: list[tuple[int, int, float, float]] = []  # (q dep, z index of independent, a, b)
        for cp in coupler_constraints(model):
            # Only linear couplers on one free coordinate can be eliminated as q = base + C z.
            fn = osim.LinearFunction.safeDownCast(cp.function)
            if fn is None or len(cp.independent) != 1 or cp.independent[0] not in self.free_names:
                raise InputError(None, f"constraint {cp.name} is not a linear coupler on a free coordinate")
            a, b = fn.getSlope() * cp.scale, fn.getIntercept() * cp.scale
            qd = self.qidx[self.names.index(cp.dependent)]
            zk = self.free_names.index(cp.independent[0])
            self.C[qd, zk] = a
            self.dep.append((qd, zk, a, b))
        other = [i for i, c in enumerate(info) if c.dependent and self.qidx[i] not in {d[0] for d in self.dep}]
        if other:
            raise InputError(None, "dependent coordinates without a linear coupler: "
                                   + ", ".join(self.names[i] for i in other))
        self.base = q0.copy()
        self.base[[self.qidx[i] for i in self.free]] = 0.0
        for qd, _, _, b in self.dep:
            self.base[qd] = b

    def z_from_state(self) -> np.ndarray:
        q = self.state.getQ().to_numpy()
        return q[[self.qidx[i] for i in self.free]].copy()

    def set_z(self, z: np.ndarray) -> np.ndarray:
        q = self.base + self.C @ z
        self.state.setQ(self.osim.Vector.createFromMat(q))
        self.model.realizePosition(self.state)
        return q


class JacobianIK:
    """Damped Gauss-Newton IK on OpenSim station Jacobians (see the module docstring)."""

    name = "jacobian-gn"

    def __init__(self, accuracy: float = 1e-6, max_iterations: int = 50, first_frame_iterations: int = 200,
                 restarts: int = 8, smoothness: float = 0.0, smoothing_sweeps: int = 3,
                 robust: bool | str = True, robust_k: float = ROBUST_K,
                 robust_min_delta: float = ROBUST_MIN_DELTA):
        # robust: loss on the marker residuals (see ROBUST_K): True = ROBUST_LOSS, or a name of
        # ROBUST_LOSSES; False / None = plain least squares.
        if robust is True:
            robust = ROBUST_LOSS
        if robust and robust not in ROBUST_LOSSES:
            raise InputError(None, f"unknown robust loss {robust!r} (known: {', '.join(ROBUST_LOSSES)})")
        self.robust_loss = robust or None
        self.robust_k = robust_k
        self.robust_min_delta = robust_min_delta
        self.smoothness = smoothness
        self.smoothing_sweeps = smoothing_sweeps
        self.accuracy = accuracy
        self.restarts = restarts
        self.max_iterations = max_iterations
        self.first_frame_iterations = first_frame_iterations

    def solve(self, model, markers: Trajectories, weights=None, coordinate_tasks=None, progress=False) -> IKResult:
        import opensim as osim

        prep = _prepare(model, markers, weights, coordinate_tasks)
        model, state, names, T = prep.model, prep.state, prep.names, markers.n_frames
        kin = _Kinematic(model, state)
        ms = model.getMarkerSet()
        mks = [ms.get(n) for n in names]
        mobod = osim.SimTKArrayMobilizedBodyIndex()
        stations = osim.SimTKArrayVec3()
        for mk in mks:
            mobod.push_back(osim.PhysicalFrame.safeDownCast(mk.getParentFrame()).getMobilizedBodyIndex())
            stations.push_back(mk.get_location())
        jac = osim.Matrix()
        task_rows = [(kin.free_names.index(c), v, w) for c, v, w in prep.tasks if c in kin.free_names]
        n_z = len(kin.free)
        # Rows of the coordinate tasks in the weighted Jacobian (constant).
        J_tasks = np.zeros((len(task_rows), n_z))
        for i, (k, _, w) in enumerate(task_rows):
            J_tasks[i, k] = np.sqrt(w)

        def positions():
            out = np.empty((len(mks), 3))
            for j, mk in enumerate(mks):
                p = mk.getLocationInGround(state)
                out[j] = (p.get(0), p.get(1), p.get(2))
            return out

        # Temporal prior used by the smoothing sweeps: sqrt(w) (z - target), target = mean of the
        # neighbouring frames' solutions.
        prior: dict = {"target": None, "sqrt_w": np.sqrt(self.smoothness)}

        def extra_residual(z):
            """Coordinate-task and temporal-prior rows of the residual (empty without them)."""
            parts = []
            if task_rows:
                parts.append([np.sqrt(w) * (z[k] - v) for k, v, w in task_rows])
            if prior["target"] is not None:
                parts.append(prior["sqrt_w"] * (z - prior["target"]))
            return np.concatenate(parts) if parts else np.zeros(0)

        loss = self.robust_loss
        robust = loss is not None
        rho_fn, w_fn = ROBUST_LOSSES[loss] if robust else (huber_rho, huber_weight)
        rk, rmin = self.robust_k, self.robust_min_delta

        def delta_of(e, use):
            return robust_threshold(e, use, rk, rmin) if robust else float("inf")

        def evaluate(z, x, wt, delta, rho=rho_fn):
            """Pose z: marker positions, distances to the data and the (robust) total cost."""
            kin.set_z(z)
            p = positions()
            e = np.sqrt(np.sum((p - x) ** 2, axis=1))
            ex = extra_residual(z)
            return p, e, float(wt @ rho(e, delta)) + float(ex @ ex)

        floor = len(names) * (2e-4) ** 2  # below ~0.2 mm per marker a frame is not "poor"
        # Typical cost of the recent frames: a frame whose cost is at that level (and above the
        # floor) is limited by marker noise, not by convergence.
        noise = {"level": 0.0}
        x_all = np.nan_to_num(prep.x)

        def marker_cost(t, p):
            """Weighted marker part of frame t's cost (without coordinate tasks or priors), with
            the robust loss at the threshold of these residuals: what the local-minimum and noise
            checks compare."""
            e = np.sqrt(np.sum((p - x_all[t]) ** 2, axis=1))
            return float(prep.w[t] @ rho_fn(e, delta_of(e, prep.w[t] > 0)))

        def beyond(t, p):
            """Whether a used marker of frame t is beyond the robust threshold at positions p."""
            e = np.sqrt(np.sum((p - x_all[t]) ** 2, axis=1))
            use = prep.w[t] > 0
            return bool(np.any(e[use] > delta_of(e, use)))

        def solve_frame(t, z, iterations, lam=1e-3, robust_frame=True):
            """Damped Gauss-Newton on frame t from z; ``robust_frame=False``: least squares only.

            With the robust loss: least squares first; only if a marker is then beyond the
            threshold, Huber from there, and for "log" (again only if one is still beyond) the
            log tail from the Huber solution. Why the phases:
            * least squares first: started from the previous frame, fast markers (wrists) are
              often over 1 cm from their new positions; down-weighting them in the first steps
              slowed convergence (exact markers, 200 frames: 1089 vs 688 Jacobian evaluations).
              From a pose far away (first frame, restarts) every residual is large and the
              threshold with it, and IRLS went into other local minima than least squares
              (exact markers: forearm rotations 35 deg off, marker RMS 0.34 vs 0.12 mm).
            * Huber before the log tail: the log tail alone let a limb that a noisy frame put
              far away stay in another configuration (its pull fades with distance): on 10 mm
              noise a wrist 16 cm off in single frames, largest marker error 157 vs 66 mm with
              least squares; Huber's constant pull brings the limb back first.
            Markers all within the threshold after least squares: the result is least squares'.
            """
            if not (robust and robust_frame):
                return _solve_frame(t, z, iterations, lam, False, rho_fn, w_fn)
            best = _solve_frame(t, z, iterations, lam, False, rho_fn, w_fn)
            if not beyond(t, best[1]):
                return best
            best = _solve_frame(t, best[0], iterations, lam, True, huber_rho, huber_weight)
            if loss == "huber" or not beyond(t, best[1]):
                return best
            return _solve_frame(t, best[0], iterations, lam, True, rho_fn, w_fn)

        def _solve_frame(t, z, iterations, lam, robust_frame, rho_fn, w_fn):
            use = prep.w[t] > 0
            x = np.where(use[:, None], prep.x[t], 0.0)
            wt = prep.w[t]
            rob = robust and robust_frame
            p, e, cost = evaluate(z, x, wt, float("inf"), rho_fn)
            delta = float("inf")
            if rob:
                delta = delta_of(e, use)
                cost = float(wt @ rho_fn(e, delta)) + float(extra_residual(z) @ extra_residual(z))
            for _ in range(iterations):
                self.matter_jac(kin, mobod, stations, jac)
                # IRLS: the Huber loss as least squares with weights w * delta / e beyond delta.
                sw = np.sqrt(wt * w_fn(e, delta)) if rob else np.sqrt(wt)
                r = np.concatenate([(sw[:, None] * (p - x)).ravel(), extra_residual(z)])
                Jw = np.repeat(sw, 3)[:, None] * (jac.to_numpy() @ kin.C)  # (3M, n_z)
                if task_rows:
                    Jw = np.vstack([Jw, J_tasks])
                if prior["target"] is not None:
                    Jw = np.vstack([Jw, prior["sqrt_w"] * np.eye(n_z)])
                H = Jw.T @ Jw
                g = Jw.T @ r
                # Marquardt scaling; unobserved coordinates (zero column) keep their value.
                diag = marquardt_diagonal(np.diag(H))
                raised = False
                while True:
                    step = -np.linalg.solve(H + lam * np.diag(diag) + 1e-12 * np.eye(n_z), g)
                    # Projected step: coordinates stay within their ranges (as in the model).
                    step = np.clip(z + step, kin.lo, kin.hi) - z
                    p_new, e_new, c_new = evaluate(z + step, x, wt, delta, rho_fn)
                    if c_new <= cost or lam > 1e8:
                        break
                    lam *= 10.0
                    raised = True
                if c_new > cost:
                    break
                decrease = cost - c_new
                z, p, e, cost = z + step, p_new, e_new, c_new
                if rob:
                    # The threshold follows the residuals (concomitant scale); the next step's
                    # decrease is measured at the new threshold.
                    d_new = delta_of(e, use)
                    if d_new != delta:
                        delta = d_new
                        cost = float(wt @ rho_fn(e, delta)) + float(extra_residual(z) @ extra_residual(z))
                # Less damping next time only if this step needed no more: lowering it right
                # after raising it retries the damping that just failed (on noisy markers that
                # doubled the cost evaluations per iteration).
                if not raised:
                    predicted = -(2.0 * float(g @ step) + float(step @ H @ step))
                    lam = max(lam * float(damping_factor(decrease, predicted)), 1e-9)
                # Converged: steps below the accuracy, or the weighted cost no longer falls
                # (by 1e-14 m^2 or a relative RELATIVE_DECREASE: with a coordinate prior or
                # noisy markers the optimum has a residual and Gauss-Newton converges linearly,
                # slowly along weakly observed coordinates such as forearm pronation; when the
                # residual is at noise level -- above ~0.2 mm per marker -- a looser relative
                # decrease is enough: NOISY_RELATIVE_DECREASE; "noise level" = within 3x the
                # median cost of the last 10 frames, so an exact-data frame in trouble still
                # converges fully).
                mc = float(wt @ rho_fn(e, delta))  # marker part of the cost
                noisy = floor < mc < 3.0 * noise["level"]
                rel = NOISY_RELATIVE_DECREASE if noisy else RELATIVE_DECREASE
                if np.max(np.abs(step)) < self.accuracy or decrease < max(1e-14, rel * c_new):
                    break
            if robust and not rob:
                cost = marker_cost(t, p) + float(extra_residual(z) @ extra_residual(z))
            return z, p, cost

        zs = np.empty((T, n_z))
        pos = np.empty((T, len(names), 3))
        costs = np.empty(T)
        z = kin.z_from_state()
        t0 = _time.perf_counter()
        pelvis = np.array([n.startswith("pelvis") for n in kin.free_names])
        rng = np.random.default_rng(0)
        observed = np.ones(n_z, dtype=bool)

        def multistart(t, best, z_base, partial):
            """Restarts from random poses within the ranges (pelvis and unobserved coordinates
            kept at ``z_base``; with ``partial`` each coordinate is re-drawn with probability
            1/2, so a single limb in a wrong basin can be fixed); the best solution wins."""
            start = best
            for _ in range(self.restarts):
                # Markers fitted to ~0.2 mm: no other basin fits better. (The marker part only:
                # the total includes the coordinate tasks, which keep it above any small
                # threshold, so all restarts ran on every first frame.)
                if marker_cost(t, best[1]) < floor:
                    break
                keep = pelvis | ~observed
                if partial:
                    keep = keep | (rng.random(n_z) < 0.5)
                lo, hi = np.nan_to_num(kin.lo, neginf=0.0), np.nan_to_num(kin.hi, posinf=0.0)
                z_try = np.where(keep, z_base, lo + (hi - lo) * rng.uniform(0.25, 0.75, n_z))
                # Least squares only for the candidates (its cost is still the robust merit);
                # the robust phases run once, on the winner (they ran on every candidate
                # before: 400 more Jacobian evaluations on a first frame of exact markers).
                cand = solve_frame(t, z_try, self.first_frame_iterations, robust_frame=False)
                if cand[2] < best[2]:
                    best = cand
            if robust and partial and best is not start:
                # A restart won over the (robust) warm solution: the robust phases from it.
                cand = solve_frame(t, best[0], self.first_frame_iterations)
                best = cand if cand[2] < start[2] else start
            return best

        n_jump_restarts = 0
        # (cost, last frame): the fit level of a frame whose restarts found nothing better, taken
        # as a valid reference for the next 10 frames (the window of the recent median). Without
        # it, a marker the model cannot follow (a mislabelled marker, an arm beyond the model's
        # range) re-triggered the restarts -- 8 cold solves each -- in every frame until the
        # median caught up: 5-7 rounds per outlier, most of the solve time.
        accepted = (0.0, -1)
        for t in _progress(range(T), progress, "IK (jacobian)"):
            if t == 0:
                use = prep.w[t] > 0
                z = self._initial_guess(kin, z, np.where(use[:, None], prep.x[t], 0.0), use, names)
                # Multi-start on the first frame (limb chains have several local minima): the
                # default pose with the pelvis placed, then random poses within the ranges.
                kin.set_z(z)
                self.matter_jac(kin, mobod, stations, jac)
                observed = np.linalg.norm(jac.to_numpy() @ kin.C, axis=0) > 1e-9
                # Candidates by least squares; the robust phases on the winner only (on the first
                # candidate, in a poor basin, they took ~400 slow IRLS iterations). The
                # candidates only have to show which basin fits best: above the ~0.2 mm floor
                # they stop at the noisy relative decrease (1e-3; an infinite noise level) and
                # the winner alone is solved to full accuracy (each of the 9 candidates ran up
                # to 200 iterations on noisy markers: most of a trial's first-frame time).
                noise["level"] = np.inf
                best = multistart(t, solve_frame(t, z, self.first_frame_iterations, robust_frame=False), z,
                                  partial=False)
                noise["level"] = 0.0
                best = solve_frame(t, best[0], self.first_frame_iterations)
                first_seconds = _time.perf_counter() - t0
            else:
                # Warm start from the previous frame: close to the optimum, so start almost
                # undamped (Gauss-Newton steps).
                # Constant-velocity prediction from the two previous frames (kept only if it
                # fits better than the previous pose): fewer iterations on smooth motion.
                z_start = z
                if t >= 2:
                    z_pred = np.clip(2.0 * zs[t - 1] - zs[t - 2], kin.lo, kin.hi)
                    kin.set_z(z)
                    c_prev = marker_cost(t, positions())
                    kin.set_z(z_pred)
                    if marker_cost(t, positions()) < c_prev:
                        z_start = z_pred
                best = solve_frame(t, z_start, self.max_iterations, lam=WARM_DAMPING)
                recent = float(np.median(costs[max(0, t - 10):t]))
                if t <= accepted[1]:
                    recent = max(recent, accepted[0])
                c_best = marker_cost(t, best[1])
                if c_best > 9.0 * recent + floor:
                    # The fit got much worse than in the previous frames (noise makes the cost
                    # fluctuate, hence the factor 9 on the recent median): probably a limb jumped
                    # into another local minimum (fast motion); try restarts around it.
                    n_jump_restarts += 1
                    warm = best
                    best = multistart(t, best, z, partial=True)
                    if best is warm:
                        accepted = (c_best, t + 10)
            z, pos[t] = best[0], best[1]
            costs[t] = marker_cost(t, pos[t])
            zs[t] = z
            noise["level"] = float(np.median(costs[max(0, t - 9):t + 1]))
        # Backward repair: a frame left in a poor local minimum (typically the first frames,
        # started from the default pose) is re-solved from its successor's solution; the better
        # of the two is kept.
        for t in range(T - 2, -1, -1):
            if costs[t] > 4.0 * costs[t + 1] + floor:
                z2, p2, _c = solve_frame(t, zs[t + 1].copy(), self.first_frame_iterations)
                c2 = marker_cost(t, p2)
                if c2 < costs[t]:
                    zs[t], pos[t], costs[t] = z2, p2, c2
        # Smoothing sweeps (Gauss-Seidel over frames) on
        #   sum_t cost_t(z_t) + smoothness * sum_t |z_t - (z_{t-1} + z_{t+1}) / 2|^2,
        # a discrete acceleration penalty like the paper's temporal term (zero-phase: both
        # neighbours count). Off by default (smoothness = 0).
        if self.smoothness > 0 and T >= 3:
            for _ in range(self.smoothing_sweeps):
                for t in range(T):
                    # Interior: mean of the neighbours; ends: linear extrapolation from the two
                    # nearest frames (zero acceleration), which does not pull the ends inwards.
                    if t == 0:
                        target = 2.0 * zs[1] - zs[2]
                    elif t == T - 1:
                        target = 2.0 * zs[T - 2] - zs[T - 3]
                    else:
                        target = 0.5 * (zs[t - 1] + zs[t + 1])
                    prior["target"] = np.clip(target, kin.lo, kin.hi)
                    zs[t], pos[t], _c = solve_frame(t, zs[t].copy(), self.max_iterations, lam=WARM_DAMPING)
            prior["target"] = None
        seconds = _time.perf_counter() - t0
        q = kin.base[None, :] + zs @ kin.C.T
        values = q[:, kin.qidx]
        errors = np.linalg.norm(pos - prep.x, axis=2)
        kin.set_z(zs[-1])
        res = _result(prep, markers.time, values, errors, self.name, seconds)
        res.meta["jump_restarts"] = n_jump_restarts
        res.meta["first_frame_seconds"] = first_seconds
        if robust:
            # The robust weights at the solution (each frame's threshold from its final residuals).
            used = prep.w > 0
            e0 = np.nan_to_num(errors)
            res.robust_delta = np.array([delta_of(e0[t], used[t]) for t in range(T)])
            res.robust_weights = np.where(used, w_fn(e0, res.robust_delta[:, None]), np.nan)
            res.meta["robust"] = {"loss": loss, "k": rk, "min_delta_m": rmin,
                                  "downweighted_share": res.downweighted_share()}
        return res

    @staticmethod
    def matter_jac(kin, mobod, stations, jac):
        kin.matter.calcStationJacobian(kin.state, mobod, stations, jac)

    @staticmethod
    def _initial_guess(kin: _Kinematic, z, x, use, names) -> np.ndarray:
        """Start from the current pose with the pelvis placed on the data: the rigid fit (Kabsch)
        of the pelvis-borne markers (or of all used markers) sets pelvis translation and yaw."""
        ms = kin.model.getMarkerSet()

        def model_markers(z):
            kin.set_z(z)
            return np.array([ms.get(n).getLocationInGround(kin.state).to_numpy() for n in names])

        z = np.where(np.isfinite(z), z, 0.0)
        model_p = model_markers(z)
        sel = use.copy()
        if sel.sum() < 3:
            return z
        a, b = model_p[sel], x[sel]
        ca, cb = a.mean(0), b.mean(0)
        # Yaw only (about Y): the body is upright in the default pose.
        H = (a - ca)[:, [0, 2]].T @ (b - cb)[:, [0, 2]]
        yaw = np.arctan2(H[0, 1] - H[1, 0], H[0, 0] + H[1, 1])
        names_free = kin.free_names
        z = z.copy()
        if "pelvis_rotation" in names_free:
            z[names_free.index("pelvis_rotation")] += -yaw
        model_p = model_markers(z)
        shift = x[sel].mean(0) - model_p[sel].mean(0)
        for k, ax in enumerate(("pelvis_tx", "pelvis_ty", "pelvis_tz")):
            if ax in names_free:
                z[names_free.index(ax)] += shift[k]
        return z


def _batched_ik(**kw):
    from simspine.biomech.ik_batched import DEFAULT_CHAIN_FRAMES, BatchedIK  # torch: only when asked for

    # By name (`--ik-backend batched`: one trial at a time in ik, annotate, build-dataset) the
    # trial is cut into chains so the engine gets a batch (see DEFAULT_CHAIN_FRAMES).
    kw.setdefault("chain_frames", DEFAULT_CHAIN_FRAMES)
    return BatchedIK(**kw)


def _batched_chain_frames() -> int:
    from simspine.biomech.ik_batched import DEFAULT_CHAIN_FRAMES

    return DEFAULT_CHAIN_FRAMES


BACKENDS = {"jacobian": JacobianIK, "opensim": OpenSimSolverIK, "batched": _batched_ik}
#: Backends with the temporal smoothness term.
SMOOTHING_BACKENDS = ("jacobian", "batched")


def make_backend(name: str = "jacobian", accuracy: float | None = None, smoothness: float = 0.0) -> IKBackend:
    """An IK backend by name (``"jacobian"`` default, ``"opensim"``, ``"batched"``: the PyTorch
    trajectory solver of :mod:`simspine.biomech.ik_batched`), optionally with ``accuracy`` and
    (jacobian, batched) the temporal ``smoothness`` weight."""
    if name not in BACKENDS:
        raise InputError(None, f"unknown IK backend {name!r} (known: {', '.join(BACKENDS)})")
    kw = {} if accuracy is None else {"accuracy": accuracy}
    if smoothness:
        if name not in SMOOTHING_BACKENDS:
            raise InputError(None, f"the {name} IK backend has no temporal smoothness term "
                                   f"(use {' or '.join(SMOOTHING_BACKENDS)})")
        kw["smoothness"] = smoothness
    return BACKENDS[name](**kw)


def smoothness_for_rate(weight_at_50hz: float, rate: float) -> float:
    """Per-frame smoothing weight giving the same acceleration penalty as ``weight_at_50hz`` does
    at 50 Hz: |z_t - (z_t-1 + z_t+1)/2| = |acceleration| / (2 rate^2), so the weight scales with
    rate^4 (at 10 Hz the same physical smoothing is 625x weaker per frame)."""
    if not np.isfinite(rate) or rate <= 0:
        return weight_at_50hz
    return float(weight_at_50hz * (rate / 50.0) ** 4)


# ----------------------------------------------------------------------------------------------
# many trials


@dataclass
class IKJob:
    """One trial for :func:`solve_trials` (plain data, so it can go to another process)."""

    model_path: str
    markers: Trajectories
    weights: dict[str, float] | None = None
    coordinate_tasks: list[dict] | None = None
    backend: str = "jacobian"
    accuracy: float | None = None
    out_mot: str | None = None


def job_fingerprint(job: IKJob, _model_digests: dict | None = None) -> str:
    """SHA-256 (hex) of what a job's result is made from: the marker data (times, names,
    positions, confidences, frame), the model file's content and the options (backend, accuracy,
    weights, coordinate tasks, and the defaults they run with: coordinate-task scale, robust
    loss). Stored in the ``.mot`` header (``simspine_input=``) by :func:`run_job`."""
    digests = {} if _model_digests is None else _model_digests
    key = str(job.model_path)
    if key not in digests:
        try:
            digests[key] = hashlib.sha256(Path(job.model_path).read_bytes()).hexdigest()
        except OSError as e:
            raise InputError(job.model_path, f"cannot read the model: {e.strerror or e}") from None
    m = job.markers
    h = hashlib.sha256()
    h.update(json.dumps({"names": list(m.names), "frame": m.frame, "shape": list(m.xyz.shape)}).encode())
    for a in (m.time, m.xyz, m.conf):
        h.update(np.ascontiguousarray(np.asarray(a, dtype=np.float64)).tobytes())
    h.update(digests[key].encode())
    opts = {"backend": job.backend, "accuracy": job.accuracy, "weights": job.weights,
            "coordinate_tasks": job.coordinate_tasks, "coordinate_task_scale": COORDINATE_TASK_SCALE,
            "robust": [ROBUST_LOSS, ROBUST_K, ROBUST_MIN_DELTA] if job.backend == "jacobian" else None,
            # the solvers' damping (results made before it changed are not reused) and the
            # batched backend's chains
            "damping": [MARQUARDT_FLOOR, WARM_DAMPING],
            "chains": _batched_chain_frames() if job.backend == "batched" else None}
    h.update(json.dumps(opts, sort_keys=True, default=repr).encode())
    return h.hexdigest()


def run_job(job: IKJob) -> IKResult:
    """Solve one :class:`IKJob` (and write its ``.mot`` when ``out_mot`` is set, with the job's
    :func:`job_fingerprint` in the header)."""
    res = make_backend(job.backend, job.accuracy).solve(job.model_path, job.markers, job.weights,
                                                         job.coordinate_tasks)
    if job.out_mot:
        write_ik_mot(res, job.out_mot, fingerprint=job_fingerprint(job))
    return res


def finished_result(job: IKJob, _info_cache: dict | None = None) -> IKResult | None:
    """The result a previous run left in ``job.out_mot``, or None when it must be solved.

    The ``.mot`` is written atomically, so a file that exists is whole; it counts as this job's
    output when it is a simspine IK table whose header holds this job's :func:`job_fingerprint`
    (the same marker values, model file content and options), with the model's coordinates and
    the trial's times; anything else (other markers or marker values, another model, other
    options, a file without a fingerprint) is solved again. The returned result
    holds the coordinates only: no marker errors (``marker_names`` empty, ``rms``/``max`` NaN),
    ``meta["resumed_from"]`` names the file.
    """
    if not job.out_mot or not Path(job.out_mot).is_file():
        return None
    from simspine.io.mot import read_mot

    try:
        table = read_mot(job.out_mot)
    except InputError:
        return None
    time = np.asarray(job.markers.time, float)
    if table.meta.get("name") != "simspine_ik" or table.time.shape != time.shape \
            or not np.allclose(table.time, time, rtol=0.0, atol=1e-9 + 1e-11 * np.abs(time).max(initial=0.0)):
        return None
    cache = {} if _info_cache is None else _info_cache
    try:
        fingerprint = job_fingerprint(job, cache.setdefault("_model_digests", {}))
    except InputError:
        return None
    if table.meta.get("simspine_input") != fingerprint:
        return None
    if job.model_path not in cache:
        cache[job.model_path] = coordinate_info(load_model(job.model_path))
    info = cache[job.model_path]
    if table.names != [c.name for c in info]:
        return None
    rotational = np.array([c.rotational for c in info])
    values = table.values.copy()
    if table.in_degrees:
        values[:, rotational] = np.deg2rad(values[:, rotational])
    T = len(time)
    return IKResult(table.time, list(table.names), values, rotational, [], np.empty((T, 0)),
                    np.full(T, np.nan), np.full(T, np.nan), np.zeros(T, dtype=int), job.backend,
                    float("nan"), {"resumed_from": str(job.out_mot)})


def solve_trials(jobs: Sequence[IKJob], workers: int = 1, progress: bool = True,
                 overwrite: bool = False) -> list[IKResult]:
    """Solve trials in a process pool of ``workers`` processes (results in the order of ``jobs``).

    Each worker loads its own OpenSim model (models are not shared between processes). With
    ``workers <= 1`` the trials run in this process. Resumable: a job whose ``out_mot`` already
    holds its result (see :func:`finished_result`) is not solved again unless ``overwrite``; its
    result is read back from the file (coordinates only).
    """
    jobs = list(jobs)
    out: list[IKResult | None] = [None] * len(jobs)
    if not overwrite:
        cache: dict = {}
        for i, job in enumerate(jobs):
            out[i] = finished_result(job, cache)
            if out[i] is not None and progress:
                print(f"trial {i + 1}/{len(jobs)}: {job.out_mot} exists, skipped")
    todo = [i for i in range(len(jobs)) if out[i] is None]
    if workers <= 1 or len(todo) <= 1:
        for i in todo:
            t0 = _time.perf_counter()
            out[i] = run_job(jobs[i])
            if progress:
                print(f"trial {i + 1}/{len(jobs)}: {jobs[i].markers.n_frames} frames in {_time.perf_counter() - t0:.1f} s")
        return out
    import multiprocessing as mp

    with ProcessPoolExecutor(max_workers=workers, mp_context=mp.get_context("spawn")) as ex:
        futs = {i: ex.submit(run_job, jobs[i]) for i in todo}
        for i, f in futs.items():
            out[i] = f.result()
            if progress:
                print(f"trial {i + 1}/{len(jobs)} done ({jobs[i].markers.n_frames} frames)")
        return out
