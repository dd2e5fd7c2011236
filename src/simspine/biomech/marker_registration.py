"""Subject-specific marker placement: registration of marker offsets in their bodies.

A scaled model places each marker where the generic model has it, scaled with its body. On a real
subject (or the synthetic generator's, whose placements are jittered by 1 cm RMS) every marker sits
a little elsewhere on its body, consistently over the whole trial. IK then fits a pose that
compromises between these offsets, which biases joint angles, and forward kinematics puts the
output keypoints at the model's placements rather than the subject's.

:func:`register_markers` estimates, as AddBiomechanics does, one constant offset per marker in the
frame of the body it is attached to, alternating with IK:

1. IK with the current placements gives the pose of every frame;
2. with the poses fixed, each marker's offset ``d`` solves a linear least-squares problem (the
   residual ``R_body(t) (p0 + d) + o_body(t) - m(t)`` is linear in ``d``) over the frames where
   the marker was observed, regularised towards the scaled model's placement ``p0``::

       min_d  sum_t w_t |R_body(t) (p0 + d) + o_body(t) - m(t)|^2 / sum_t w_t  +  lambda |d|^2
       subject to |d| <= max_offset

   ``R_body`` is a rotation, so the normal matrix is ``(1 + lambda) I``: the solution is the
   weighted mean of the residuals expressed in the body frame, shrunk by ``1 / (1 + lambda)``
   and projected onto the ball (exact for an isotropic quadratic). Frames are weighted by the
   marker's confidence times a Huber weight (a few IRLS passes: frames whose residual is far from
   the marker's typical one -- mislabelled or outlying samples -- pull with a bounded force);
3. the model is written with the new placements and IK runs again; 2-3 rounds are enough.

Which markers move: only markers with data (observed, or filled over short gaps) in at least
:data:`MIN_FRAMES` frames (and :data:`MIN_SHARE` of the trial). A marker without data keeps the
scaled model's placement.

What this means for the outputs: the 37 SpineTrack-37 keypoints are markers of the model, and
forward kinematics reads them from the *registered* model. An output keypoint that was observed
therefore moves with its registered marker: it sits, in its body's frame, where the data placed it
on average over the trial (at most ``max_offset`` from the scaled model's placement, and shrunk
towards it by the regulariser), while its motion still comes from the model's pose in every frame
(a constant body-frame offset; frame-by-frame noise is not copied into the outputs). A keypoint
that was never observed keeps the scaled model's placement (its position is the model's inference
only). The registered offsets are reported per marker (mm, body frame) so that a user can see how
far each output keypoint was moved from the model's anatomical placement.

Measured on the closed loop (``simspine demo``'s session: pickup, 4 s at 50 Hz, seed 0, the
generator's 1 cm placement jitter; defaults otherwise): spine MPJPE of the model output 10.8 ->
4.8 mm with 3 px 2D noise (L5_S1 RMSE flexion / lateral bending / axial rotation 0.54/0.26/0.67 ->
0.49/0.24/0.65 deg) and 9.8 -> 1.4 mm with 0 px (0.40/0.13/0.33 -> 0.18/0.11/0.21 deg); registered
offsets 8.8 mm RMS. The registration costs about two more IK runs (3 rounds on <= 100 frames).
On exact markers (``tests/test_marker_registration.py``) 1 cm offsets of the registered markers
come back within 2 mm when the other markers anchor the bodies; with every marker free, a shift
shared by a body's markers looks like a pose change and is split by the regulariser, so single
offsets are less exact while keypoints and angles still improve.

:func:`place_markers_static` is the static-trial counterpart (OpenSim's ``MarkerPlacer``): IK on
the static pose, then every observed marker is moved onto its data (the mean over the static
frames, in its body frame), without regularisation and bounded by ``max_offset``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from simspine.errors import InputError
from simspine.trajectories import Trajectories

#: Largest offset of a marker from the scaled model's placement, metres (AddBiomechanics bounds
#: its marker offsets likewise; larger differences are a wrong label or a wrong model).
DEFAULT_MAX_OFFSET = 0.03
#: Ridge weight towards the scaled model's placement, relative to the mean squared residual of
#: the marker's frames: the estimate is the mean body-frame residual shrunk by 1 / (1 + lambda).
DEFAULT_REGULARIZATION = 0.05
#: Alternations of registration and IK.
DEFAULT_ITERATIONS = 3
#: A marker is registered only with data in at least this many frames and this share of the trial.
MIN_FRAMES = 10
MIN_SHARE = 0.1
#: Huber threshold of the per-frame residual around the marker's estimate: this many times the
#: marker's median distance (3D), and not below HUBER_MIN_M.
HUBER_K = 3.0
HUBER_MIN_M = 0.005
#: Largest extrapolation factor of an offset step (see :func:`register_markers`).
OVERRELAX_MAX = 3.0
#: At most this many frames (evenly spaced) enter the offset estimate and the intermediate IKs
#: (the offsets are trial-wide means: 100 frames estimate them as well as 200 and halve the cost).
MAX_FRAMES = 100


@dataclass
class MarkerRegistration:
    """Registered marker offsets.

    Attributes:
        offsets_m: marker -> (3,) offset from the scaled model's placement, in the frame of the
            marker's body (metres).
        bodies: marker -> body name.
        frames_used: marker -> number of frames that entered its estimate.
        not_registered: marker -> why it kept the model's placement (too few frames, not in the
            model, excluded).
        history: one entry per round: marker RMS (m) of the IK before the round, largest offset change.
        options: max_offset_m, regularization, iterations.
    """

    offsets_m: dict[str, np.ndarray] = field(default_factory=dict)
    bodies: dict[str, str] = field(default_factory=dict)
    frames_used: dict[str, int] = field(default_factory=dict)
    not_registered: dict[str, str] = field(default_factory=dict)
    history: list[dict] = field(default_factory=list)
    options: dict = field(default_factory=dict)

    def offset_mm(self) -> dict[str, float]:
        """Marker -> length of its offset (mm)."""
        return {m: float(np.linalg.norm(d) * 1000.0) for m, d in self.offsets_m.items()}

    def to_dict(self) -> dict:
        """JSON-ready report: per marker body, offset (x, y, z in the body frame, mm), its length
        (mm) and frames used; markers left at the model's placement with the reason."""
        norms = self.offset_mm()
        return {
            "what": "offset of each marker from the scaled model's placement, in its body's frame; "
                    "forward kinematics (the output keypoints) uses the registered placements",
            "units": "mm",
            "markers": {m: {"body": self.bodies[m],
                            "offset_mm": [round(float(v) * 1000.0, 2) for v in d],
                            "length_mm": round(norms[m], 2), "frames": int(self.frames_used.get(m, 0))}
                        for m, d in self.offsets_m.items()},
            "rms_offset_mm": round(float(np.sqrt(np.mean(np.square(list(norms.values()))))), 2) if norms else 0.0,
            "max_offset_mm": round(max(norms.values(), default=0.0), 2),
            "not_registered": dict(self.not_registered),
            "history": self.history,
            "options": self.options,
        }


