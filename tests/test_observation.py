"""Observed, filled or inferred (``simspine.observation``) and what ``annotate`` writes with it:
the status codes from the merge's sample sources, frames with too few markers NaN and flagged in
every output, coverage per spine region with warnings, on synthetic sessions with a one-second
blackout and with a rig that rarely sees the back."""

import json

import numpy as np
import pytest

from simspine import observation as ob
from simspine.io.trc import read_trc
from simspine.skeletons import spinetrack37
from simspine.trajectories import Trajectories

NAMES = list(spinetrack37().names)


def _traj(T=10, names=NAMES, finite=None, meta=None):
    xyz = np.random.default_rng(0).normal(size=(T, len(names), 3))
    if finite is not None:
        xyz[~finite] = np.nan
    conf = np.where(np.isfinite(xyz).all(-1), 0.5, 0.0)
    return Trajectories(np.arange(T) / 50.0, list(names), xyz, conf, "opensim-ground (Y up)", meta or {})


def test_marker_status_from_sample_sources_and_triangulation():
    T = 6
    src = np.full((T, 37), 2, np.int8)
    src[:, 0] = 1          # Nose: trusted
    src[2, 1] = 3          # LEye filled by the merge in frame 2
    src[:, 2] = 0          # REye: nothing
    finite = src != 0
    markers = _traj(T, finite=finite, meta={"sample_source": src})
    tri_finite = np.ones((T, 37), bool)
    tri_finite[4, 3] = False  # LEar: pseudo in frame 4 but not triangulated there -> the filter filled it
    tri = _traj(T, finite=tri_finite)
    s = ob.marker_status(markers, tri)
    assert s[0, 0] == ob.OBSERVED and s[2, 1] == ob.FILLED and (s[:, 2] == ob.INFERRED).all()
    assert s[4, 3] == ob.FILLED and s[3, 3] == ob.OBSERVED
    assert (s == ob.OBSERVED).sum() == T * 37 - 1 - T - 1
    # without the merge's sources (no trusted markers): the triangulation alone decides
    s2 = ob.marker_status(_traj(T, finite=finite), tri)
    assert s2[2, 1] == ob.OBSERVED and s2[4, 3] == ob.FILLED and (s2[:, 2] == ob.INFERRED).all()


def test_frames_estimated_keypoints_and_regions():
    T = 4
    names = ["LHip", "RHip", "Hip", "LKnee", "Spine_04"]
    s = np.full((T, 5), ob.OBSERVED, np.int8)
    s[1, :3] = ob.INFERRED               # frame 1: only Spine_04 on the trunk -> not estimated
    s[2, 0] = ob.FILLED                  # filled markers count
    s[3, [0, 1]] = ob.INFERRED           # frame 3: Hip + Spine_04 = 2 < 3
    est = ob.frames_estimated(s, names)
    assert est.tolist() == [True, False, True, False]
    kp = ob.keypoint_status(s, names, est)
    assert kp.shape == (T, 37)
    assert kp[0, NAMES.index("LHip")] == ob.OBSERVED and kp[2, NAMES.index("LHip")] == ob.FILLED
    assert kp[0, NAMES.index("Spine_01")] == ob.INFERRED  # no marker at all: inferred
    assert (kp[[1, 3]] == ob.NONE).all()
    reg = ob.region_status(kp)
    # lumbar = Hip, Spine_01..03: 1 of 4 observed -> inferred; frames 1 and 3 none
    assert reg[:, 0].tolist() == [ob.INFERRED, ob.NONE, ob.INFERRED, ob.NONE]


