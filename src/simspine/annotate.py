"""``annotate``: a multi-view session in, everything a user needs out, in one folder.

Stages (SimSpine paper §3.1), each writing into ``out_dir``:

=============  ==========================================================  =========================
stage          what                                                        outputs
=============  ==========================================================  =========================
triangulate    robust triangulation of the 2D keypoints                     ``triangulated.trc/.npz``,
                                                                            ``triangulated_report.json``
filter         Hampel (optional), short gaps interpolated, zero-phase       ``filtered.trc/.npz``
               Butterworth
merge          with trusted body markers when given (TRC or Human3.6M       ``markers.trc/.npz``
               joints), per-marker confidence
scale          subject-scaled model from the markers                        ``model/model_scaled.osim``,
                                                                            ``model/scaling.json``
ik             inverse kinematics (weights × confidence)                    ``model/ik.mot``,
                                                                            ``model/ik_errors.csv``
fk             keypoints and vertebral rotations of the fitted model         ``model/keypoints37.trc``,
                                                                            ``model/rotations.npz/.csv``
=============  ==========================================================  =========================

plus ``summary.json`` / ``summary.txt``, ``keypoints37_status.csv`` (per frame: whether each keypoint
was observed, filled or inferred by the model; :mod:`simspine.observation` -- frames with too few
pelvis/trunk markers are NaN in ``model/keypoints37.*`` and ``model/rotations.*`` unless
``fill_unobserved``) and ``report.html`` (:mod:`simspine.annotate_report`). All positions are
metres in OpenSim's ground frame (Y up); the calibration's Z-up world is mapped by
(x, y, z) -> (y, z, x) (Pose2Sim's convention).

Resumable: ``stages.json`` records, per finished front-end stage, a key made of its options and
its inputs' keys; a stage whose key matches and whose outputs exist is skipped (its outputs are
read back). The model stages (``model/``, :mod:`simspine.biomech.fitting`) keep their own state
and skip their finished stages when the merged markers and options are unchanged.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from simspine.errors import InputError, SimspineError
from simspine.fileio import json_default, write_text_atomic
from simspine.io.npz import read_npz, read_trajectories_npz, write_trajectories_npz
from simspine.multiview.filtering import FilterOptions, filter_trajectories
from simspine.multiview.merge import MergeOptions, h36m_trajectories, merge_markers
from simspine.multiview.triangulation import TriangulationOptions
from simspine.trajectories import Trajectories

STAGES = ("triangulate", "filter", "merge", "scale", "ik", "fk")


@dataclass
class AnnotateResult:
    """What :func:`annotate` produced (everything is also on disk in ``out_dir``).

    Attributes:
        out_dir: the output folder.
        triangulated, filtered, markers: 3D trajectories after each front-end stage (Y up, m).
        keypoints: SpineTrack-37 keypoints of the fitted model (forward kinematics), or None when
            the biomechanical stages did not run.
        coordinates: fitted model coordinates (``time``, ``names``, ``values`` in rad / m) or None.
        rotations: per-vertebra rotations from forward kinematics, or None.
        timings: stage -> wall seconds (0 for a stage skipped because it was already done).
        skipped: stages skipped because their outputs were up to date.
        summary: the summary written to ``summary.json``.
    """

    out_dir: Path
    triangulated: Trajectories
    filtered: Trajectories
    markers: Trajectories
    keypoints: Trajectories | None = None
    coordinates: object | None = None
    rotations: object | None = None
    timings: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    summary: dict = field(default_factory=dict)


# ---- resumability -----------------------------------------------------------------------------
def _key(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _opts(o) -> dict:
    return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in dataclasses.asdict(o).items()}


def _fingerprint(files) -> list:
    """Names, sizes and modification times of input files (cheap: stat only; absent files left out)."""
    out = []
    for p in map(Path, files):
        if p.is_file():
            st = p.stat()
            out.append([str(p), st.st_size, st.st_mtime_ns])
    return out


class _Stages:
    """Runs the front-end stages and keeps ``stages.json``: per finished stage, a key made of its
    options and its inputs' keys, its outputs and its time. A stage whose key matches and whose
    outputs exist is skipped and its outputs read back. With ``resume=False`` the previous record
    is ignored (and overwritten), so every stage runs."""

    def __init__(self, out: Path, resume: bool, log):
        self.path = out / "stages.json"
        self.log = log
        self.data: dict = {}
        self.timings: dict[str, float] = {}
        self.skipped: list[str] = []
        if resume and self.path.exists():
            try:
                self.data = json.loads(self.path.read_text())
            except (OSError, json.JSONDecodeError):
                pass  # an unreadable record only means nothing is known to be done

    def run(self, name: str, key: str, outputs: list[Path], compute, read):
        """``compute()`` (which writes ``outputs``) unless the stage is up to date, else ``read()``."""
        d = self.data.get(name)
        if d and d.get("key") == key and all(p.exists() for p in outputs):
            self.log(f"[{name}] up to date, skipped ({', '.join(p.name for p in outputs)})")
            self.skipped.append(name)
            self.timings[name] = 0.0
            return read()
        t0 = time.perf_counter()
        value = compute()
        dt = self.timings[name] = time.perf_counter() - t0
        self.data[name] = {"key": key, "outputs": [p.name for p in outputs], "seconds": dt}
        write_text_atomic(self.path, json.dumps(self.data, indent=1) + "\n")
        self.log(f"[{name}] done in {dt:.2f} s")
        return value


# ---- trajectories on disk -----------------------------------------------------------------------
def _write_traj(traj: Trajectories, out: Path, stem: str) -> Trajectories:
    """``<stem>.trc`` (what OpenSim reads) and ``<stem>.npz`` (also confidences and metadata);
    returns ``traj``."""
    from simspine.io.trc import write_trc

    write_trc(out / f"{stem}.trc", traj)
    write_trajectories_npz(out / f"{stem}.npz", traj)
    return traj


def _read_traj(npz: Path) -> Trajectories:
    return read_trajectories_npz(npz, "stage output (delete it to recompute)")


def load_trusted(path: str | os.PathLike, rate_hz: float = 50.0, units: str = "mm") -> Trajectories:
    """Trusted 3D markers in OpenSim's ground frame (Y up, metres).

    ``.trc``: read as is (any marker names; TRC files are Y up by convention). ``.npy`` /
    ``.npz``: Human3.6M joints (T, 32 or 17, 3) in the Human3.6M world (Z up), ``units`` mm (raw
    ``D3_Positions``) or m, at ``rate_hz``; an ``.npz`` must hold one array or a ``positions``
    array. They are mapped to Y up like the triangulated points, so both share one frame when the
    calibration is Human3.6M's.
    """
    from simspine.frames import zup_to_yup
    from simspine.io.trc import read_trc

    p = Path(path)
    if not p.exists():
        raise InputError(p, "trusted marker file not found")
    if p.suffix.lower() == ".trc":
        return read_trc(p)
    if p.suffix.lower() in (".npy", ".npz"):
        if p.suffix.lower() == ".npz":
            z = read_npz(p, "Human3.6M joints file")
            arr = z["positions"] if "positions" in z else z[next(iter(z))] if len(z) == 1 else None
            if arr is None:
                raise InputError(p, f"expected one array or a 'positions' array, found {', '.join(z) or 'none'}")
        else:
            try:
                arr = np.load(p, allow_pickle=False)
            except (OSError, ValueError) as e:
                raise InputError(p, f"cannot read Human3.6M joints ({e})") from None
        try:
            h = h36m_trajectories(arr, rate_hz, units)
        except InputError as e:
            raise InputError(p, e.problem) from None
        return Trajectories(h.time, h.names, zup_to_yup(h.xyz), h.conf, "opensim-ground (Y up); from Human3.6M "
                            "world (Z up) by (x, y, z) -> (y, z, x)", {"source": str(p)})
    raise InputError(p, "unknown trusted marker format (expected .trc, or Human3.6M joints as .npy/.npz)")


# ---- the pipeline -------------------------------------------------------------------------------
def annotate(session_dir: str | os.PathLike, out_dir: str | os.PathLike, *,
             trusted: str | os.PathLike | None = None, trusted_rate_hz: float = 50.0, trusted_units: str = "mm",
             calibration: str | os.PathLike | None = None, fps: float | None = None, person: int = 0,
             triangulation: TriangulationOptions | None = None, filtering: FilterOptions | None = None,
             merge: MergeOptions | None = None, biomech: bool = True, mass: float = 70.0,
             height: float | None = None, ik_backend: str = "jacobian", ik_options: dict | None = None,
             resume: bool = True, fill_unobserved: bool = False, report: bool = True,
             refine_calibration=None, progress: bool = True, log=print) -> AnnotateResult:
    """Run triangulate → filter → merge → scale → IK → FK on a session; see the module docstring.

    Args:
        session_dir: Pose2Sim project folder (or a simspine session ``.npz``).
        out_dir: output folder (created).
        trusted: optional trusted markers (:func:`load_trusted`); without them the filtered
            keypoints are the markers.
        calibration, fps: override the session's calibration file / frame rate.
        person: which subject when the keypoint files hold several people
            (:func:`simspine.io.session.load_pose2sim_session`).
        triangulation, filtering, merge: stage options (defaults documented in each module).
        biomech: run scale/IK/FK (needs the biomechanical core).
        mass, height: subject mass (kg) and, if known, height (m) for scaling.
        ik_backend: IK backend name (``simspine.biomech.ik.make_backend``).
        ik_options: further keyword options of
            :func:`simspine.biomech.fitting.run_ik_pipeline` (``coordinate_tasks``,
            ``smoothness``, ``accuracy``, ``spine_placement``, ...).
        resume: skip stages whose outputs are up to date (see ``stages.json``).
        fill_unobserved: keep the model's values in frames with too few markers for IK (default:
            NaN there; see :mod:`simspine.observation`).
        report: write ``report.html`` (:mod:`simspine.annotate_report`).
        refine_calibration: True or a :class:`~simspine.multiview.calibration_refine.RefineOptions`:
            first refine the calibration by bundle adjustment on the session's keypoints (stage
            ``calibrate``, ``calibration_refined.toml/.json``) and triangulate with it.
        progress: show progress bars in the long stages; ``log``: where stage lines go.
    """
    from simspine.io.session import load_session, session_inputs
    from simspine.multiview.reconstruct import (
        read_triangulation,
        require_points,
        triangulate_session,
        write_triangulation,
    )

    session_dir = Path(session_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tri_o = triangulation or TriangulationOptions()
    fil_o = filtering or FilterOptions()
    mer_o = merge or MergeOptions()
    stages = _Stages(out, resume, log)
    summary: dict = {"session": str(session_dir), "out_dir": str(out), "frame": "opensim-ground (Y up), metres",
                     "stages": {}}

    if refine_calibration:  # 0. bundle adjustment of the rig; the stages below use the refined file
        calibration = _refine_stage(stages, session_dir, out, calibration, fps, person, refine_calibration, summary,
                                    log)

    # 1. triangulate
    k_tri = _key("triangulate", _opts(tri_o), _fingerprint(session_inputs(session_dir, calibration)), fps,
                 *((person,) if person else ()))  # person 0 keeps the keys of earlier runs
    tri_out = [out / "triangulated.trc", out / "triangulated.npz", out / "triangulated_report.json"]

    def do_tri():
        session = load_session(session_dir, calibration, fps, person)  # --calibration overrides a .npz's cameras
        log(f"[triangulate] {session.n_cameras} cameras, {session.n_frames} frames, "
            f"{len(session.keypoint_names)} keypoints ({session.skeleton}) at {session.fps:g} fps")
        rec = triangulate_session(session, tri_o)
        require_points(session, rec, tri_o)  # nothing triangulated: say what to check, write nothing
        if session.meta.get("people"):  # which person was followed when files hold several
            rec.report["people"] = session.meta["people"]
        write_triangulation(rec, out)
        return rec.markers, rec.report

    def read_tri():
        try:
            tri_report = json.loads(tri_out[2].read_text())
        except (OSError, ValueError) as e:
            raise InputError(tri_out[2], f"cannot read stage output ({e}); delete it to recompute") from None
        return read_triangulation(tri_out[1]), tri_report

    # tri_report, not report: ``report`` is the argument that switches report.html on/off
    triangulated, tri_report = stages.run("triangulate", k_tri, tri_out, do_tri, read_tri)
    summary["stages"]["triangulate"] = {k: tri_report[k] for k in ("frames", "keypoints_per_frame", "cameras_count",
                                                               "valid_share", "mean_reproj_error_px",
                                                               "mean_reproj_error_mm", "mean_views_used")}
    summary["stages"]["triangulate"]["cameras_excluded_share"] = {c["name"]: c["excluded_share"]
                                                                  for c in tri_report["cameras"]}
    summary["stages"]["triangulate"]["warnings"] = tri_report.get("warnings", [])  # calibration health, video sizes

    # 2. filter
    k_fil = _key("filter", _opts(fil_o), k_tri)
    fil_out = [out / "filtered.trc", out / "filtered.npz"]
    filtered = stages.run("filter", k_fil, fil_out,
                          lambda: _write_traj(_require_finite(filter_trajectories(triangulated, fil_o), "filter",
                                                              session_dir), out, "filtered"),
                          lambda: _read_traj(fil_out[1]))
    summary["stages"]["filter"] = {"options": _opts(fil_o), "rate_hz": triangulated.rate,
                                   "finite_share": float(np.isfinite(filtered.xyz).all(-1).mean())}

    # 3. merge
    trusted_fp = _fingerprint([trusted]) if trusted is not None else None
    k_mer = _key("merge", _opts(mer_o), k_fil, trusted_fp, trusted_rate_hz, trusted_units)
    mer_out = [out / "markers.trc", out / "markers.npz"]

    def do_merge():
        if trusted is None:
            markers = _pseudo_only(filtered, mer_o, session_dir)
        else:
            trusted_markers = load_trusted(trusted, trusted_rate_hz, trusted_units)
            try:
                markers = merge_markers(filtered, trusted_markers, options=mer_o)
            except InputError as e:  # names, frame or timing of the trusted file do not fit
                raise InputError(trusted, e.problem) from None
        _require_finite(markers, "merge", trusted if trusted is not None else session_dir)
        return _write_traj(markers, out, "markers")  # meta's sample_source array is stored as an array

    markers = stages.run("merge", k_mer, mer_out, do_merge, lambda: _read_traj(mer_out[1]))
    src = markers.meta.get("sample_source")
    summary["stages"]["merge"] = {"trusted": None if trusted is None else str(trusted), "options": _opts(mer_o),
                                  "markers": len(markers.names), "frames": markers.n_frames}
    if src is not None:
        src = np.asarray(src)
        summary["stages"]["merge"]["sample_sources"] = {
            name: float((src == code).mean()) for code, name in ((1, "trusted"), (2, "pseudo"), (3, "filled"),
                                                                 (0, "missing"))}

    result = AnnotateResult(out, triangulated, filtered, markers, timings=stages.timings, skipped=stages.skipped,
                            summary=summary)
    obs = _observation(result, fill_unobserved)
    failure = None
    if biomech:
        try:
            _biomech_stages(result, mass, height, ik_backend, ik_options or {}, resume, progress, log, obs)
        except SimspineError as e:  # keep the front end's outputs and say what stopped the rest
            failure = e
            summary["stages"]["biomech"] = f"failed: {e}"
    else:
        summary["stages"]["biomech"] = "not run (biomech=False)"
    summary["timings_s"] = stages.timings
    summary["skipped"] = stages.skipped
    summary["outputs"] = sorted({p.name for p in out.iterdir() if p.is_file() and not p.name.startswith(".")}
                                | {"summary.json", "summary.txt"} | ({"report.html"} if report else set()))
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=1, default=json_default) + "\n")
    write_text_atomic(out / "summary.txt", format_summary(summary) + "\n")
    for w in summary["observation"]["warnings"]:
        log(f"warning: {w}")
    if report:
        from simspine.annotate_report import write_annotate_report

        write_annotate_report(result, out / "report.html", status=obs)
    if failure is not None:
        raise failure
    return result




_NOTHING_HINTS = {
    "filter": "the filter removed every point: check --cutoff (below the Nyquist frequency), --max-gap and --hampel",
    "merge": "no marker has a position in any frame: check that the trusted markers cover the session's time "
             "span (--trusted-rate, units) and carry SpineTrack-37 or Human3.6M names",
}


def _require_finite(traj: Trajectories, stage: str, source) -> Trajectories:
    """``traj`` if it has at least one finite point; else an :class:`InputError` naming ``source``
    and what to check (a stage never writes an all-NaN output)."""
    if traj.n_frames and np.isfinite(traj.xyz).all(-1).any():
        return traj
    raise InputError(source, f"{stage} produced no valid point; {_NOTHING_HINTS[stage]}")


def _pseudo_only(filtered: Trajectories, o: MergeOptions, source) -> Trajectories:
    """Markers without trusted ones: the filtered keypoints that carry model marker names
    (``source``, the session, is named in the error when none does)."""
    from simspine.skeletons import model_marker_names

    names = model_marker_names(filtered.names, filtered.meta.get("skeleton", "SpineTrack-37"))
    if not names:
        raise InputError(source, "none of the triangulated keypoints has a SpineTrack-37 name "
                               f"({', '.join(filtered.names[:5])}, ...); cannot build model markers")
    sel = filtered.select(names)
    meta = dict(sel.meta)
    meta["merge"] = {"trusted": None, "pseudo_conf": o.pseudo_conf}
    return Trajectories(sel.time, sel.names, sel.xyz, sel.conf * o.pseudo_conf, sel.frame, meta)


def _observation(result: AnnotateResult, fill_unobserved: bool) -> dict:
    """Observed / filled / inferred status of the 37 keypoints per frame
    (:mod:`simspine.observation`); writes ``keypoints37_status.csv`` and puts the coverage in
    the summary. Returns the arrays for the model outputs and the report."""
    from simspine import observation as ob

    ms = ob.marker_status(result.markers, result.triangulated)
    est = ob.frames_estimated(ms, result.markers.names)
    kp = ob.keypoint_status(ms, result.markers.names, None if fill_unobserved else est)
    cov = ob.coverage(kp, est)
    ob.write_status_csv(result.out_dir / "keypoints37_status.csv", result.markers.time, kp, est)
    result.summary["observation"] = {**cov, "fill_unobserved": fill_unobserved, "file": "keypoints37_status.csv"}
    return {"time": result.markers.time, "keypoints": kp, "estimated": est, "coverage": cov,
            "fill_unobserved": fill_unobserved}


def _biomech_stages(result: AnnotateResult, mass, height, ik_backend, ik_options: dict, resume, progress,
                    log, obs: dict | None = None) -> None:
    """scale → IK → FK with the biomechanical core (:func:`simspine.biomech.fitting.run_ik_pipeline`).

    It writes into ``out_dir/model/`` (its own ``summary.json`` and resume state live there) and
    skips its own finished stages when the merged markers and options are unchanged.
    """
    from simspine.biomech.fitting import run_ik_pipeline

    model_dir = result.out_dir / "model"
    t0 = time.perf_counter()
    res = run_ik_pipeline(result.markers, model_dir, height=height, mass=mass, backend=ik_backend,
                          resume=resume, progress=progress, **ik_options)
    wall = time.perf_counter() - t0
    t = dict(res.timings or {})
    for name, key in (("scale", "scaling"), ("ik", "ik"), ("fk", "fk")):
        result.timings[name] = float(t.get(key, 0.0))
    result.timings["biomech other"] = max(0.0, wall - sum(result.timings[n] for n in ("scale", "ik", "fk")))
    result.keypoints = res.keypoints
    result.coordinates = res.coordinates
    result.rotations = res.rotations
    if obs is not None:  # NaN where too few markers (unless filled), status arrays and notes
        from simspine.observation import write_model_outputs

        result.keypoints, result.rotations = write_model_outputs(
            model_dir, res.keypoints, res.rotations, obs["keypoints"], obs["estimated"], obs["coverage"],
            obs["fill_unobserved"])
    sc = res.scaling or {}
    result.summary["stages"]["scale"] = {"factors": sc.get("factors"), "height_estimate_m": sc.get("height_estimate_m"),
                                         "mass_kg": sc.get("mass_kg"), "warnings": sc.get("warnings", [])}
    if res.ik is not None:
        result.summary["stages"]["ik"] = {"backend": res.ik.backend,
                                          "marker_rms_mean_mm": float(np.nanmean(res.ik.rms) * 1000),
                                          "marker_error_max_mm": float(np.nanmax(res.ik.max) * 1000),
                                          "frames_per_s": float(res.ik.fps)}
    else:
        result.summary["stages"]["ik"] = "reused (up to date)"
    result.summary["stages"]["fk"] = {"keypoints": "model/keypoints37.trc", "rotations": "model/rotations.csv"}
    result.summary["stages"]["plausibility"] = _model_checks(model_dir, res)
    result.summary["model_files"] = {k: f"model/{Path(v).name}" for k, v in (res.files or {}).items()}


def _model_checks(model_dir: Path, res) -> dict:
    """The biomechanical core's plausibility warnings and undetermined coordinates (from
    ``model/summary.json``), for the annotate summary and report: ``warnings`` holds each
    plausibility message and one line naming the undetermined coordinates."""
    try:
        ms = json.loads((model_dir / "summary.json").read_text())
    except (OSError, ValueError):
        ms = {}
    plaus = [w for w in ms.get("plausibility") or [] if isinstance(w, dict)]
    if "plausibility" in ms:
        warnings = [str(w.get("message", "")) for w in plaus]
    else:  # no readable summary: the result's warnings less the scaling stage's own
        scaling_w = set((res.scaling or {}).get("warnings") or [])
        warnings = [w for w in res.warnings or [] if w not in scaling_w]
    und = ms.get("undetermined_coordinates") or {}
    coords = list(und.get("coordinates") or [])
    if coords:
        held = und.get("held_at") or {}
        warnings.append(f"{len(coords)} coordinate(s) no marker moves are held at the neutral pose by a weak prior, so "
                        "their values come from the prior, not the data: "
                        + ", ".join(f"{c} {held[c]:g}" if isinstance(held.get(c), (int, float)) else c for c in coords)
                        + f" ({und.get('units', 'deg')}); add markers on these bodies to measure them")
    return {"warnings": warnings, "checks": plaus, "undetermined_coordinates": coords,
            "held_at": und.get("held_at") or {}}


def format_summary(summary: dict) -> str:
    """Human-readable summary of an annotate run."""
    lines = [f"simspine annotate: {summary['session']} -> {summary['out_dir']}",
             f"frame: {summary['frame']}", ""]
    t = summary["stages"].get("triangulate")
    if t:
        lines.append(f"triangulate: {t['frames']} frames x {t['keypoints_per_frame']} keypoints, "
                     f"{t['cameras_count']} cameras; valid {100 * t['valid_share']:.1f}%, mean reprojection "
                     f"error {_fmt(t['mean_reproj_error_px'])} px = {_fmt(t['mean_reproj_error_mm'])} mm")
        lines.append("  camera excluded share: " + ", ".join(f"{k} {100 * v:.1f}%"
                                                            for k, v in t["cameras_excluded_share"].items()))
        lines.extend(f"  warning: {w}" for w in t.get("warnings") or [])
    f = summary["stages"].get("filter")
    if f:
        o = f["options"]
        lines.append(f"filter: Butterworth order {o['order']} x2 (zero phase), cutoff {o['cutoff_hz']} Hz at "
                     f"{f['rate_hz']:.3g} Hz; gaps <= {o['max_gap']} frames filled; finite {100 * f['finite_share']:.1f}%")
    m = summary["stages"].get("merge")
    if m:
        src = m.get("sample_sources")
        lines.append(f"merge: {m['markers']} markers x {m['frames']} frames, trusted: {m['trusted'] or 'none'}"
                     + ("" if not src else "; samples " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in src.items())))
    sc = summary["stages"].get("scale")
    if isinstance(sc, dict) and sc.get("factors"):
        lines.append(f"scale: height estimate {_fmt(sc.get('height_estimate_m'))} m, mass {_fmt(sc.get('mass_kg'))} kg; "
                     "factors " + ", ".join(f"{k} {v:.3f}" for k, v in sc["factors"].items()))
        lines.extend(f"  warning: {w}" for w in sc.get("warnings") or [])
    ik = summary["stages"].get("ik")
    if isinstance(ik, dict):
        lines.append(f"ik: {ik['backend']}, marker RMS mean {ik['marker_rms_mean_mm']:.2f} mm, max error "
                     f"{ik['marker_error_max_mm']:.2f} mm, {ik['frames_per_s']:.1f} frames/s")
    fk = summary["stages"].get("fk")
    if isinstance(fk, dict):
        lines.append("fk: " + ", ".join(f"{k} in {v}" for k, v in fk.items()))
    pl = summary["stages"].get("plausibility")
    if isinstance(pl, dict):
        lines.append(f"plausibility: {len(pl.get('checks') or [])} warning(s), undetermined coordinates: "
                     + (", ".join(pl.get("undetermined_coordinates") or []) or "none"))
        lines.extend(f"  warning: {w}" for w in pl.get("warnings") or [])
    for name in ("scale", "ik", "fk", "biomech"):
        v = summary["stages"].get(name)
        if isinstance(v, str):
            lines.append(f"{name}: {v}")
    ob = summary.get("observation")
    if ob:
        lines.append("observed share of frames (spine regions): "
                     + ", ".join(f"{r} {100 * v['observed']:.0f}% (filled {100 * v['filled']:.0f}%, inferred "
                                 f"{100 * v['inferred']:.0f}%)" for r, v in ob["regions"].items())
                     + f"; frames estimated {100 * ob['frames_estimated_share']:.0f}%"
                     + (" (others kept, --fill-unobserved)" if ob.get("fill_unobserved") else
                        (" (others NaN)" if ob["frames_estimated_share"] < 1 else "")))
        lines.extend(f"  warning: {w}" for w in ob["warnings"])
    lines.append("")
    lines.append("timings: " + ", ".join(f"{k} {v:.2f} s" for k, v in summary.get("timings_s", {}).items())
                 + (f" (skipped, up to date: {', '.join(summary['skipped'])})" if summary.get("skipped") else ""))
    lines.append("outputs: " + ", ".join(summary.get("outputs", [])))
    return "\n".join(lines)


def _refine_stage(stages: _Stages, session_dir: Path, out: Path, calibration, fps, person, options, summary: dict,
                  log) -> Path:
    """Stage ``calibrate``: :func:`simspine.multiview.calibration_refine.refine_calibration` on the
    session, written to ``calibration_refined.toml`` (+ ``.json``: figures before/after); returns
    the refined calibration's path."""
    from simspine.io.session import load_session, session_inputs
    from simspine.multiview import calibration_refine as cr

    o = options if isinstance(options, cr.RefineOptions) else cr.RefineOptions()
    paths = [out / "calibration_refined.toml", out / "calibration_refined.json"]
    key = _key("calibrate", _opts(o), _fingerprint(session_inputs(session_dir, calibration)), fps, person)

    def compute():
        session = load_session(session_dir, calibration, fps, person)
        if calibration is not None and session_dir.is_file():
            session = cr.with_calibration(session, calibration)
        res = cr.refine_calibration(session, o, log=lambda m: log(f"[calibrate] {m}"))
        log(cr.format_refinement(res))
        cr.write_refined(paths[0], res, session)
        info = {"fixed_camera": res.fixed_camera, "scale_camera": res.scale_camera,
                "rotation_change_deg": res.rotation_change_deg, "centre_change_mm": res.centre_change_mm,
                "median_px_before": {c["name"]: c["median_px"] for c in res.before},
                "median_px_after": {c["name"]: c["median_px"] for c in res.after}}
        write_text_atomic(paths[1], json.dumps(info, indent=1) + "\n")
        return info

    def read():
        try:
            return json.loads(paths[1].read_text())
        except (OSError, ValueError) as e:
            raise InputError(paths[1], f"cannot read stage output ({e}); delete it to recompute") from None

    summary["stages"]["calibrate"] = stages.run("calibrate", key, paths, compute, read)
    return paths[0]


def _fmt(v) -> str:
    return "n/a" if v is None else f"{v:.2f}"