# ----------------------------------------------------------------------------------------------
# model access


def _osim():
    from simspine.biomech.model import _quiet_opensim

    return _quiet_opensim()


def marker_places(model) -> dict[str, tuple[str, np.ndarray]]:
    """Marker -> (body, (3,) location in the body's frame, m) of an ``opensim.Model`` or path."""
    from simspine.biomech.model import load_model

    if isinstance(model, (str, os.PathLike)):
        model = load_model(model)
    model.initSystem()
    ms = model.getMarkerSet()
    out = {}
    for i in range(ms.getSize()):
        mk = ms.get(i)
        frame = mk.getParentFrame()
        base = frame.findBaseFrame()
        x = frame.findTransformInBaseFrame()
        loc = np.array([mk.get_location().get(k) for k in range(3)])
        r = np.array([[x.R().get(a, b) for b in range(3)] for a in range(3)])
        p = np.array([x.p().get(k) for k in range(3)])
        out[mk.getName()] = (base.getName(), r @ loc + p)
    return out


def write_registered_model(model_path: str | os.PathLike, offsets_m: dict[str, np.ndarray],
                           out_path: str | os.PathLike, name_suffix: str = "_registered") -> Path:
    """Write ``model_path`` with every marker in ``offsets_m`` moved by its offset (body frame,
    m) to ``out_path`` (atomically). Offsets are relative to ``model_path``'s placements."""
    from simspine.biomech.model import load_model
    from simspine.fileio import atomic_path

    osim = _osim()
    model = load_model(model_path)
    model.initSystem()
    ms = model.updMarkerSet()
    for name, d in offsets_m.items():
        if not ms.contains(name):
            raise InputError(model_path, f"model has no marker {name!r} to register")
        mk = ms.get(name)
        x = mk.getParentFrame().findTransformInBaseFrame()
        r = np.array([[x.R().get(a, b) for b in range(3)] for a in range(3)])
        dl = r.T @ np.asarray(d, float)  # the offset in the marker's parent frame
        loc = mk.get_location()
        mk.set_location(osim.Vec3(loc.get(0) + dl[0], loc.get(1) + dl[1], loc.get(2) + dl[2]))
    if name_suffix and not model.getName().endswith(name_suffix):
        model.setName(model.getName() + name_suffix)
    model.finalizeConnections()
    out_path = Path(out_path)
    with atomic_path(out_path) as tmp:
        model.printToXML(str(tmp))
    return out_path