def test_coverage_shares_and_warnings():
    T = 100
    kp = np.full((T, 37), ob.OBSERVED, np.int8)
    lumbar = ob.regions()["lumbar"]
    kp[12:, lumbar[1:]] = ob.INFERRED     # lumbar observed in 12 of 100 frames
    kp[:, ob.regions()["thoracic"][:3]] = ob.FILLED  # thoracic: 3 of 6 observed -> still observed
    cov = ob.coverage(kp)
    assert cov["regions"]["lumbar"]["observed"] == pytest.approx(0.12)
    assert cov["regions"]["lumbar"]["inferred"] == pytest.approx(0.88)
    assert cov["regions"]["thoracic"]["observed"] == 1.0
    assert cov["keypoints"]["Spine_01"]["inferred"] == pytest.approx(0.88)
    assert cov["warnings"] == ["the lumbar spine was observed in 12% of frames: its motion is mostly inferred by "
                               "the model"]
    kp[40:60] = ob.NONE
    cov = ob.coverage(kp)
    assert cov["frames_estimated_share"] == pytest.approx(0.8)
    assert any("20% of frames (20 of 100)" in w for w in cov["warnings"])


def test_status_csv_columns():
    T = 3
    kp = np.full((T, 37), ob.OBSERVED, np.int8)
    kp[1] = ob.NONE
    kp[2, NAMES.index("Spine_02")] = ob.FILLED
    text = ob.status_csv(np.arange(T) / 50, kp, np.array([1, 0, 1], bool))
    rows = [ln.split(",") for ln in text.splitlines() if not ln.startswith("#")]
    head = rows[0]
    assert head[:5] == ["time", "frame_estimated", "lumbar_status", "thoracic_status", "cervical_status"]
    assert head[5:] == NAMES
    assert rows[2][1] == "0" and set(rows[2][2:]) == {"none"}
    assert rows[3][head.index("Spine_02")] == "filled" and rows[3][head.index("Nose")] == "observed"


def test_write_model_outputs_nan_and_flags(tmp_path):
    """The model outputs re-written: NaN in frames not estimated, status arrays, CSV columns, a TRC
    note OpenSim still reads; with fill_unobserved the model's values stay."""
    from simspine.biomech.fk import SpineRotations

    T = 20
    est = np.ones(T, bool)
    est[5:10] = False
    kp_status = np.where(est[:, None], ob.OBSERVED, ob.NONE).astype(np.int8).repeat(37, 1)
    kps = _traj(T)
    rots = SpineRotations(kps.time, ["L5_S1_Flex_Ext", "neck_flexion"], np.ones((T, 2)), ["lumbar5", "torso"],
                          np.ones((T, 2, 3)))
    cov = ob.coverage(kp_status, est)
    k2, r2 = ob.write_model_outputs(tmp_path, kps, rots, kp_status, est, cov)
    assert np.isnan(k2.xyz[5:10]).all() and np.isfinite(k2.xyz[est]).all()
    assert np.isnan(r2.intervertebral_deg[5:10]).all() and np.isnan(r2.segment_euler_deg[5:10]).all()
    trc = read_trc(tmp_path / "keypoints37.trc")
    assert np.isnan(trc.xyz[5:10]).all() and np.allclose(trc.xyz[est], kps.xyz[est])
    assert "frames estimated 75% (others NaN)" in trc.meta["header"]
    with np.load(tmp_path / "keypoints37.npz") as z:
        assert z["status"].dtype == np.int8 and (z["status"][5:10] == ob.NONE).all()
        assert z["frame_estimated"].sum() == 15
        assert "observation" in json.loads(str(z["meta_json"]))
    with np.load(tmp_path / "rotations.npz") as z:
        assert np.isnan(z["intervertebral_deg"][5:10]).all() and z["frame_estimated"].sum() == 15
        assert z["keypoint_status"].shape == (T, 37) and json.loads(str(z["meta"]))["observation"]["status_codes"]
    lines = [ln for ln in (tmp_path / "rotations.csv").read_text().splitlines() if not ln.startswith("#")]
    head = lines[0].split(",")
    assert head[-4:] == ["frame_estimated", "lumbar_status", "thoracic_status", "cervical_status"]
    assert lines[6].split(",")[-4:] == ["0", "none", "none", "none"]
    assert lines[1].split(",")[-4:] == ["1", "observed", "observed", "observed"]
    # OpenSim's own reader takes the file with its note
    osim = pytest.importorskip("opensim")
    assert osim.TimeSeriesTableVec3(str(tmp_path / "keypoints37.trc")).getNumRows() == T
    # --fill-unobserved keeps the model's values
    k3, r3 = ob.write_model_outputs(tmp_path, kps, rots, kp_status, est, cov, fill_unobserved=True)
    assert np.isfinite(k3.xyz).all() and np.isfinite(r3.intervertebral_deg).all()
    assert "--fill-unobserved" in read_trc(tmp_path / "keypoints37.trc").meta["header"]


