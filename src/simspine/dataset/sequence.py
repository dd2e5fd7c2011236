"""One Human3.6M sequence through the SimSpine pipeline, and the per-subject scaling before it.

Per sequence (:func:`process_sequence`):

1. Human3.6M joints (mm, Z-up world) → the 12 limb joints under their SpineTrack-37 names
   (:data:`simspine.skeletons.H36M_TO_SPINETRACK`; the paper leaves Human3.6M's pelvis, spine,
   neck, head top and nose out) in metres, OpenSim's ground frame (Y up, :mod:`simspine.frames`);
2. optionally merged with pseudo-3D keypoints triangulated from 2D detections per camera
   (OpenPose JSON as ``simspine detect`` writes it, :func:`spine_2d_folders`, or one
   ``data_2d_*.npz``-style file, :mod:`simspine.dataset.spine2d_npz`; SpineTrack-37 order),
   filtered, then :func:`simspine.multiview.merge.merge_markers` (trusted limbs, pseudo spine);
3. inverse kinematics on the subject's scaled model (scaled once per subject by
   :func:`scale_subject_model` over all its sequences), forward kinematics → 37 keypoints,
   rotations and all 62 model coordinates;
4. the 37 keypoints projected into each of the subject's cameras with visibility (in front of the
   camera and inside the image) and a person box per camera and frame.

Everything returned is plain numpy + JSON-able metadata, so it pickles cheaply between Dask
workers and is written to the work folder as one ``.npz`` per sequence.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from simspine.dataset.h36m import RATE_HZ, SequenceSpec, load_joints, timestamps
from simspine.errors import InputError
from simspine.fileio import json_default
from simspine.frames import yup_to_zup, zup_to_yup
from simspine.skeletons import H36M_TO_SPINETRACK, h36m32, spinetrack37
from simspine.trajectories import Trajectories

YUP = "opensim-ground (Y up)"
#: share of the keypoints' extent added on each side of a person box
BOX_MARGIN = 0.1


@dataclass
class SequenceOptions:
    """Options of the per-sequence processing (recorded in the store's provenance).

    Attributes:
        spine_2d: folder of 2D detections (see :func:`spine_2d_folders`), an npz of them
            (:mod:`simspine.dataset.spine2d_npz`) or None.
        smoothness: IK temporal smoothness at 50 Hz (:func:`simspine.biomech.ik.smoothness_for_rate`).
        mass: subject mass (kg) for scaling.
        scaling_frames: frames per sequence used for the subject's scaling (evenly spaced).
        conf_threshold: 2D confidence below which a detection is ignored by the triangulation.
        scaling_refine: refinement rounds of the scaling (:func:`simspine.biomech.scaling.estimate_scaling`).
        ik_backend: IK backend name (:func:`simspine.biomech.ik.make_backend`: ``jacobian``,
            ``opensim``, ``batched``); ``smoothness`` applies to the backends that have it.
    """

    spine_2d: str | None = None
    smoothness: float = 0.1
    mass: float = 70.0
    scaling_frames: int = 200
    conf_threshold: float = 0.3
    scaling_refine: int = 4
    ik_backend: str = "jacobian"

    def as_dict(self) -> dict:
        return asdict(self)


def trusted_markers(joints_mm: np.ndarray, rate_hz: float = RATE_HZ) -> Trajectories:
    """Human3.6M joints (T, 32, 3) mm, Z-up → the 12 limb joints as SpineTrack-37-named
    trajectories (T, 12, 3) in metres, OpenSim ground frame (Y up)."""
    j = np.asarray(joints_mm, dtype=float)
    sk = h36m32()
    src = list(H36M_TO_SPINETRACK)
    xyz = zup_to_yup(j[:, [sk.index(n) for n in src]] / 1000.0)
    names = [H36M_TO_SPINETRACK[n] for n in src]
    order = np.argsort([spinetrack37().index(n) for n in names])
    return Trajectories(timestamps(len(j), rate_hz), [names[i] for i in order], xyz[:, order], frame=YUP,
                        meta={"source": "Human3.6M"})


def scaling_markers(specs: list[SequenceSpec], frames_per_sequence: int = 200) -> Trajectories:
    """The subject's trusted markers from all of ``specs`` (evenly spaced frames of each, one
    after the other on a 50 Hz clock), for one scaling per subject."""
    parts = []
    for s in specs:
        tr = trusted_markers(load_joints(s))
        idx = np.unique(np.linspace(0, tr.n_frames - 1, min(frames_per_sequence, tr.n_frames)).round().astype(int))
        parts.append(tr.xyz[idx])
    if not parts:
        raise InputError(None, "no sequence to scale the subject on")
    xyz = np.concatenate(parts)
    return Trajectories(timestamps(len(xyz)), trusted_markers(np.zeros((1, 32, 3))).names, xyz, frame=YUP)


def scale_subject_model(subject: str, specs: list[SequenceSpec], out_dir, options: SequenceOptions) -> dict:
    """Scale the model once for ``subject`` over its sequences; writes ``out_dir/model_scaled.osim``
    and ``out_dir/scaling.json`` atomically and returns ``{"model": path, "scaling": dict}``.

    Sequences that cannot be read are left out of the scaling (they fail on their own later)."""
    from simspine.biomech.model import prepare_model
    from simspine.biomech.scaling import scale_subject
    from simspine.fileio import write_text_atomic

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    readable = []
    for s in specs:
        try:
            load_joints(s)
            readable.append(s)
        except InputError:
            continue
    if not readable:
        raise InputError(None, f"{subject}: no readable sequence to scale the model on")
    markers = scaling_markers(readable, options.scaling_frames)
    model_path = out / "model_scaled.osim"
    rep = scale_subject(markers, model_path, mass=options.mass, model_path=prepare_model(), source=subject,
                        refine=options.scaling_refine)
    d = rep.to_dict()
    d.update(frame=YUP, subject=subject, sequences=[s.name for s in readable], frames=int(markers.n_frames))
    write_text_atomic(out / "scaling.json", json.dumps(d, indent=1, default=json_default))
    return {"model": str(model_path), "scaling": d}




# ---- 2D detections ----------------------------------------------------------------------------
def spine_2d_folders(root, spec: SequenceSpec, camera_names: list[str]) -> dict[str, Path] | None:
    """Camera name → folder of OpenPose JSON for ``spec``, or None when ``root`` has nothing for it.

    Looked for, per camera (``<seq>`` is the store name ``Directions_1`` or the dataset's own
    ``Directions 1``): ``root/<subject>/<seq>/pose/<camera>_json/`` (a session folder as
    ``simspine detect`` writes it) or ``root/<subject>/<seq>/<camera>_json/``. A sequence with
    some but not all cameras uses those it has.
    """
    if root is None:
        return None
    base = Path(root) / spec.subject
    for seq in dict.fromkeys([spec.name, spec.original_name]):
        for d in (base / seq / "pose", base / seq):
            found = {c: d / f"{c}_json" for c in camera_names if (d / f"{c}_json").is_dir()}
            if found:
                return found
    return None


def load_spine_2d(folders: dict[str, Path], cameras, n_frames: int):
    """A :class:`simspine.io.session.Session2D` of the detections in ``folders`` on the 3D clock.

    Raises :class:`InputError` when a camera's frame count differs from the ``n_frames`` of the
    Human3.6M markers (2D and 3D of different lengths cannot be aligned safely)."""
    from simspine.io.openpose import numbered_frame_files, read_openpose_folder
    from simspine.io.session import Session2D

    cams = [c for c in cameras if c.name in folders]
    uv, conf = [], []
    K = len(spinetrack37())
    for c in cams:
        numbers, _ = numbered_frame_files(folders[c.name])
        count = int(numbers[-1] - numbers[0] + 1)
        if count != n_frames:
            raise InputError(folders[c.name], f"2D detections cover {count} frames but the Human3.6M 3D "
                                              f"markers have {n_frames}: 2D and 3D must have the same length")
        xy, cf = read_openpose_folder(folders[c.name], K, frames=np.arange(numbers[0], numbers[0] + n_frames))
        uv.append(xy)
        conf.append(cf)
    return Session2D(cams, np.stack(uv), np.stack(conf), timestamps(n_frames), list(spinetrack37().names),
                     "SpineTrack-37", RATE_HZ, meta={"source": str(next(iter(folders.values())).parent)})


def spine_2d_session(source, spec: SequenceSpec, cameras, n_frames: int):
    """A :class:`simspine.io.session.Session2D` of ``spec``'s 2D detections from ``source`` -- a
    folder of OpenPose JSON (:func:`spine_2d_folders`) or a ``data_2d_*.npz``-style file
    (:mod:`simspine.dataset.spine2d_npz`) -- on the 3D clock, or None when it has none for ``spec``.
    Raises :class:`InputError` for detections that cannot be aligned with the 3D markers."""
    from simspine.dataset.spine2d_npz import is_npz, load_spine_2d_npz

    if source is None:
        return None
    if is_npz(source):
        return load_spine_2d_npz(source, spec, cameras, n_frames)
    folders = spine_2d_folders(source, spec, [c.name for c in cameras])
    return load_spine_2d(folders, cameras, n_frames) if folders else None


def pseudo_3d(session, conf_threshold: float) -> tuple[Trajectories, Trajectories]:
    """SpineTrack-37 keypoints (Y up, m) of a 2D session: ``(triangulated, filtered)``, the
    robust triangulation as it came (what was observed in each frame) and after the filter
    (gaps filled, smoothed: what is merged)."""
    from simspine.multiview.filtering import filter_trajectories
    from simspine.multiview.reconstruct import triangulate_session
    from simspine.multiview.triangulation import TriangulationOptions

    rec = triangulate_session(session, TriangulationOptions(conf_threshold=conf_threshold))
    return rec.markers, filter_trajectories(rec.markers)


def observation_status(markers: Trajectories, triangulated: Trajectories | None = None) -> np.ndarray:
    """(T, 37) int8 status of the SpineTrack-37 keypoints (:mod:`simspine.observation` codes: 0
    none, 1 observed, 2 filled, 3 inferred) from the markers IK runs on (merged or trusted alone)
    and, with 2D, the raw triangulation."""
    from simspine.observation import frames_estimated, keypoint_status, marker_status

    ms = marker_status(markers, triangulated)
    return keypoint_status(ms, markers.names, frames_estimated(ms, markers.names))


# ---- projections ------------------------------------------------------------------------------
def project_keypoints(keypoints_yup: np.ndarray, cameras) -> tuple[np.ndarray, np.ndarray]:
    """Project (T, K, 3) keypoints (OpenSim ground, m) into each camera.

    Returns ``(uvv (C, T, K, 3), boxes (C, T, 4))``: pixel u, v and visibility (1 when in front of
    the camera and inside the image, else 0); boxes x, y, w, h in pixels around the visible
    keypoints, enlarged by :data:`BOX_MARGIN` of their extent on each side and clipped to the image
    (NaN when no keypoint is visible).
    """
    X = yup_to_zup(keypoints_yup)
    C = len(cameras)
    T, K, _ = X.shape
    uvv = np.zeros((C, T, K, 3))
    boxes = np.full((C, T, 4), np.nan)
    for i, cam in enumerate(cameras):
        uv = cam.project(X)
        w, h = cam.size
        vis = np.isfinite(uv).all(-1) & (uv[..., 0] >= 0) & (uv[..., 0] < w) & (uv[..., 1] >= 0) & (uv[..., 1] < h)
        uvv[i, ..., :2] = np.nan_to_num(uv, nan=-1.0)
        uvv[i, ..., 2] = vis
        u = np.where(vis, uv[..., 0], np.nan)
        v = np.where(vis, uv[..., 1], np.nan)
        any_vis = vis.any(-1)
        with warnings.catch_warnings():  # all-NaN rows (nothing visible) are expected
            warnings.simplefilter("ignore", RuntimeWarning)
            x0, x1 = np.nanmin(u, -1), np.nanmax(u, -1)
            y0, y1 = np.nanmin(v, -1), np.nanmax(v, -1)
        mx, my = BOX_MARGIN * (x1 - x0), BOX_MARGIN * (y1 - y0)
        x0, x1 = np.clip(x0 - mx, 0, w), np.clip(x1 + mx, 0, w)
        y0, y1 = np.clip(y0 - my, 0, h), np.clip(y1 + my, 0, h)
        b = np.stack([x0, y0, x1 - x0, y1 - y0], -1)
        boxes[i] = np.where(any_vis[:, None], b, np.nan)
    return uvv, boxes


# ---- the sequence -----------------------------------------------------------------------------
def ik_backend(name: str, smoothness_50hz: float, rate: float):
    """The IK backend ``name`` (:func:`simspine.biomech.ik.make_backend`), with the temporal
    smoothness (weight at 50 Hz, scaled to ``rate``) when the backend has that term
    (:data:`simspine.biomech.ik.SMOOTHING_BACKENDS`; the OpenSim solver has none). Raises
    :class:`InputError` for an unknown name."""
    from simspine.biomech.ik import SMOOTHING_BACKENDS, make_backend, smoothness_for_rate

    smooth = smoothness_for_rate(smoothness_50hz, rate) if name in SMOOTHING_BACKENDS else 0.0
    return make_backend(name, None, smooth)


def solve_ik_fk(markers: Trajectories, model_path: str, smoothness: float, backend: str = "jacobian"):
    """IK on the scaled model with the IK ``backend`` (as :func:`simspine.biomech.fitting.run_ik_pipeline`
    does after its scaling: coordinates no marker moves are held at the neutral pose) and FK.

    Returns ``(ik_result, keypoints Trajectories, SpineRotations, undetermined coordinate names)``.
    """
    from simspine.biomech.fitting import UNDETERMINED_PRIOR_WEIGHT, neutral_pose, undetermined_coordinates
    from simspine.biomech.fk import CoordinateTable, Kinematics, run_fk
    from simspine.biomech.ik import default_coordinate_tasks
    from simspine.biomech.model import load_model
    from simspine.biomech.scaling import present_markers

    model = load_model(str(model_path))
    undetermined = undetermined_coordinates(model, present_markers(markers))
    neutral = neutral_pose(model)
    tasks = default_coordinate_tasks()
    tasked = {t["coordinate"] for t in tasks}
    tasks += [{"coordinate": c, "value": neutral[c], "weight": UNDETERMINED_PRIOR_WEIGHT}
              for c in undetermined if c not in tasked]
    be = ik_backend(backend, smoothness, markers.rate)
    res = be.solve(model, markers, None, tasks, progress=False)
    kin = Kinematics(str(model_path))
    kp, rots = run_fk(kin, CoordinateTable(res.time, res.coordinate_names, res.values))
    return res, kp, rots, undetermined


def process_sequence(spec: SequenceSpec, model_path: str, options: SequenceOptions) -> dict:
    """Build one sequence; see the module docstring. Returns a dict of arrays (``keypoints37``
    (T, 37, 3) m Y up, ``markers`` (T, 15, 3), ``kinematics`` (T, 62) deg/m, ``rotations_*``,
    ``keypoints2d`` (C, T, 37, 3), ``boxes`` (C, T, 4), ``timestamps``, ``status`` (T, 37) and
    ``region_status`` (T, 3) int8 (:mod:`simspine.observation` codes), ``ik_rms`` (T,) m) and ``meta`` (JSON-able)."""
    from simspine.calibration import h36m_cameras
    from simspine.dataset.release import kinematic_axes, marker_indices
    from simspine.observation import coverage, region_status

    t0 = time.perf_counter()
    joints = load_joints(spec)
    trusted = trusted_markers(joints)
    T = trusted.n_frames
    if T < 2:
        raise InputError(spec.path, f"{T} frame(s): too short to build")
    cameras = h36m_cameras(spec.subject)
    session = spine_2d_session(options.spine_2d, spec, cameras, T)
    warnings = []
    if session is not None:
        from simspine.multiview.merge import merge_markers

        triangulated, pseudo = pseudo_3d(session, options.conf_threshold)
        markers = merge_markers(pseudo, trusted)
        status = observation_status(markers, triangulated)
    else:
        if options.spine_2d:
            warnings.append(f"no 2D detections for {spec.uid} under {options.spine_2d}: built from the "
                            "Human3.6M markers alone (spine inferred by the model)")
        markers = trusted
        status = observation_status(trusted)
    res, kp, rots, undetermined = solve_ik_fk(markers, model_path, options.smoothness, options.ik_backend)
    axes = kinematic_axes()
    deg = res.values_for_mot()
    kinematics = deg[:, [res.coordinate_names.index(a) for a in axes]]
    uvv, boxes = project_keypoints(kp.xyz, cameras)
    regions = coverage(status)["regions"]
    meta = {"subject": spec.subject, "sequence": spec.name, "action": spec.action, "subaction": spec.sub,
            "original_name": spec.original_name, "source": spec.source, "source_path": spec.path,
            "n_frames": T, "rate_hz": RATE_HZ, "spine_2d": session is not None,
            "cameras_2d": sorted(c.name for c in session.cameras) if session is not None else [], "undetermined_coordinates": undetermined,
            "observed_share": {r: v["observed"] for r, v in regions.items()}, "ik_backend": options.ik_backend, "ik_marker_rms_mean_m": float(np.nanmean(res.rms)), "warnings": warnings,
            "seconds": time.perf_counter() - t0}
    return {
        "timestamps": timestamps(T),
        "keypoints37": kp.xyz,
        "markers": kp.xyz[:, marker_indices()],
        "kinematics": kinematics,
        "rotations_intervertebral_deg": rots.intervertebral_deg,
        "rotations_segment_euler_deg": rots.segment_euler_deg,
        "keypoints2d": uvv,
        "boxes": boxes,
        "status": status,
        "region_status": region_status(status),
        "ik_rms": res.rms,
        "h36m_joints_mm": joints,
        "meta": meta,
        "rotation_names": {"intervertebral": list(rots.intervertebral_names), "segments": list(rots.segment_bodies)},
    }


def save_result(path, result: dict) -> Path:
    """Write a :func:`process_sequence` result as one ``.npz`` (atomically)."""
    from simspine.io.npz import save_npz

    arrays = {k: v for k, v in result.items() if isinstance(v, np.ndarray)}
    extra = {k: v for k, v in result.items() if not isinstance(v, np.ndarray)}
    arrays["meta_json"] = np.array(json.dumps(extra, default=json_default))
    return save_npz(Path(path), **arrays)


def load_result(path) -> dict:
    """Read a result written by :func:`save_result`."""
    with np.load(path, allow_pickle=False) as z:
        out = {k: z[k] for k in z.files if k != "meta_json"}
        out.update(json.loads(str(z["meta_json"])))
    return out