def _poses(model_path, names: Sequence[str], coord_names: Sequence[str], values: np.ndarray,
           bodies: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each frame of ``values`` (T, C) (rad / m): model marker positions (T, M, 3) of
    ``names`` and rotations (T, B, 3, 3) / origins (T, B, 3) of ``bodies`` in ground."""
    from simspine.biomech.fk import Kinematics

    kin = Kinematics(str(model_path))
    known = set(kin.coordinate_names)
    cols = [(n, j) for j, n in enumerate(coord_names) if n in known]
    T = len(values)
    pos = np.empty((T, len(names), 3))
    rot = np.empty((T, len(bodies), 3, 3))
    org = np.empty((T, len(bodies), 3))
    for t in range(T):
        kin.set_coordinates({n: float(values[t, j]) for n, j in cols})
        pos[t] = kin.marker_positions(list(names))
        for b, body in enumerate(bodies):
            rot[t, b] = kin.body_rotation(body)
            org[t, b] = kin.body_origin(body)
    return pos, rot, org


def _subsample(n: int, max_frames: int) -> np.ndarray:
    if n <= max_frames:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_frames).round().astype(int))


def _weighted_offset(res_body: np.ndarray, w: np.ndarray, prior: np.ndarray, regularization: float,
                     max_offset: float) -> np.ndarray:
    """Offset minimising sum_t w_t |res_t - (d - prior)|^2 / sum w + lambda |d|^2 (IRLS Huber over
    frames) with |d| <= max_offset. ``res_body`` (T, 3): data minus the model marker at the
    current placement, in the body frame; ``prior`` (3,): the current offset (so the residual of
    offset d is res_t - (d - prior))."""
    target = res_body + prior[None, :]  # what each frame says the offset is
    h = np.ones(len(w))
    d = prior
    for _ in range(4):
        ww = w * h
        a = (ww[:, None] * target).sum(axis=0) / ww.sum()
        d = a / (1.0 + regularization)
        n = float(np.linalg.norm(d))
        if n > max_offset:
            d = d * (max_offset / n)
        e = np.linalg.norm(target - d[None, :], axis=1)
        delta = max(HUBER_MIN_M, HUBER_K * float(np.median(e)))
        h = np.where(e <= delta, 1.0, delta / np.maximum(e, 1e-12))
    return d


def estimate_offsets(model_path, markers: Trajectories, coord_names: Sequence[str], values: np.ndarray,
                     current: dict[str, np.ndarray] | None = None, *, names: Sequence[str] | None = None,
                     max_offset: float = DEFAULT_MAX_OFFSET, regularization: float = DEFAULT_REGULARIZATION,
                     frames: np.ndarray | None = None, min_frames: int = MIN_FRAMES,
                     min_share: float = MIN_SHARE) -> tuple[dict[str, np.ndarray], dict[str, int], dict[str, str]]:
    """One registration step with the poses fixed (see the module docstring).

    ``model_path``: the model whose placements are ``p0 + current`` (``current``: offsets already
    applied relative to the scaled model, default none); ``values`` (T, C): the IK coordinates of
    ``markers``' frames on that model, columns ``coord_names``. ``names``: markers that may move
    (default: every marker of the data in the model). Returns (offsets relative to the scaled
    model, frames used per marker, markers left alone with the reason).
    """
    current = dict(current or {})
    places = marker_places(model_path)
    skipped: dict[str, str] = {}
    cand = list(markers.names) if names is None else list(names)
    T = markers.n_frames
    idx = np.arange(T) if frames is None else np.asarray(frames)
    use: list[str] = []
    for n in cand:
        if n not in places:
            skipped[n] = "not a marker of the model"
        elif n not in markers.names:
            skipped[n] = "no data"
        else:
            ok = np.isfinite(markers.xyz[idx, markers.names.index(n)]).all(axis=1) & \
                 (np.nan_to_num(markers.conf[idx, markers.names.index(n)]) > 0)
            need = max(1, min_frames, int(np.ceil(min_share * len(idx))))
            if ok.sum() < need:
                skipped[n] = f"data in {int(ok.sum())} of {len(idx)} frames (needs {need})"
            else:
                use.append(n)
    if not use:
        return {}, {}, skipped
    bodies = sorted({places[n][0] for n in use})
    pos, rot, _org = _poses(model_path, use, coord_names, np.asarray(values, float)[idx], bodies)
    out, used = {}, {}
    for j, n in enumerate(use):
        k = markers.names.index(n)
        x = markers.xyz[idx, k]
        w = np.nan_to_num(markers.conf[idx, k])
        ok = np.isfinite(x).all(axis=1) & (w > 0)
        b = bodies.index(places[n][0])
        # data minus model marker, in the body frame: R^T (m - p)
        r = np.einsum("tji,tj->ti", rot[ok, b], x[ok] - pos[ok, j])
        out[n] = _weighted_offset(r, w[ok], np.asarray(current.get(n, np.zeros(3)), float), regularization,
                                  max_offset)
        used[n] = int(ok.sum())
    return out, used, skipped


def register_markers(model_path: str | os.PathLike, markers: Trajectories, out_path: str | os.PathLike,
                     solve: Callable[[str, Trajectories], object], *, first=None,
                     names: Sequence[str] | None = None, exclude: Sequence[str] = (),
                     iterations: int = DEFAULT_ITERATIONS, max_offset: float = DEFAULT_MAX_OFFSET,
                     regularization: float = DEFAULT_REGULARIZATION, max_frames: int = MAX_FRAMES,
                     min_frames: int = MIN_FRAMES, progress: bool = False) -> MarkerRegistration:
    """Register the markers of ``model_path`` (the scaled model) to the trial ``markers``,
    alternating with IK, and write the model with the registered placements to ``out_path``.

    ``solve(model_path, markers) -> IKResult`` runs the IK (the caller's backend, weights and
    coordinate tasks); the intermediate IKs get at most ``max_frames`` evenly spaced frames.
    ``first``: an IK result of ``markers`` on ``model_path`` already computed (all frames),
    saving the first IK. ``names``/``exclude``: which markers may move (default: every marker
    with enough data). The caller runs the final IK on ``out_path``. See the module docstring
    for the problem solved and what it means for the output keypoints.
    """
    if iterations < 1:
        raise InputError(None, f"marker registration needs at least one iteration (got {iterations})")
    if not max_offset > 0:
        raise InputError(None, f"marker registration needs a positive max_offset (got {max_offset})")
    out_path = Path(out_path)
    frames = _subsample(markers.n_frames, max_frames)
    sub = Trajectories(markers.time[frames], list(markers.names), markers.xyz[frames], markers.conf[frames],
                       markers.frame, dict(markers.meta))
    cand = [n for n in (markers.names if names is None else names) if n not in set(exclude)]
    reg = MarkerRegistration(options={"max_offset_m": max_offset, "regularization": regularization,
                                      "iterations": iterations, "frames": int(len(frames))})
    for n in exclude:
        reg.not_registered[n] = "excluded"
    offsets: dict[str, np.ndarray] = {}
    current_model = str(model_path)
    if first is not None:
        coord_names, values, rms = first.coordinate_names, np.asarray(first.values)[frames], first.rms[frames]
    else:
        r0 = solve(current_model, sub)
        coord_names, values, rms = r0.coordinate_names, r0.values, r0.rms
    places = marker_places(model_path)
    prev_change = 0.0
    for it in range(iterations):
        new, used, skipped = estimate_offsets(current_model, sub, coord_names, values, offsets, names=cand,
                                              max_offset=max_offset, regularization=regularization,
                                              min_frames=min_frames)
        change = max((float(np.linalg.norm(new[n] - offsets.get(n, np.zeros(3)))) for n in new), default=0.0)
        if it > 0 and prev_change > 0:
            # Alternating pose/offset steps converge linearly (the pose absorbs part of each
            # offset change, ratio rho per round): extrapolate the step by 1 / (1 - rho)
            # (Aitken), at most OVERRELAX_MAX times, within the bound.
            rho = min(change / prev_change, 1.0 - 1.0 / OVERRELAX_MAX)
            omega = 1.0 / (1.0 - rho)
            for n in new:
                d = offsets.get(n, np.zeros(3)) + omega * (new[n] - offsets.get(n, np.zeros(3)))
                norm = float(np.linalg.norm(d))
                new[n] = d * (max_offset / norm) if norm > max_offset else d
        prev_change = change
        reg.history.append({"round": it + 1, "ik_marker_rms_mm": round(float(np.nanmean(rms)) * 1000.0, 3),
                            "largest_change_mm": round(change * 1000.0, 3)})
        offsets = new
        reg.frames_used, reg.not_registered = used, {**skipped, **{n: "excluded" for n in exclude}}
        write_registered_model(model_path, offsets, out_path)
        current_model = str(out_path)
        if progress:
            print(f"  marker registration round {it + 1}/{iterations}: IK marker RMS "
                  f"{np.nanmean(rms) * 1000:.2f} mm, largest offset change {change * 1000:.2f} mm", flush=True)
        if it + 1 < iterations:
            r = solve(current_model, sub)
            coord_names, values, rms = r.coordinate_names, r.values, r.rms
        if change < 1e-4:
            break
    reg.offsets_m = offsets
    reg.bodies = {n: places[n][0] for n in offsets}
    return reg


def place_markers_static(model_path: str | os.PathLike, static_markers: Trajectories,
                         out_path: str | os.PathLike, solve: Callable[[str, Trajectories], object] | None = None, *,
                         max_offset: float = 0.05, exclude: Sequence[str] = (), iterations: int = 2) -> tuple[Path, MarkerRegistration]:
    """OpenSim's MarkerPlacer on a static trial: pose the model by IK on the static frames, then
    move every marker with data onto it (mean over the static frames, in its body's frame; no
    regularisation, at most ``max_offset``), and write the model to ``out_path`` (atomically).
    Two rounds (IK again on the moved markers, then place again) settle the pose.
    ``solve(model_path, markers) -> IKResult`` defaults to :class:`simspine.biomech.ik.JacobianIK`
    with the default coordinate tasks. Returns (``out_path``, the placement report)."""
    if solve is None:
        from simspine.biomech.ik import JacobianIK

        def solve(path, m):
            return JacobianIK().solve(path, m)

    reg = register_markers(model_path, static_markers, out_path, solve, exclude=exclude,
                           iterations=iterations, max_offset=max_offset, regularization=0.0, min_frames=1)
    return Path(out_path), reg
