"""The demo's HTML report renders in headless Chromium with no console errors.

The report is built from a real synthetic session and a perturbed copy of its truth standing in
for the pipeline's output (the report code is what is under test here; the pipeline has its own
tests and the closed-loop tests run it)."""

import re
import shutil
import subprocess

import numpy as np
import pytest

from simspine.synth.detector import DetectorConfig
from simspine.synth.evaluate import closed_loop_errors
from simspine.synth.loop import LoopResult, Recovered
from simspine.synth.session import SynthConfig, make_session

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# Collects uncaught errors, unhandled rejections and console.error calls, then writes them into the
# DOM once the page has loaded and plotly has had time to draw.
HOOK = """<script>
window.__errs = [];
window.addEventListener('error', function (e) { window.__errs.push('error: ' + e.message); });
window.addEventListener('unhandledrejection', function (e) { window.__errs.push('rejection: ' + e.reason); });
(function () { var ce = console.error; console.error = function () {
  window.__errs.push('console.error: ' + Array.prototype.join.call(arguments, ' ')); ce.apply(console, arguments); }; })();
window.addEventListener('load', function () { setTimeout(function () {
  var d = document.createElement('pre'); d.id = 'simspine-errors';
  d.textContent = 'ERRORS=' + JSON.stringify(window.__errs) + ';PLOTS=' + document.querySelectorAll('.main-svg').length
    + ';GL=' + document.querySelectorAll('.gl-container canvas, canvas').length;
  document.body.appendChild(d); }, 3000); });
</script>"""


def fake_result(seconds=1.0) -> LoopResult:
    s = make_session(SynthConfig(action="twist", seconds=seconds, seed=5,
                                 detector=DetectorConfig(noise_px=0, outlier_rate=0)))
    tr = s.truth
    rng = np.random.default_rng(0)
    kp = tr.keypoints.xyz + rng.normal(0, 0.005, tr.keypoints.xyz.shape)
    coords = tr.coordinates + rng.normal(0, 0.005, tr.coordinates.shape)
    rec = Recovered(tr.keypoints.time, kp, tr.coordinate_names, coords, tr.keypoints.time, kp,
                    {"triangulate": 0.1, "inverse kinematics": 1.0}, len(kp))
    err = closed_loop_errors(tr.keypoints.time, tr.keypoints.xyz, tr.coordinate_names, tr.coordinates,
                             rec.time, rec.keypoints, rec.coordinate_names, rec.coordinates, rec.tri_time, kp)
    return LoopResult(s, rec, err, 0.5)


def test_report_contents(tmp_path):
    from simspine.demo import write_report

    res = fake_result()
    assert 3 < res.errors.spine_mm < 12  # 5 mm per axis noise -> about 8 mm
    path = write_report(res, tmp_path / "report.html")
    text = path.read_text()
    assert not re.search(r"<script[^>]*\ssrc=", text)  # plotly.js inline: no script is fetched
    assert len(text) > 3_000_000  # ... and it is indeed in the page
    assert text.count("Plotly.newPlot") == 3
    for needle in ("Lumbar intervertebral angles", "Neck angles", "L5_S1_Flex_Ext", "Speed", "frames/s"):
        assert needle in text


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_report_renders_in_headless_chromium(tmp_path):
    from simspine.demo import write_report

    path = write_report(fake_result(), tmp_path / "report.html")
    page = tmp_path / "hooked.html"
    page.write_text(path.read_text().replace("<head>", "<head>" + HOOK, 1))
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           "--enable-unsafe-swiftshader",  # software WebGL for the 3D view (no GPU here)
           f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=15000", "--dump-dom",
           page.as_uri()]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    m = re.search(r"ERRORS=(\[.*?\]);PLOTS=(\d+);GL=(\d+)", out.stdout)
    assert m, f"the page did not finish loading; chromium said: {out.stderr[-2000:]}"
    assert m.group(1) == "[]", f"console errors: {m.group(1)}"
    assert int(m.group(2)) >= 2  # the 2D figures drew their SVG
    assert int(m.group(3)) >= 1  # the 3D view drew into a WebGL canvas
