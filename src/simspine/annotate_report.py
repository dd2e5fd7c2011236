"""``report.html`` of ``simspine annotate``: a real session's run on one offline page (no truth needed).

Sections: the run's warnings (triangulation report, scaling, coverage), coverage (share of frames
each spine region and keypoint was observed, filled or inferred; :mod:`simspine.observation`), the
spine and neck angles over time from ``model/rotations`` shaded where their region was not
observed, each camera's reprojection error over time (median over the keypoints the camera was
used for, from ``triangulated.npz``'s ``view_error``/``views_used``), and an animated 3D view of
the model's keypoints with the triangulated ones. plotly.js is embedded inline
(:func:`simspine.report.write_html`). Angles in degrees, positions in metres, OpenSim's ground
frame (Y up).
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path

import numpy as np

from simspine import observation as ob
from simspine import report as rp
from simspine.skeletons import spinetrack37

#: angles drawn over time: (rotations intervertebral name, spine region shading it)
ANGLES = (("L5_S1_Flex_Ext", "lumbar"), ("L5_S1_Lat_Bending", "lumbar"), ("L5_S1_axial_rotation", "lumbar"),
          ("L1_T12_Flex_Ext", "lumbar"), ("L1_T12_Lat_Bending", "lumbar"), ("L1_T12_axial_rotation", "lumbar"),
          ("neck_flexion", "cervical"), ("neck_bending", "cervical"), ("neck_rotation", "cervical"))
SHADE = {ob.FILLED: ("filled", "#f2c744"), ob.INFERRED: ("inferred by the model", "#9e9e9e"),
         ob.NONE: ("not estimated (too few markers)", "#e57373")}


def run_warnings(summary: dict, tri_report: dict | None = None) -> list[str]:
    """Every warning of an annotate run, each once, in stage order: the triangulation report's
    ``warnings``, the summary's own ``warnings``, each stage's ``warnings`` and the coverage ones."""
    found: list[str] = []

    def add(ws, where):
        for w in ws or []:
            text = w if isinstance(w, str) else json.dumps(w)
            line = f"{where}: {text}"
            if line not in found:
                found.append(line)

    if tri_report:
        add(tri_report.get("warnings"), "triangulate")
        add((tri_report.get("calibration_health") or {}).get("warnings")
            if isinstance(tri_report.get("calibration_health"), dict) else None, "calibration")
    add(summary.get("warnings"), "run")
    for name, st in (summary.get("stages") or {}).items():
        if isinstance(st, dict):
            add(st.get("warnings"), name)
        elif isinstance(st, str) and st.startswith("failed"):
            add([st], name)
    add((summary.get("observation") or {}).get("warnings"), "coverage")
    return found


def camera_error_over_time(view_error: np.ndarray, views_used: np.ndarray) -> np.ndarray:
    """(T, C) median reprojection error (px) of each camera per frame over the keypoints it was
    used for (NaN where it was used for none)."""
    e = np.where(np.asarray(views_used, bool), np.asarray(view_error, float), np.nan)
    T, _, C = e.shape
    out = np.full((T, C), np.nan)
    has = np.isfinite(e).any(1)
    for c in range(C):
        rows = has[:, c]
        if rows.any():
            out[rows, c] = np.nanmedian(e[rows, :, c], axis=1)
    return out


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    from simspine.multiview.filtering import finite_runs

    return [(int(a), int(b)) for a, b in finite_runs(mask)]


def coverage_figure(cov: dict):
    """Stacked bars: share of frames each keypoint was observed / filled / inferred / not estimated."""
    import plotly.graph_objects as go

    names = list(spinetrack37().names)
    colours = {"observed": "#2ca02c", "filled": "#f2c744", "inferred": "#9e9e9e", "none": "#e57373"}
    fig = go.Figure([go.Bar(x=names, y=[100 * cov["keypoints"][n][s] for n in names], name=s,
                            marker_color=colours[s], hovertemplate="%{x}: %{y:.0f}% " + s + "<extra></extra>")
                     for s in ("observed", "filled", "inferred", "none")])
    fig.update_layout(barmode="stack", height=420, margin=dict(t=60, b=120), yaxis_title="% of frames",
                      title="Where each keypoint comes from (% of frames)")
    return fig


def angles_figure(time: np.ndarray, names: list[str], deg: np.ndarray, region_status: np.ndarray, cols: int = 3):
    """Spine and neck angles over time (deg), one panel each, the background shaded where the
    angle's region was filled, inferred or not estimated."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    present = [(n, r) for n, r in ANGLES if n in names]
    rows = max(1, int(np.ceil(len(present) / cols)))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[n for n, _ in present], vertical_spacing=0.12)
    dt = float(np.median(np.diff(time))) if len(time) > 1 else 0.02
    shown = set()
    for i, (n, region) in enumerate(present):
        r, c = i // cols + 1, i % cols + 1
        y = deg[:, names.index(n)]
        fin = y[np.isfinite(y)]
        lo, hi = (float(fin.min()), float(fin.max())) if fin.size else (-1.0, 1.0)
        pad = max(0.5, 0.1 * (hi - lo))
        lo, hi = lo - pad, hi + pad
        st = region_status[:, ob.REGIONS.index(region)]
        for code, (label, colour) in SHADE.items():
            m = st == code
            if not m.any():
                continue
            fig.add_trace(go.Bar(x=time[m], y=np.full(m.sum(), hi - lo), base=lo, width=dt, marker_color=colour,
                                 marker_line_width=0, opacity=0.35, name=label, legendgroup=label,
                                 showlegend=label not in shown, hoverinfo="skip"), r, c)
            shown.add(label)
        fig.add_trace(go.Scatter(x=time, y=y, mode="lines", line=dict(color="#d62728"), name="model (IK)",
                                 legendgroup="model", showlegend=i == 0,
                                 hovertemplate="%{x:.2f} s: %{y:.2f} deg<extra>" + n + "</extra>"), r, c)
        fig.update_yaxes(range=[lo, hi], row=r, col=c)
        if c == 1:
            fig.update_yaxes(title_text="deg", row=r, col=c)
    fig.update_xaxes(title_text="time (s)", row=rows)
    fig.update_layout(title="Spine and neck angles (deg; lumbar from the lumbar region's status, neck from the "
                            "cervical one; unshaded = observed)", height=260 * rows + 100, bargap=0,
                      barmode="overlay")
    return fig


