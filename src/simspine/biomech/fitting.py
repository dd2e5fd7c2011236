"""Markers -> scaled model -> IK -> virtual vertebral markers and rotations, written to a folder.

Outputs of :func:`run_ik_pipeline` in ``out_dir`` (all written atomically; frames say where they
are):

* ``model_scaled.osim`` -- the subject-scaled model (SpineTrack-37 markers, no muscles);
* ``model_registered.osim`` -- the scaled model with every observed marker's placement
  registered to the trial (``register_markers``, default on; :mod:`simspine.biomech.marker_registration`):
  the final IK and the output keypoints use it, so an observed keypoint moves with its registered
  marker; offsets per marker (mm, body frame) in ``scaling.json`` and ``summary.json``
  (``marker_registration``);
* ``model_placed.osim`` -- with ``static``: the scaled model with every marker of the static trial
  moved onto the static pose after IK on it (OpenSim's MarkerPlacer,
  :func:`simspine.biomech.marker_registration.place_markers_static`); the motion IK and the
  trial-wide registration start from it; offsets per marker (mm, body frame) in ``scaling.json``
  and ``summary.json`` (``static_marker_placement``);
* ``scaling.json`` -- scale factors per segment and where each comes from (``factor_sources``:
  measured pairs, the other side, height, neighbours), left/right factors made symmetric
  (``symmetrised``), pair lengths and their spread, frames trimmed, height, mass, warnings;
* ``ik.mot`` -- coordinates per frame (rotations in degrees, translations in metres); its header
  lists the coordinates the markers do not determine;
* ``ik_errors.csv`` -- per frame: time (s), marker RMS and max error (m), markers used, the
  markers the robust loss down-weighted, and the error of every marker (``<marker>_m``, m);
* ``keypoints37.trc`` -- the 37 SpineTrack-37 keypoints from FK (OpenSim ground, Y up, m);
* ``rotations.csv`` / ``rotations.npz`` -- intervertebral coordinates (deg) and vertebral-body
  orientations relative to the pelvis (intrinsic Z-X-Y: flexion/extension, lateral bending,
  axial rotation; deg);
* ``summary.json`` -- inputs, options, stage timings, IK error statistics, output names,
  ``undetermined_coordinates``, ``plausibility`` (code, message and numbers of each
  :mod:`simspine.biomech.plausibility` warning: not Y-up, left/right swapped, height, coordinates
  at a bound, large marker errors) and ``warnings`` (every warning of the run as text: scaling's,
  then the plausibility ones; also printed).

Partial marker sets: any subset of the SpineTrack-37 markers that places the pelvis and trunk
(at least 3 non-collinear markers on them) can be used. Segments without marker pairs are
scaled from other factors (:mod:`simspine.biomech.scaling`); coordinates that no present marker
depends on (no marker on a body their joint moves, e.g. hips/knees/ankles without leg markers,
the neck without head markers) are held by a weak coordinate task (weight
:data:`UNDETERMINED_PRIOR_WEIGHT`) at the neutral pose :func:`neutral_pose` and listed in the
outputs; they carry no information from the data.

Resumable: a stage whose output exists and was made from the same input and options (recorded in
``.ik_state.json``) is skipped when ``resume=True``.
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from simspine.biomech import plausibility
from simspine.biomech.fk import (
    EULER_LABELS,
    EULER_SEQUENCE,
    SPINE_SEGMENTS,
    CoordinateTable,
    Kinematics,
    coordinates_from_mot,
    run_fk,
)
from simspine.biomech.ik import (
    SMOOTHING_BACKENDS,
    IKResult,
    default_coordinate_tasks,
    error_figures,
    make_backend,
    read_ik_errors,
    smoothness_for_rate,
    write_ik_errors,
)
from simspine.biomech.marker_sets import prepare_ik_inputs
from simspine.biomech.model import coordinate_info, load_model
from simspine.biomech.scaling import ScalingReport, given_scaling, present_markers, scale_subject
from simspine.errors import InputError
from simspine.fileio import atomic_path, write_text_atomic
from simspine.trajectories import Trajectories

FRAME = "opensim-ground (Y up)"
#: Temporal smoothness weight of the IK at 50 Hz (see :mod:`simspine.biomech.ik`).
DEFAULT_SMOOTHNESS_50HZ = 0.1
#: Weight (per rad^2, or m^2) of the task holding an undetermined coordinate at the neutral
#: pose: as weak as the default L5_S1 task (1 deg costs what a weight-1 marker 0.17 mm off does).
#: No marker moves such a coordinate, so any positive weight pins it without biasing the rest.
UNDETERMINED_PRIOR_WEIGHT = 0.01
#: Where the neutral pose differs from the model's defaults (radians): the model's default has
#: the arms horizontal (arm_add -1.57); a relaxed stance with the arms along the body (the
#: synthetic generator's standing pose) gives plausible keypoints for unmeasured arms.
NEUTRAL_POSE_OVERRIDES = {"arm_add_r": -0.12, "arm_add_l": -0.12, "elbow_flex_r": 0.25, "elbow_flex_l": 0.25,
                          "pro_sup_r": 1.2, "pro_sup_l": 1.2}


@dataclass
class IKPipelineResult:
    """In-memory results of :func:`run_ik_pipeline` (also written to ``out_dir``)."""

    keypoints: Trajectories
    coordinates: CoordinateTable
    rotations: object
    ik: IKResult | None
    scaling: dict
    timings: dict[str, float] = field(default_factory=dict)
    out_dir: Path | None = None
    files: dict[str, str] = field(default_factory=dict)
    #: every warning of the run (scaling's, then :mod:`simspine.biomech.plausibility`'s), as text
    warnings: list[str] = field(default_factory=list)


def _say(progress: bool, msg: str) -> None:
    if progress:
        print(msg, flush=True)


def _input_hash(markers: Trajectories, options: dict) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(markers.xyz).tobytes())
    h.update(np.ascontiguousarray(markers.conf).tobytes())
    h.update(json.dumps([markers.names, options], sort_keys=True, default=str).encode())
    return h.hexdigest()[:20]


def read_state(path: Path, key: str) -> dict:
    """The stages finished for input ``key`` according to the resume file ``path``; a missing,
    unreadable or other-input file means none (start over rather than fail)."""
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError):
        return {"input": key}
    return state if isinstance(state, dict) and state.get("input") == key else {"input": key}


def write_rotations(rots, out_dir: Path) -> tuple[Path, Path]:
    """``rotations.csv`` (one row per frame) and ``rotations.npz`` (arrays + metadata)."""
    seg_cols = [f"{b}_{lab}_deg" for b, _ in SPINE_SEGMENTS for lab in EULER_LABELS]
    header = ["time"] + [f"{n}_deg" for n in rots.intervertebral_names] + seg_cols
    data = np.column_stack([rots.time, rots.intervertebral_deg,
                            rots.segment_euler_deg.reshape(len(rots.time), -1)])
    buf = io.StringIO()
    buf.write(f"# intervertebral: model coordinates (deg); segments: vertebral body relative to pelvis, "
              f"intrinsic {EULER_SEQUENCE} Euler angles (deg) [{', '.join(EULER_LABELS)}]; frame {FRAME}\n")
    buf.write(",".join(header) + "\n")
    np.savetxt(buf, data, delimiter=",", fmt="%.6f")
    csv = write_text_atomic(out_dir / "rotations.csv", buf.getvalue())
    npz = out_dir / "rotations.npz"
    with atomic_path(npz) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, time=rots.time, intervertebral_names=np.array(rots.intervertebral_names),
                     intervertebral_deg=rots.intervertebral_deg,
                     segment_bodies=np.array([b for b, _ in SPINE_SEGMENTS]),
                     segment_vertebrae=np.array([v for _, v in SPINE_SEGMENTS]),
                     segment_euler_deg=rots.segment_euler_deg,
                     euler_labels=np.array(EULER_LABELS),
                     meta=json.dumps({**rots.meta, "frame": FRAME, "units": "degrees, seconds"}))
    return csv, npz


def write_fk_outputs(kin: Kinematics, coords: CoordinateTable, out_dir: Path,
                     progress: bool = False) -> tuple[Trajectories, object]:
    """FK of ``coords`` on ``kin``'s model; writes ``keypoints37.trc`` and ``rotations.csv/.npz``
    to ``out_dir`` (atomically). Returns (keypoints, rotations)."""
    from simspine.io.trc import write_trc

    kp, rots = run_fk(kin, coords, progress=progress)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_trc(out_dir / "keypoints37.trc", kp)
    write_rotations(rots, out_dir)
    return kp, rots


def neutral_pose(model) -> dict[str, float]:
    """Free coordinate -> neutral value (rad / m): the model's defaults with
    :data:`NEUTRAL_POSE_OVERRIDES`."""
    info = coordinate_info(model)
    return {c.name: NEUTRAL_POSE_OVERRIDES.get(c.name, c.default) for c in info if not c.dependent and not c.locked}


def undetermined_coordinates(model, present) -> list[str]:
    """Free coordinates of ``model`` (an ``opensim.Model`` or path) that no marker in ``present``
    depends on: none of those markers sits on a body that the coordinate's joint moves (its child
    body or anything beyond it). Model order."""
    if isinstance(model, (str, Path)):
        model = load_model(model)
    children: dict[str, list[str]] = {}
    joint_child = {}
    js = model.getJointSet()
    for i in range(js.getSize()):
        j = js.get(i)
        child = j.getChildFrame().findBaseFrame().getName()
        children.setdefault(j.getParentFrame().findBaseFrame().getName(), []).append(child)
        joint_child[j.getName()] = child
    ms = model.getMarkerSet()
    present = set(present)
    with_markers = {ms.get(i).getParentFrame().findBaseFrame().getName() for i in range(ms.getSize())
                    if ms.get(i).getName() in present}

    def moved(body):
        out, todo = set(), [body]
        while todo:
            b = todo.pop()
            out.add(b)
            todo.extend(children.get(b, []))
        return out

    return [c.name for c in coordinate_info(model)
            if not c.dependent and not c.locked and not (moved(joint_child[c.joint]) & with_markers)]


def _write_mot(res: IKResult, path: Path, undetermined: list[str]) -> Path:
    """``ik.mot`` as :func:`simspine.biomech.ik.write_ik_mot` writes it, plus a header note on the
    coordinates the markers do not determine."""
    from simspine.io.mot import write_mot

    note = ("coordinates not determined by the markers, held at the neutral pose by a weak prior: "
            + ", ".join(undetermined)) if undetermined else "every free coordinate is determined by the markers"
    return write_mot(path, res.time, res.coordinate_names, res.values_for_mot(), in_degrees=True,
                     name="simspine_ik", frame="opensim-ground (Y up)",
                     comment=f"simspine inverse kinematics ({res.backend})\n"
                             f"rotations in degrees, translations in metres\n{note}")


def _write_errors(res: IKResult, path: Path) -> Path:
    return write_ik_errors(res, path)


def _ik_summary(res: IKResult | None, errors_csv: Path) -> dict | None:
    """summary.json's ``ik`` entry: from the result, or read back from ``ik_errors.csv`` when the
    IK stage was reused (``reused``: true; frames/s not known then)."""
    if res is not None:
        fig = error_figures(res.marker_names, res.marker_errors, res.rms, res.max, res.n_markers,
                            None if res.robust_weights is None else res.robust_weights < 1.0)
        return {"backend": res.backend, "frames_per_s": res.fps, "reused": False,
                "robust_loss": (res.meta.get("robust") or {}).get("loss"), **fig}
    try:
        e = read_ik_errors(errors_csv)
    except (OSError, InputError):
        return None
    fig = error_figures(e["marker_names"], e["marker_errors"], e["rms"], e["max"], e["n_markers"],
                        e["downweighted"] if e.get("robust_loss") else None)
    return {"backend": e.get("backend"), "frames_per_s": None, "reused": True,
            "robust_loss": e.get("robust_loss"), **fig}


def run_ik_pipeline(markers_trc, out_dir, height: float | None = None, mass: float = 70.0, *,
                    backend: str = "jacobian", accuracy: float | None = None, coordinate_tasks=None,
                    weights: dict | None = None, refine: int = 4, resume: bool = True,
                    progress: bool = True, spine_placement: str = "published",
                    lumbar_coupling: bool = True, smoothness: float = DEFAULT_SMOOTHNESS_50HZ,
                    strict: bool = False, register_markers: bool = True,
                    registration: dict | None = None, marker_set=None, measurement_set=None, static=None,
                    scale_factors=None, exclude_markers=None, marker_weights=None) -> IKPipelineResult:
    """Scale the model to the markers, solve IK, compute the 37 keypoints and spine rotations.

    ``markers_trc``: a TRC path (OpenSim ground frame, SpineTrack-37 marker names) or a
    :class:`Trajectories`. ``height`` (m) is compared with the marker-based estimate; ``mass``
    (kg) sets the scaled model's mass. ``spine_placement`` and ``lumbar_coupling`` choose the
    model variant (see :func:`simspine.biomech.model.prepare_model`). ``smoothness``: weight of
    the IK's temporal smoothness term expressed at 50 Hz (scaled with the marker rate; 0 for
    frame-by-frame IK as OpenSim does; jacobian backend only). ``strict``: refuse left/right
    scale factors differing by more than 15% instead of symmetrising them (with a warning). Any
    marker subset that places the pelvis and trunk works (see the module docstring).
    ``register_markers``: register each observed marker's placement in its body, alternating with
    IK (:mod:`simspine.biomech.marker_registration`; ``registration``: its keyword options such as
    ``max_offset``, ``regularization``, ``iterations``, ``exclude``); the final IK and the output
    keypoints then use ``model_registered.osim``. See the module docstring for the outputs.

    Lab options (:mod:`simspine.biomech.marker_sets`): ``marker_set`` (an OpenSim MarkerSet XML or
    a shipped name such as ``"trunk"``: the lab's markers join the model for scaling and IK, the 37
    keypoints still come from FK), ``measurement_set`` (ScaleTool MeasurementSet pairs for it),
    ``static`` (scale on this static TRC instead of the trial, then place the markers on its pose:
    ``model_placed.osim``), ``scale_factors`` (JSON or ScaleSet
    XML: given factors, no estimation), ``exclude_markers`` (names, list or comma-separated),
    ``marker_weights`` (JSON, CSV or IKTaskSet XML).
    """
    t_all = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    source = None
    if isinstance(markers_trc, Trajectories):
        markers = markers_trc
    else:
        from simspine.io.trc import read_trc

        source = str(markers_trc)
        t0 = time.perf_counter()
        markers = read_trc(markers_trc)
        timings["read"] = time.perf_counter() - t0
    if "Y up" not in markers.frame and "opensim" not in markers.frame.lower():
        raise InputError(source, f"markers are in frame {markers.frame!r}; the model needs OpenSim ground (Y up)")
    inputs = prepare_ik_inputs(markers, source, marker_set=marker_set, measurement_set=measurement_set,
                               static=static, scale_factors=scale_factors, exclude_markers=exclude_markers,
                               marker_weights=marker_weights, weights=weights, spine_placement=spine_placement,
                               lumbar_coupling=lumbar_coupling)
    markers, weights = inputs.markers, inputs.weights
    options = dict(**inputs.options, height=height, mass=mass, backend=backend, accuracy=accuracy, refine=refine,
                   coordinate_tasks=coordinate_tasks, weights=weights, spine_placement=spine_placement,
                   lumbar_coupling=lumbar_coupling, smoothness=smoothness, strict=strict,
                   register_markers=register_markers, registration=registration)
    key = _input_hash(markers, options)
    state_path = out_dir / ".ik_state.json"
    state = read_state(state_path, key) if resume else {"input": key}
    _say(progress, f"simspine ik: {markers.n_frames} frames, {len(markers.names)} markers -> {out_dir}")
    plaus = _said(progress, plausibility.check_markers(markers.names, markers.xyz))  # before scaling

    # 1. scaling
    model_path = out_dir / "model_scaled.osim"
    scaling_path = out_dir / "scaling.json"
    t0 = time.perf_counter()
    if state.get("scaled") and model_path.is_file() and scaling_path.is_file():
        scaling = json.loads(scaling_path.read_text())
        _say(progress, "  scaling: reused (same input)")
    else:
        generic = inputs.generic_model
        if inputs.factors is not None:
            report: ScalingReport = given_scaling(inputs.factors, model_path, mass, height, generic,
                                                  source=inputs.factors_source)
        else:
            report = scale_subject(inputs.scale_markers, model_path, mass=mass, height=height, refine=refine,
                                   model_path=generic, source=inputs.scale_source, progress=progress,
                                   strict=strict, segments=inputs.segments)
        scaling = report.to_dict()
        scaling["frame"] = FRAME
        write_text_atomic(scaling_path, json.dumps(scaling, indent=1))
        state["scaled"] = True
        write_text_atomic(state_path, json.dumps(state))
        for w in report.warnings:
            _say(progress, f"  warning: {w}")
    timings["scaling"] = time.perf_counter() - t0
    plaus += _said(progress, plausibility.check_height(scaling.get("height_estimate_m")))
    _say(progress, f"  scaling: height estimate {scaling['height_estimate_m']:.3f} m, factors "
                   + ", ".join(f"{k} {v:.3f}" for k, v in scaling["factors"].items())
                   + f" ({timings['scaling']:.1f} s)")

    # 1b. static trial: markers placed on its pose (OpenSim's MarkerPlacer), before the motion IK
    scaled_model = load_model(str(model_path))
    placed_path = out_dir / "model_placed.osim"
    placement_report = None
    base_model = model_path
    static_digest = options.get("static_digest") if options.get("static") else None
    if static_digest is None:
        scaling.pop("static_marker_placement", None)
    elif (state.get("placed") == static_digest and placed_path.is_file()
          and "static_marker_placement" in scaling):
        placement_report = scaling["static_marker_placement"]
        base_model = placed_path
        _say(progress, "  static marker placement: reused (same input)")
    else:
        from simspine.biomech.marker_registration import place_markers_static

        t1 = time.perf_counter()
        static_markers = inputs.scale_markers
        static_tasks = default_coordinate_tasks() if coordinate_tasks is None else list(coordinate_tasks)
        static_tasked = {t["coordinate"] for t in static_tasks}
        static_neutral = neutral_pose(scaled_model)
        static_tasks += [{"coordinate": c, "value": static_neutral[c], "weight": UNDETERMINED_PRIOR_WEIGHT}
                         for c in undetermined_coordinates(scaled_model, present_markers(static_markers))
                         if c not in static_tasked]

        def solve_static(path, m):
            return make_backend(backend, accuracy, 0.0).solve(str(path), m, weights, static_tasks, progress=False)

        _, placed = place_markers_static(model_path, static_markers, placed_path, solve_static,
                                         exclude=(registration or {}).get("exclude", ()))
        placement_report = placed.to_dict()
        placement_report["static"] = str(options["static"])
        placement_report["seconds"] = round(time.perf_counter() - t1, 3)
        scaling["static_marker_placement"] = placement_report
        write_text_atomic(scaling_path, json.dumps(scaling, indent=1))
        base_model = placed_path
        state["placed"] = static_digest
        write_text_atomic(state_path, json.dumps(state))
        _say(progress, f"  static marker placement: {len(placed.offsets_m)} markers moved onto the static pose, "
                       f"RMS offset {placement_report['rms_offset_mm']:.1f} mm (max "
                       f"{placement_report['max_offset_mm']:.1f} mm; {placement_report['seconds']:.1f} s)")

    # 2. inverse kinematics; coordinates no marker moves are held at the neutral pose
    mot_path = out_dir / "ik.mot"
    t0 = time.perf_counter()
    res = None
    undetermined = undetermined_coordinates(scaled_model, present_markers(markers))
    neutral = neutral_pose(scaled_model)
    tasks = default_coordinate_tasks() if coordinate_tasks is None else list(coordinate_tasks)
    tasked = {t["coordinate"] for t in tasks}
    tasks += [{"coordinate": c, "value": neutral[c], "weight": UNDETERMINED_PRIOR_WEIGHT}
              for c in undetermined if c not in tasked]
    if undetermined:
        _say(progress, f"  note: {len(undetermined)} coordinates are not determined by the markers and are held at "
                       f"the neutral pose: {', '.join(undetermined)}")
    registered_path = out_dir / "model_registered.osim"
    registration_report = None
    if not register_markers:
        scaling.pop("marker_registration", None)
    if state.get("ik") and mot_path.is_file() and (not register_markers or registered_path.is_file()):
        fk_model = registered_path if register_markers else base_model
        kin = Kinematics(str(fk_model))
        coords = coordinates_from_mot(mot_path, kin.coordinates)
        registration_report = scaling.get("marker_registration") if register_markers else None
        _say(progress, "  IK: reused (same input)")
    else:
        def solve(path, m, prog=False):
            smooth = smoothness_for_rate(smoothness, m.rate) if backend in SMOOTHING_BACKENDS else 0.0
            return make_backend(backend, accuracy, smooth).solve(str(path), m, weights, tasks, progress=prog)

        res = solve(base_model, markers, progress)
        fk_model = base_model
        if register_markers:
            from simspine.biomech.marker_registration import register_markers as _register

            t1 = time.perf_counter()
            reg = _register(base_model, markers, registered_path, solve, first=res, progress=progress,
                            **(registration or {}))
            res_unregistered = res
            res = solve(registered_path, markers, progress)
            fk_model = registered_path
            registration_report = reg.to_dict()
            registration_report["ik_marker_rms_mean_mm"] = {
                "scaled_model": round(float(np.nanmean(res_unregistered.rms)) * 1000.0, 3),
                "registered_model": round(float(np.nanmean(res.rms)) * 1000.0, 3)}
            registration_report["seconds"] = round(time.perf_counter() - t1, 3)
            scaling["marker_registration"] = registration_report
            write_text_atomic(scaling_path, json.dumps(scaling, indent=1))
            _say(progress, f"  marker registration: {len(reg.offsets_m)} markers moved, RMS offset "
                           f"{registration_report['rms_offset_mm']:.1f} mm (max {registration_report['max_offset_mm']:.1f}"
                           f" mm); IK marker RMS {registration_report['ik_marker_rms_mean_mm']['scaled_model']:.2f} -> "
                           f"{registration_report['ik_marker_rms_mean_mm']['registered_model']:.2f} mm")
        _write_mot(res, mot_path, undetermined)
        _write_errors(res, out_dir / "ik_errors.csv")
        coords = CoordinateTable(res.time, res.coordinate_names, res.values)
        state["ik"] = True
        write_text_atomic(state_path, json.dumps(state))
        kin = Kinematics(str(fk_model))
    timings["ik"] = time.perf_counter() - t0
    if res is not None:
        _say(progress, f"  IK ({res.backend}): marker RMS mean {np.nanmean(res.rms) * 1000:.2f} mm, "
                       f"max {np.nanmax(res.max) * 1000:.2f} mm, {res.fps:.0f} frames/s ({timings['ik']:.1f} s)")

    plaus += _said(progress, plausibility.check_bounds(coords.names, coords.values,
                                                      plausibility.coordinate_bounds(scaled_model), skip=undetermined))
    if res is not None:
        plaus += _said(progress, plausibility.check_marker_errors(res.marker_names, res.marker_errors))
    else:  # per-marker errors are not stored: keep what the run that made this IK found
        plaus += [plausibility.PlausibilityWarning(**w) for w in _previous_plausibility(out_dir, "marker_error")]

    # 3. forward kinematics: keypoints and rotations
    t0 = time.perf_counter()
    kp, rots = write_fk_outputs(kin, coords, out_dir, progress=progress)
    timings["fk"] = time.perf_counter() - t0
    _say(progress, f"  FK: 37 keypoints and spine rotations ({timings['fk']:.1f} s)")

    timings["total"] = time.perf_counter() - t_all
    files = {k: str(out_dir / v) for k, v in dict(
        model="model_scaled.osim", scaling="scaling.json", motion="ik.mot", errors="ik_errors.csv",
        keypoints="keypoints37.trc", rotations_csv="rotations.csv", rotations_npz="rotations.npz",
        summary="summary.json").items()}
    if placement_report is not None:
        files["model_placed"] = str(placed_path)
    if register_markers:
        files["model_registered"] = str(registered_path)
    rotational = {c.name for c in coordinate_info(scaled_model) if c.rotational}
    summary = {
        "input": source or "in-memory trajectories",
        "n_frames": markers.n_frames,
        "markers": list(markers.names),
        "frame": FRAME,
        "units": {"positions": "m", "angles_in_mot": "deg", "rotations": "deg"},
        "options": {k: v for k, v in options.items() if k not in ("weights",)},
        "scaling": {"factors": scaling["factors"], "height_estimate_m": scaling["height_estimate_m"],
                    "mass_kg": scaling["mass_kg"], "warnings": scaling.get("warnings", []),
                    "factor_sources": scaling.get("factor_sources", {}),
                    "symmetrised": sorted(scaling.get("symmetrised", {}))},
        "static_marker_placement": placement_report,
        "marker_registration": registration_report,
        "undetermined_coordinates": {
            "coordinates": undetermined,
            "held_at": {c: float(np.rad2deg(neutral[c])) if c in rotational else neutral[c] for c in undetermined},
            "units": "deg (translations m)", "prior_weight": UNDETERMINED_PRIOR_WEIGHT,
            "why": "no marker of the trial sits on a body these coordinates move; their values come from "
                   "the prior, not the data"},
        "timings_s": timings,
        "files": {k: Path(v).name for k, v in files.items()},
        "plausibility": [w.to_dict() for w in plaus],
        "warnings": list(scaling.get("warnings", [])) + [w.message for w in plaus],
    }
    ik_summary = _ik_summary(res, out_dir / "ik_errors.csv")
    if ik_summary is not None:
        summary["ik"] = ik_summary
    write_text_atomic(out_dir / "summary.json", json.dumps(summary, indent=1))
    _say(progress, f"  done in {timings['total']:.1f} s; summary: {out_dir / 'summary.json'}")
    return IKPipelineResult(kp, coords, rots, res, scaling, timings, out_dir, files, summary["warnings"])


def _said(progress: bool, warnings: list) -> list:
    for w in warnings:
        _say(progress, f"  warning: {w}")
    return warnings


def _previous_plausibility(out_dir: Path, code: str) -> list[dict]:
    """The ``code`` entries of ``out_dir/summary.json``'s plausibility list (none if unreadable)."""
    try:
        prev = json.loads((out_dir / "summary.json").read_text()).get("plausibility") or []
        return [w for w in prev if isinstance(w, dict) and w.get("code") == code
                and set(w) == {"code", "message", "details"}]
    except (OSError, ValueError, AttributeError):
        return []

