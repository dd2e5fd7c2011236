"""Self-contained HTML reports (plotly, with plotly.js embedded inline: no network needed).

The pieces of the ``simspine demo`` report (assembled by :func:`simspine.demo.write_report`):
summary tables, error per keypoint, true versus recovered angle traces, and an animated 3D view
of the true and recovered skeletons (slider and play button), put on one page by :func:`write_html`. Coordinates in the 3D view are OpenSim's ground frame
(Y up, metres), the frame of the arrays passed in.
"""

from __future__ import annotations

import html
import os
from pathlib import Path

import numpy as np

from simspine.fileio import write_text_atomic
from simspine.skeletons import spinetrack37

REGION_COLOURS = {"lumbar": "#d62728", "thoracic": "#ff7f0e", "cervical": "#9467bd", "body": "#1f77b4"}


def table_html(title: str, headers: list[str], rows: list[list]) -> str:
    """An HTML table with a heading; floats get 2 decimals (none from 100 up), NaN shows as a dash."""
    def cell(v):
        if isinstance(v, float):
            if not np.isfinite(v):
                return "—"
            return f"{v:.0f}" if abs(v) >= 100 else f"{v:.2f}"
        return html.escape(str(v))

    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<h2>{html.escape(title)}</h2><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def keypoint_error_figure(per_keypoint_mm: np.ndarray):
    """Bar chart of the mean error (mm) of each SpineTrack-37 keypoint, coloured by region."""
    import plotly.graph_objects as go

    sk = spinetrack37()
    colours = [REGION_COLOURS.get(r, "#7f7f7f") for r in sk.regions]
    vals = [None if not np.isfinite(v) else float(v) for v in np.asarray(per_keypoint_mm, float)]
    fig = go.Figure(go.Bar(x=list(sk.names), y=vals, marker_color=colours,
                           hovertemplate="%{x}: %{y:.1f} mm<extra></extra>"))
    fig.update_layout(title="Mean 3D error per keypoint (mm; colour = region: lumbar red, thoracic orange, "
                            "cervical purple, body blue)", yaxis_title="mm", height=420, margin=dict(t=60, b=120))
    return fig