def camera_error_figure(time: np.ndarray, err: np.ndarray, cameras: list[str]):
    """Each camera's median reprojection error per frame (px)."""
    import plotly.graph_objects as go

    fig = go.Figure([go.Scatter(x=time, y=err[:, c], mode="lines", name=str(name),
                                hovertemplate="%{x:.2f} s: %{y:.2f} px<extra>" + html.escape(str(name)) + "</extra>")
                     for c, name in enumerate(cameras)])
    fig.update_layout(title="Reprojection error per camera over time (median over the keypoints each camera was "
                            "used for, px; gaps: camera not used)", xaxis_title="time (s)", yaxis_title="px",
                      height=380)
    return fig


def _as37(traj) -> np.ndarray:
    """(T, 37, 3) from trajectories named in SpineTrack-37 (NaN for keypoints they lack)."""
    names = list(spinetrack37().names)
    out = np.full((traj.n_frames, 37, 3), np.nan)
    for k, n in enumerate(names):
        if n in traj.names:
            out[:, k] = traj.xyz[:, traj.names.index(n)]
    return out


def _rotations_arrays(rotations):
    if rotations is None:
        return None
    return list(rotations.intervertebral_names), np.asarray(rotations.intervertebral_deg, float)


def write_annotate_report(result, path: str | os.PathLike, status: dict) -> Path:
    """Write the report of an :class:`simspine.annotate.AnnotateResult` to ``path``.

    ``status``: the observation arrays of the run (``time``, ``keypoints`` (T, 37) codes,
    ``estimated``, ``coverage``), as :func:`simspine.annotate._observation` returns them.
    """
    out = Path(result.out_dir)
    summary = result.summary
    tri_report = None
    try:
        tri_report = json.loads((out / "triangulated_report.json").read_text())
    except (OSError, ValueError):
        pass
    warnings = run_warnings(summary, tri_report)
    cov = status["coverage"]
    kp_status = status["keypoints"]
    reg_status = ob.region_status(kp_status)
    time = np.asarray(status["time"], float)

    t = summary["stages"].get("triangulate") or {}
    intro = (f"<p class='note'>Session <b>{html.escape(str(summary.get('session')))}</b>: {t.get('frames', '?')} frames, "
             f"{t.get('cameras_count', '?')} cameras. Positions in metres, OpenSim's ground frame (Y up); angles in "
             "degrees. Every keypoint of every frame is labelled <i>observed</i> (triangulated, or a trusted marker), "
             "<i>filled</i> (interpolated over a short gap) or <i>inferred</i> (from the model only); frames with "
             f"fewer than {ob.MIN_TRUNK_MARKERS} pelvis/trunk markers are not estimated"
             + (" (kept, --fill-unobserved)" if status.get("fill_unobserved") else " (NaN in the outputs)")
             + ". Per frame: <code>keypoints37_status.csv</code>.</p>")
    warn_html = ("<h2>Warnings</h2>" + ("<ul>" + "".join(f"<li>{html.escape(w)}</li>" for w in warnings) + "</ul>"
                                        if warnings else "<p>none</p>"))
    reg_rows = [[r, 100 * cov["regions"][r]["observed"], 100 * cov["regions"][r]["filled"],
                 100 * cov["regions"][r]["inferred"], 100 * cov["regions"][r]["none"]] for r in ob.REGIONS]
    sections = [intro, warn_html,
                rp.table_html(f"Coverage of the spine regions (% of {cov['frames']} frames; frames estimated "
                              f"{100 * cov['frames_estimated_share']:.0f}%)",
                              ["region", "observed", "filled", "inferred", "not estimated"], reg_rows),
                f"<p class='note'>{html.escape(cov.get('rule', ''))}.</p>",
                coverage_figure(cov)]
    rots = _rotations_arrays(result.rotations)
    if rots is not None:
        names, deg = rots
        rt = np.asarray(result.rotations.time, float)
        rs = reg_status if len(rt) == len(time) else np.full((len(rt), len(ob.REGIONS)), ob.OBSERVED, np.int8)
        sections.append(angles_figure(rt, names, deg, rs))
    else:
        sections.append("<h2>Spine and neck angles</h2><p>not computed (the model stages did not run)</p>")
    tri_npz = out / "triangulated.npz"
    if tri_npz.is_file():
        with np.load(tri_npz, allow_pickle=False) as z:
            if "view_error" in z.files and "views_used" in z.files:
                err = camera_error_over_time(z["view_error"], z["views_used"])
                meta = json.loads(str(z["meta_json"])) if "meta_json" in z.files else {}
                cams = meta.get("cameras") or (meta.get("meta") or {}).get("cameras") or \
                    [f"camera {c + 1}" for c in range(err.shape[1])]
                sections.append(camera_error_figure(np.asarray(z["time"], float), err, list(cams)))
    tri37 = _as37(result.filtered)
    if result.keypoints is not None and np.isfinite(result.keypoints.xyz).any():
        sections.append(rp.skeleton_figure(result.keypoints.time, result.keypoints.xyz, tri37
                                           if len(tri37) == result.keypoints.n_frames else None,
                                           labels=("model (FK)", "triangulated, filtered"),
                                           title="3D keypoints over time: model grey, triangulated (filtered) red "
                                                 "(m, OpenSim ground frame shown Y up)"))
    elif np.isfinite(tri37).any():
        sections.append(rp.skeleton_figure(result.filtered.time, tri37, None, labels=("triangulated, filtered", ""),
                                           title="3D keypoints over time: triangulated and filtered (m, OpenSim "
                                                 "ground frame shown Y up)"))
    from simspine.annotate import format_summary

    sections.append("<h2>Summary</h2><pre style='white-space:pre-wrap'>" + html.escape(format_summary(summary))
                    + "</pre>")
    return rp.write_html(path, "simspine annotate report", sections)