# ---- synthetic sessions ---------------------------------------------------------------------------
GAP = slice(25, 75)  # one second at 50 Hz


@pytest.fixture(scope="module")
def sessions(tmp_path_factory):
    """A 2 s synthetic session (the demo's action) as a session npz, the same with no detection
    in any camera for one second, and the same with the spine-centric keypoints missing in 90% of
    frames."""
    from simspine.io.session import load_session
    from simspine.synth.detector import BODY_DETECTOR_IDS
    from simspine.synth.session import SynthConfig, synthesize

    root = tmp_path_factory.mktemp("obs")
    synthesize(root / "synth", SynthConfig(action="pickup", seconds=2.0, seed=0))
    s = load_session(root / "synth")
    paths = {"plain": s.save(root / "plain.npz")}
    uv, conf = s.keypoints.copy(), s.conf.copy()
    uv[:, GAP] = np.nan
    conf[:, GAP] = 0.0
    s.keypoints, s.conf = uv, conf
    paths["gap"] = s.save(root / "gap.npz")
    s = load_session(root / "synth")
    spine = np.setdiff1d(np.arange(37), BODY_DETECTOR_IDS)
    hide = np.random.default_rng(1).random(s.n_frames) < 0.9
    uv, conf = s.keypoints.copy(), s.conf.copy()
    uv[:, hide[:, None] & np.isin(np.arange(37), spine)[None]] = np.nan
    conf[:, hide[:, None] & np.isin(np.arange(37), spine)[None]] = 0.0
    s.keypoints, s.conf = uv, conf
    paths["back"] = s.save(root / "back.npz")
    return root, paths, hide


def _front(path, out):
    from simspine.annotate import annotate

    return annotate(path, out, biomech=False, report=False, progress=False, log=lambda m: None)


def _status_rows(path):
    lines = [ln.split(",") for ln in path.read_text().splitlines() if not ln.startswith("#")]
    return lines[0], lines[1:]


def test_blackout_second_is_flagged_front_end(sessions, tmp_path):
    root, paths, _ = sessions
    plain = _front(paths["plain"], tmp_path / "plain")
    gap = _front(paths["gap"], tmp_path / "gap")
    inside = np.zeros(100, bool)
    inside[GAP] = True
    head, rows = _status_rows(tmp_path / "gap" / "keypoints37_status.csv")
    est = np.array([r[1] == "1" for r in rows])
    assert not est[inside].any() and est[~inside].all()
    assert all(set(r[2:]) == {"none"} for r, i in zip(rows, inside, strict=True) if i)
    assert np.isnan(gap.markers.xyz[inside]).all()
    # outside the blackout: the same status and, away from its edges, the same markers
    head0, rows0 = _status_rows(tmp_path / "plain" / "keypoints37_status.csv")
    same = [r == r0 for r, r0, i in zip(rows, rows0, inside, strict=True) if not i]
    assert np.mean(same) >= 0.95
    far = np.ones(100, bool)
    far[GAP.start - 15:GAP.stop + 15] = False
    d = np.linalg.norm(gap.markers.xyz[far] - plain.markers.xyz[far], axis=-1)
    assert np.nanmax(d) < 0.005
    s = json.loads((tmp_path / "gap" / "summary.json").read_text())["observation"]
    assert s["frames_estimated_share"] == pytest.approx(0.5)
    assert any("50% of frames (50 of 100)" in w for w in s["warnings"])
    assert json.loads((tmp_path / "plain" / "summary.json").read_text())["observation"]["warnings"] == []


