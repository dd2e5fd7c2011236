"""``report.html`` of ``simspine annotate`` (``simspine.annotate_report``): per-camera reprojection
error over time, every warning of the run, coverage per region, and an offline page that renders
in headless Chromium with no console errors."""

import re
import subprocess

import numpy as np
import pytest
from test_demo_report import CHROMIUM, HOOK
from test_observation import sessions  # noqa: F401  (the synthetic sessions fixture)

from simspine import annotate_report as ar
from simspine import observation as ob


def test_camera_error_over_time():
    T, K, C = 3, 4, 2
    err = np.arange(T * K * C, dtype=float).reshape(T, K, C)
    used = np.ones((T, K, C), bool)
    used[1, :, 1] = False          # camera 2 not used in frame 1
    used[2, :2, 0] = False         # camera 1 used for keypoints 2, 3 only in frame 2
    out = ar.camera_error_over_time(err, used)
    assert out.shape == (T, C)
    assert out[0, 0] == np.median(err[0, :, 0]) and np.isnan(out[1, 1])
    assert out[2, 0] == np.median(err[2, 2:, 0])


def test_run_warnings_collects_every_stage():
    summary = {"stages": {"scale": {"warnings": ["left/right thigh differ by 20%"]}, "ik": "reused",
                          "biomech": "failed: no markers"},
               "observation": {"warnings": ["the lumbar spine was observed in 12% of frames: ..."]}}
    tri = {"warnings": ["camera 58860488 stands out: median 9.1 px vs 2.3 px"]}
    w = ar.run_warnings(summary, tri)
    assert w == ["triangulate: camera 58860488 stands out: median 9.1 px vs 2.3 px",
                 "scale: left/right thigh differ by 20%", "biomech: failed: no markers",
                 "coverage: the lumbar spine was observed in 12% of frames: ..."]


def _render(path, tmp_path):
    """(errors JSON, number of SVG plots, number of canvases) of ``path`` in headless Chromium."""
    page = tmp_path / "hooked.html"
    page.write_text(path.read_text().replace("<head>", "<head>" + HOOK, 1))
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--enable-unsafe-swiftshader", f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=15000",
           "--dump-dom", page.as_uri()]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    m = re.search(r"ERRORS=(\[.*?\]);PLOTS=(\d+);GL=(\d+)", out.stdout)
    assert m, f"the page did not finish loading; chromium said: {out.stderr[-2000:]}"
    return m.group(1), int(m.group(2)), int(m.group(3))


@pytest.fixture(scope="module")
def back_report(sessions, tmp_path_factory):  # noqa: F811
    """annotate (front end) on the rig that rarely sees the back, with its report; then the same
    report with model keypoints and rotations stood in (the filtered keypoints and smooth angles),
    so that every section is drawn without running IK."""
    from simspine.annotate import annotate
    from simspine.annotate_report import write_annotate_report
    from simspine.biomech.fk import SpineRotations
    from simspine.trajectories import Trajectories

    root, paths, hide = sessions
    out = tmp_path_factory.mktemp("report")
    res = annotate(paths["back"], out, biomech=False, progress=False, log=lambda m: None)
    f = res.filtered
    res.keypoints = Trajectories(f.time, f.names, f.xyz + 0.01, f.conf, f.frame)
    names = [n for n, _ in ar.ANGLES]
    deg = 10 * np.sin(2 * np.pi * f.time[:, None] + np.arange(len(names)))
    res.rotations = SpineRotations(f.time, names, deg, ["lumbar5"], np.zeros((f.n_frames, 1, 3)))
    status = {"time": res.markers.time, "keypoints": ob.keypoint_status(ob.marker_status(res.markers, f),
                                                                        res.markers.names),
              "estimated": np.ones(f.n_frames, bool), "coverage": res.summary["observation"],
              "fill_unobserved": False}
    full = write_annotate_report(res, out / "report_full.html", status)
    return res, out / "report.html", full


def test_report_states_coverage_and_warns(back_report):
    res, path, full = back_report
    cov = res.summary["observation"]
    text = path.read_text()
    assert not re.search(r"<script[^>]*\ssrc=", text)  # plotly.js inline: offline
    for r in ("lumbar", "thoracic"):
        share = 100 * cov["regions"][r]["observed"]
        assert share < 20
        assert f"the {r} spine was observed in {share:.0f}% of frames: its motion is mostly inferred" in text
    # the coverage table: region, observed %, filled %, inferred %, not estimated %
    row = re.search(r"<tr><td>lumbar</td><td>([\d.]+)</td><td>([\d.]+)</td><td>([\d.]+)</td><td>([\d.]+)</td>", text)
    assert row and float(row.group(1)) == pytest.approx(100 * cov["regions"]["lumbar"]["observed"], abs=0.01)
    assert sum(float(v) for v in row.groups()) == pytest.approx(100, abs=0.05)
    assert "Reprojection error per camera over time" in text and "3D keypoints over time" in text
    assert "not computed (the model stages did not run)" in text
    assert text.count("Plotly.newPlot") == 3  # coverage, camera errors, 3D view
    full_text = full.read_text()
    assert full_text.count("Plotly.newPlot") == 4 and "Spine and neck angles" in full_text
    assert "inferred by the model" in full_text  # the shading's legend


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_report_renders_in_headless_chromium(back_report, tmp_path):
    _, _, full = back_report
    errors, plots, gl = _render(full, tmp_path)
    assert errors == "[]", f"console errors: {errors}"
    assert plots >= 3  # coverage, angles and camera errors drew their SVG
    assert gl >= 1     # the 3D view drew into a WebGL canvas