def angle_traces_figure(time: np.ndarray, truth_deg: dict[str, np.ndarray], pred_deg: dict[str, np.ndarray],
                        pred_time: np.ndarray | None = None, cols: int = 3):
    """True (black) and recovered (red) angle traces, one panel per angle (degrees)."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    names = list(truth_deg)
    rows = int(np.ceil(len(names) / cols))
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=names, vertical_spacing=0.12 if rows < 4 else 0.06)
    pt = time if pred_time is None else pred_time
    for i, n in enumerate(names):
        r, c = i // cols + 1, i % cols + 1
        fig.add_trace(go.Scatter(x=time, y=truth_deg[n], name="true", line=dict(color="black"),
                                 legendgroup="true", showlegend=i == 0), r, c)
        if n in pred_deg:
            fig.add_trace(go.Scatter(x=pt, y=pred_deg[n], name="recovered", line=dict(color="#d62728", dash="dash"),
                                     legendgroup="rec", showlegend=i == 0), r, c)
        fig.update_yaxes(title_text="deg", row=r, col=1)
    fig.update_xaxes(title_text="time (s)", row=rows)
    fig.update_layout(title="Joint angles: true vs recovered (degrees)", height=260 * rows + 80)
    return fig


def _bone_lines(kp: np.ndarray):
    """x, y, z lists of the skeleton's bones from (37, 3) keypoints for one plotly line trace:
    each bone is parent, child, gap (None); missing coordinates are gaps too."""
    bones = spinetrack37().bones()
    return tuple([v for p, c in bones for v in (_num(kp[p, k]), _num(kp[c, k]), None)] for k in range(3))


def _num(v) -> float | None:
    return float(v) if np.isfinite(v) else None


def skeleton_figure(time: np.ndarray, truth_kp: np.ndarray, pred_kp: np.ndarray | None = None,
                    max_frames: int = 80, labels: tuple[str, str] = ("true", "recovered"), title: str | None = None):
    """Animated 3D skeletons over time (true grey, recovered red), with a slider and play button.

    ``truth_kp``/``pred_kp``: (T, 37, 3) metres, OpenSim ground frame (Y up); plotted with Y up.
    At most ``max_frames`` evenly spaced frames are animated (keeps the HTML small). ``labels``
    names the grey and the red skeleton, ``title`` replaces the figure's title.
    """
    import plotly.graph_objects as go

    T = len(time)
    idx = np.unique(np.linspace(0, T - 1, min(T, max_frames)).round().astype(int))
    sets = [(labels[0], truth_kp, "#555555")] + ([(labels[1], pred_kp, "#d62728")] if pred_kp is not None else [])

    def traces(i):
        out = []
        for name, kp, colour in sets:
            x, y, z = _bone_lines(kp[i])
            # plot (x, z, y): plotly's 3D view is Z up, the model's vertical is Y
            out.append(go.Scatter3d(x=x, y=z, z=y, mode="lines", line=dict(color=colour, width=5), name=name,
                                    legendgroup=name))
            pts = kp[i]
            out.append(go.Scatter3d(x=pts[:, 0], y=pts[:, 2], z=pts[:, 1], mode="markers",
                                    marker=dict(size=3, color=colour), name=name, legendgroup=name,
                                    showlegend=False, text=list(spinetrack37().names),
                                    hovertemplate="%{text}<extra>" + name + "</extra>"))
        return out

    allp = np.concatenate([kp[idx].reshape(-1, 3) for _, kp, _ in sets])
    allp = allp[np.isfinite(allp).all(1)]
    lo, hi = allp.min(0), allp.max(0)
    centre, half = (lo + hi) / 2, float((hi - lo).max() / 2 + 0.1)
    rng = [[centre[k] - half, centre[k] + half] for k in range(3)]
    frames = [go.Frame(data=traces(i), name=f"{time[i]:.2f}") for i in idx]
    fig = go.Figure(data=traces(idx[0]), frames=frames)
    steps = [dict(method="animate", label=f"{time[i]:.2f}",
                  args=[[f"{time[i]:.2f}"], dict(mode="immediate", frame=dict(duration=0, redraw=True),
                                                 transition=dict(duration=0))]) for i in idx]
    dt = float(np.median(np.diff(time[idx]))) if len(idx) > 1 else 0.05
    fig.update_layout(
        title=title or "3D skeleton over time (true grey, recovered red; metres, OpenSim ground frame shown Y up)",
        height=650,
        scene=dict(xaxis=dict(title="x (m)", range=rng[0]), yaxis=dict(title="z (m)", range=rng[2]),
                   zaxis=dict(title="y up (m)", range=rng[1]), aspectmode="cube",
                   camera=dict(eye=dict(x=1.0, y=1.0, z=0.45))),
        updatemenus=[dict(type="buttons", showactive=False, x=0.05, y=0.02, xanchor="left", yanchor="bottom",
                          buttons=[dict(label="Play", method="animate",
                                        args=[None, dict(frame=dict(duration=int(dt * 1000), redraw=True),
                                                         fromcurrent=True, transition=dict(duration=0))]),
                                   dict(label="Pause", method="animate",
                                        args=[[None], dict(mode="immediate", frame=dict(duration=0, redraw=False))])])],
        sliders=[dict(active=0, steps=steps, currentvalue=dict(prefix="t = ", suffix=" s"), x=0.15, len=0.8)],
    )
    return fig


def write_html(path: str | os.PathLike, title: str, sections: list) -> Path:
    """Write a self-contained page: ``sections`` holds HTML strings and plotly figures, in order.

    plotly.js is embedded once, inline, in the first figure (the page needs no network).
    """
    parts, js_done = [], False
    for s in sections:
        if isinstance(s, str):
            parts.append(s)
        else:
            parts.append(s.to_html(full_html=False, include_plotlyjs=not js_done, auto_play=False))
            js_done = True
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:1300px}} table{{border-collapse:collapse;margin:1em 0}}
td,th{{border:1px solid #ccc;padding:3px 8px;text-align:right}} th{{background:#f3f3f3}}
td:first-child{{text-align:left}} .note{{color:#555}}</style></head>
<body><h1>{html.escape(title)}</h1>
{''.join(parts)}
</body></html>
"""
    return write_text_atomic(path, page)
