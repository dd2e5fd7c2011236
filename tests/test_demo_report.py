"""``simspine demo`` runs end to end and its HTML report renders in headless Chromium with no
console errors (uncaught errors, unhandled rejections and console.error calls are captured by a
hook injected into the page and written into the DOM, which Chromium dumps)."""

import json
import re
import shutil
import subprocess

import pytest

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


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory):
    """Run the README's demo command (shorter session, same code path) once for these tests."""
    from simspine.cli import main

    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--out", str(out), "--seconds", "2"]) == 0
    return out


def test_demo_outputs(demo_dir, capsys):
    text = (demo_dir / "report.html").read_text()
    assert not re.search(r"<script[^>]*\ssrc=", text)  # plotly.js inline: no script is fetched
    assert len(text) > 3_000_000  # ... and it is indeed in the page
    assert text.count("Plotly.newPlot") == 3
    for needle in ("Lumbar intervertebral angles", "Neck angles", "L5_S1_Flex_Ext", "Speed", "frames/s"):
        assert needle in text
    summary = json.loads((demo_dir / "closed_loop.json").read_text())
    assert summary["errors"]["n_frames"] == 100
    assert summary["errors"]["region_mm"]["spine"] < 20
    assert {s["stage"] for s in summary["stages"]} >= {"triangulate", "filter", "scale", "ik", "fk"}
    assert (demo_dir / "session" / "groundtruth" / "keypoints.trc").is_file()
    assert (demo_dir / "annotate" / "model" / "ik.mot").is_file()


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
def test_report_renders_in_headless_chromium(demo_dir, tmp_path):
    path = demo_dir / "report.html"
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