def test_rig_that_rarely_sees_the_back_warns(sessions, tmp_path):
    root, paths, hide = sessions
    res = _front(paths["back"], tmp_path / "back")
    cov = res.summary["observation"]
    seen = 1 - hide.mean()
    # lumbar (Hip + 3 spine points) and thoracic are observed only where the spine points were seen
    assert cov["regions"]["lumbar"]["observed"] <= seen + 0.02
    assert cov["regions"]["thoracic"]["observed"] <= seen + 0.02
    assert cov["regions"]["cervical"]["observed"] > 0.9  # nose, head and neck stay visible
    text = (tmp_path / "back" / "summary.txt").read_text()
    for r in ("lumbar", "thoracic"):
        share = 100 * cov["regions"][r]["observed"]
        assert f"the {r} spine was observed in {share:.0f}% of frames: its motion is mostly inferred" in text
    assert "cervical spine was observed" not in text
    assert f"lumbar {100 * cov['regions']['lumbar']['observed']:.0f}%" in text


def test_demo_session_has_no_coverage_warning(sessions, tmp_path):
    root, paths, _ = sessions
    res = _front(paths["plain"], tmp_path / "plain")
    cov = res.summary["observation"]
    assert cov["warnings"] == []
    assert min(cov["regions"][r]["observed"] for r in ob.REGIONS) > 0.9
    assert cov["frames_estimated_share"] == 1.0


@pytest.mark.slow
def test_blackout_second_full_pipeline(sessions, tmp_path):
    """With scaling, IK and FK: keypoints37.trc/.npz and rotations.csv/.npz are NaN and flagged
    in the blackout second; elsewhere close to the run without it."""
    from simspine.annotate import annotate

    root, paths, _ = sessions
    kw = dict(progress=False, log=lambda m: None, report=False)
    plain = annotate(paths["plain"], tmp_path / "plain", **kw)
    gap = annotate(paths["gap"], tmp_path / "gap", **kw)
    inside = np.zeros(100, bool)
    inside[GAP] = True
    m = tmp_path / "gap" / "model"
    trc = read_trc(m / "keypoints37.trc")
    assert np.isnan(trc.xyz[inside]).all() and np.isfinite(trc.xyz[~inside]).all()
    assert "frames estimated 50% (others NaN)" in trc.meta["header"]
    with np.load(m / "rotations.npz") as z:
        assert np.isnan(z["intervertebral_deg"][inside]).all() and np.isfinite(z["intervertebral_deg"][~inside]).all()
        assert (z["keypoint_status"][inside] == ob.NONE).all() and not z["frame_estimated"][inside].any()
    with np.load(m / "keypoints37.npz") as z:
        assert (z["status"][inside] == ob.NONE).all() and z["frame_estimated"][~inside].all()
    rows = [ln.split(",") for ln in (m / "rotations.csv").read_text().splitlines() if not ln.startswith("#")][1:]
    assert all(r[-4] == "0" and "nan" in r[1].lower() for r, i in zip(rows, inside, strict=True) if i)
    # the rest as before: keypoints away from the blackout's edges within a few mm of the plain run
    far = np.ones(100, bool)
    far[GAP.start - 10:GAP.stop + 10] = False
    d = np.linalg.norm(gap.keypoints.xyz[far] - plain.keypoints.xyz[far], axis=-1)
    assert np.median(d) < 0.005 and np.isfinite(d).all()
    assert np.isfinite(plain.keypoints.xyz).all()
