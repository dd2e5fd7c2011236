"""A lab's own markers (issue 10): MarkerSet files, the shipped trunk protocol, keypoint docs, and the
OpenSim-style options --static, --scale-factors, --exclude-markers, --marker-weights.

Lab trials are generated on the model: a synthetic subject (1 cm placement jitter on its markers)
performs a pickup, and the trunk protocol's markers, scaled with the subject's bodies and jittered
by 1 cm RMS, are read off its bodies by forward kinematics.
"""

import inspect
import json
import re
from pathlib import Path

import numpy as np
import pytest

from simspine.biomech.fitting import run_ik_pipeline
from simspine.biomech.fk import Kinematics
from simspine.biomech.marker_sets import (
    SHIPPED,
    apply_marker_options,
    nearest_vertex_distance,
    read_marker_set,
    read_marker_weights,
    read_measurement_set,
    trunk_landmarks,
    trunk_protocol,
)
from simspine.biomech.scaling import estimate_scaling, read_scale_factors, segment_names
from simspine.errors import InputError
from simspine.skeletons import spinetrack37
from simspine.synth.motion import generate_motion
from simspine.synth.subject import SEGMENT_GROUPS, build_model, perform, random_subject
from simspine.trajectories import Trajectories

L5 = ("L5_S1_Flex_Ext", "L5_S1_Lat_Bending", "L5_S1_axial_rotation")
#: Marker registration off (faster; these tests are about the options, not the registration),
#: where the pipeline has it.
NO_REG = {"register_markers": False} if "register_markers" in inspect.signature(run_ik_pipeline).parameters else {}
ROOT = Path(__file__).resolve().parents[1]


def lab_trial(seed=0, seconds=1.2, jitter=0.01, action="pickup"):
    """(truth, trial of the trunk protocol's markers) on a random subject, 50 Hz."""
    import opensim as osim

    rng = np.random.default_rng(seed)
    subject = random_subject(rng, jitter_m=0.01)
    model = build_model(subject)
    scale = {b: subject.segment_scales[g] for g, bodies in SEGMENT_GROUPS.items() for b in bodies}
    places = read_marker_set("trunk").markers
    for m in places:
        off = np.asarray(m.offset_m) * scale[m.body] + rng.normal(0.0, jitter / np.sqrt(3.0), 3)
        model.addMarker(osim.Marker(m.name, model.getBodySet().get(m.body), osim.Vec3(*off)))
    model.finalizeConnections()
    truth = perform(subject, generate_motion(action, seconds=seconds, fps=50.0, rng=rng), model=model)
    kin = Kinematics(model)
    free = [c.name for c in kin.free_coordinates]
    names = [m.name for m in places]
    xyz = np.empty((len(truth.keypoints.time), len(names), 3))
    for t in range(len(xyz)):
        kin.set_coordinates({n: truth.coordinate(n)[t] for n in free})
        xyz[t] = kin.marker_positions(names)
    trial = Trajectories(truth.keypoints.time, names, xyz, np.ones(xyz.shape[:2]), truth.keypoints.frame)
    return truth, trial


@pytest.fixture(scope="module")
def trunk_trial():
    return lab_trial()


def rmse_deg(res, truth, name):
    return float(np.rad2deg(np.sqrt(np.mean((res.coordinates.column(name) - truth.coordinate(name)) ** 2))))


# --------------------------------------------------------------------------------------------
# the shipped protocol and the keypoint table


def test_trunk_protocol_on_the_bone_meshes():
    """Every shipped marker is the landmark re-derived from the meshes (within 0.1 mm) and lies on
    its bone mesh (within 3 mm of a vertex); left and right are mirror images."""
    shipped = {m.name: m for m in read_marker_set("trunk").markers}
    derived = {m.name: m for m in trunk_protocol()}
    assert list(shipped) == list(derived) and len(shipped) == 18
    for name, body, mesh, _ in trunk_landmarks():
        m = shipped[name]
        assert m.body == body
        assert np.allclose(m.offset_m, derived[name].offset_m, atol=1e-4), name
        assert nearest_vertex_distance(m, mesh) < 0.003, (name, mesh)
    for name, m in shipped.items():
        if name[0] == "R" and "L" + name[1:] in shipped:
            x, y, z = shipped["L" + name[1:]].offset_m
            assert np.allclose(m.offset_m, (x, y, -z), atol=2e-3), name
    # Landmark sanity in the model's frames (x anterior, y up, z right).
    assert shipped["RASIS"].offset_m[0] > shipped["RPSIS"].offset_m[0] + 0.1
    assert shipped["IJ"].offset_m[1] > shipped["PX"].offset_m[1] + 0.15
    assert shipped["C7"].offset_m[1] > shipped["T10"].offset_m[1] + 0.2
    assert shipped["RACR"].offset_m[2] > shipped["RCLAV"].offset_m[2] > 0.05
    assert shipped["RLEP"].offset_m[2] > 0 > shipped["LLEP"].offset_m[2]


def test_keypoint_doc_lists_all_37():
    """docs/keypoints.md has one table row per SpineTrack-37 keypoint, with the package's body and
    offset (mm)."""
    from simspine.biomech.model import spinetrack37_markers

    text = (ROOT / "docs" / "keypoints.md").read_text()
    rows = {r[0]: r for r in (
        [c.strip().strip("`") for c in line.strip().strip("|").split("|")]
        for line in text.splitlines() if re.match(r"^\|\s*\d+\s*\|", line)) for r in [r[1:]]}
    assert list(rows) == list(spinetrack37().names)
    for m in spinetrack37_markers():
        body, offset = rows[m.name][2], rows[m.name][3]
        assert body == m.body, m.name
        mm = [float(v) for v in offset.split(",")]
        assert np.allclose(mm, np.asarray(m.offset_m) * 1000, atol=0.06), m.name


# --------------------------------------------------------------------------------------------
# reading files


def test_marker_set_errors(tmp_path):
    bad = tmp_path / "bad.xml"
    bad.write_text('<OpenSimDocument><MarkerSet><objects>'
                   '<Marker name="A"><socket_parent_frame>/bodyset/nobody</socket_parent_frame><location>0 0 0</location></Marker>'
                   '<Marker name="B"><socket_parent_frame>/bodyset/torso</socket_parent_frame><location>0 x</location></Marker>'
                   '</objects></MarkerSet></OpenSimDocument>')
    with pytest.raises(InputError) as e:
        read_marker_set(bad)
    msg = str(e.value)
    assert str(bad) in msg and "'nobody' is not a body of the model" in msg and "marker B: <location>" in msg
    assert "\n" not in msg
    with pytest.raises(InputError, match="shipped name"):
        read_marker_set(tmp_path / "missing.xml")
    (tmp_path / "broken.xml").write_text("<OpenSimDocument><Marker")
    with pytest.raises(InputError, match="not a valid XML file"):
        read_marker_set(tmp_path / "broken.xml")
    assert set(SHIPPED) == {"trunk"}


def test_measurement_set(tmp_path):
    setup = tmp_path / "scale_setup.xml"
    setup.write_text("""<OpenSimDocument><ScaleTool><ModelScaler><MeasurementSet><objects>
      <Measurement name="torso"><apply>true</apply><MarkerPairSet><objects>
        <MarkerPair><markers> C7 PX</markers></MarkerPair><MarkerPair><markers>IJ T10</markers></MarkerPair>
      </objects></MarkerPairSet><BodyScaleSet><objects><BodyScale name="torso"/></objects></BodyScaleSet></Measurement>
      <Measurement name="arm"><MarkerPairSet><objects><MarkerPair><markers>RACR RLEP</markers></MarkerPair></objects>
      </MarkerPairSet><BodyScaleSet><objects><BodyScale name="humerus_r"/></objects></BodyScaleSet></Measurement>
    </objects></MeasurementSet></ModelScaler></ScaleTool></OpenSimDocument>""")
    known = set(read_marker_set("trunk").names)
    assert read_measurement_set(setup, known) == {"torso": [("C7", "PX"), ("IJ", "T10")],
                                                  "upperarm_r": [("RACR", "RLEP")]}
    setup.write_text(setup.read_text().replace("RLEP", "ELBOW").replace('"humerus_r"', '"tibia_r"/><BodyScale '
                                                                                       'name="humerus_r"'))
    msg = str(pytest.raises(InputError, read_measurement_set, setup, known).value)
    assert "measurement arm: its bodies (tibia_r, humerus_r) must all belong to one segment" in msg
    assert "neither in the marker set nor SpineTrack-37: ELBOW" in msg


def test_scale_factor_files(tmp_path):
    f = {s: 1.0 + 0.01 * i for i, s in enumerate(segment_names())}
    (tmp_path / "f.json").write_text(json.dumps(f))
    assert read_scale_factors(tmp_path / "f.json") == f
    # an OpenSim ScaleSet naming bodies
    from simspine.biomech.scaling import SEGMENTS

    xml = "".join(f"<Scale><scales>{f[s.name]} {f[s.name]} {f[s.name]}</scales><segment>{b}</segment>"
                  f"<apply>true</apply></Scale>" for s in SEGMENTS for b in s.bodies)
    (tmp_path / "s.xml").write_text(f"<OpenSimDocument><ScaleSet><objects>{xml}</objects></ScaleSet></OpenSimDocument>")
    assert read_scale_factors(tmp_path / "s.xml") == pytest.approx(f)
    (tmp_path / "bad.json").write_text(json.dumps({"torso": 1.0, "wing": 1.1}))
    msg = str(pytest.raises(InputError, read_scale_factors, tmp_path / "bad.json").value)
    assert "bad.json" in msg and "unknown segments: wing" in msg
    (tmp_path / "few.json").write_text(json.dumps({"torso": 1.0}))
    assert "no factor for segments: pelvis, head" in str(pytest.raises(InputError, read_scale_factors,
                                                                       tmp_path / "few.json").value)


def test_marker_weight_files_and_exclusion(tmp_path, trunk_trial):
    _, trial = trunk_trial
    model = [m.name for m in read_marker_set("trunk").markers]
    (tmp_path / "w.json").write_text(json.dumps({"C7": 5, "T10": 0.5}))
    (tmp_path / "w.csv").write_text("marker,weight\nC7,5\nT10,0.5\n")
    (tmp_path / "w.xml").write_text("<OpenSimDocument><IKTaskSet><objects>"
                                    "<IKMarkerTask name='C7'><apply>true</apply><weight>5</weight></IKMarkerTask>"
                                    "<IKMarkerTask name='T10'><apply>false</apply><weight>1</weight></IKMarkerTask>"
                                    "</objects></IKTaskSet></OpenSimDocument>")
    assert read_marker_weights(tmp_path / "w.json") == read_marker_weights(tmp_path / "w.csv") == {"C7": 5, "T10": 0.5}
    assert read_marker_weights(tmp_path / "w.xml") == {"C7": 5.0, "T10": 0.0}
    (tmp_path / "u.json").write_text(json.dumps({"C7": 1, "FOO": 2, "BAR": 1}))
    msg = str(pytest.raises(InputError, apply_marker_options, trial, model, None, tmp_path / "u.json").value)
    assert "u.json" in msg and "neither the trial nor the model: FOO, BAR" in msg
    (tmp_path / "n.json").write_text(json.dumps({"C7": -1}))
    assert "finite and >= 0: C7 -1" in str(pytest.raises(InputError, read_marker_weights, tmp_path / "n.json").value)
    msg = str(pytest.raises(InputError, apply_marker_options, trial, model, "C7,XX,YY").value)
    assert "--exclude-markers: not in the trial: XX, YY" in msg
    kept, w = apply_marker_options(trial, model, "C7, T10", tmp_path / "w.json")
    assert "C7" not in kept.names and len(kept.names) == len(trial.names) - 2 and w["C7"] == 5


# --------------------------------------------------------------------------------------------
# what it must show


@pytest.mark.parametrize("register", [False, pytest.param(True, marks=pytest.mark.slow)])
def test_trunk_protocol_recovers_lumbar_flexion(trunk_trial, tmp_path, register):
    """The pickup measured with the shipped trunk protocol's 18 markers (1 cm placement error)
    through ``run_ik_pipeline(marker_set="trunk")`` (what ``simspine ik --marker-set trunk`` runs),
    with and without marker registration (slow). Measured (seed 0), L5_S1 RMSE flexion / lateral
    bending / axial rotation: 0.35 / 0.15 / 0.44 deg without registration (marker RMS 7.4 mm),
    0.41 / 0.14 / 0.43 deg with it (marker RMS 0.8 mm)."""
    truth, trial = trunk_trial
    if register and not NO_REG:
        pytest.skip("this pipeline has no marker registration")
    res = run_ik_pipeline(trial, tmp_path, marker_set="trunk", progress=False, **({} if register else NO_REG))
    err = {c: rmse_deg(res, truth, c) for c in L5}
    print("L5_S1 RMSE deg", err, "marker RMS mm", np.nanmean(res.ik.rms) * 1000)
    assert err["L5_S1_Flex_Ext"] <= 1.0, err
    assert max(err.values()) <= 1.5, err
    assert set(res.ik.marker_names) == set(trial.names)
    # The 37 keypoints still come out of FK.
    assert res.keypoints.names == list(spinetrack37().names) and np.isfinite(res.keypoints.xyz).all()
    kp_err = np.linalg.norm(res.keypoints.xyz - truth.keypoints.xyz, axis=2)
    spine = spinetrack37().indices(["Spine_01", "Spine_02", "Spine_03", "Spine_04", "Spine_05", "Neck"])
    assert np.sqrt(np.mean(kp_err[:, spine] ** 2)) < 0.03
    src = res.scaling["factor_sources"]
    assert "RASIS-LASIS" in src["pelvis"] and "C7-T10" in src["torso"]
    assert src["upperarm_r"].startswith("measured from pairs RACR-RLEP")
    assert src["forearm_l"].startswith("measured from pairs LLEP-LRSP")
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["options"]["marker_set"].startswith("trunk")


@pytest.fixture(scope="module")
def st37_trials():
    """Two short (0.4 s, 20 frames) SpineTrack-37 trials of different subjects: a 'motion' trial
    and a 'static' one (standing sway of a subject 15% taller), both with 1 cm placement jitter."""
    rng = np.random.default_rng(3)
    motion = perform(random_subject(rng, height_m=1.6, jitter_m=0.01),
                     generate_motion("pickup", seconds=0.4, fps=50.0, rng=rng))
    static = perform(random_subject(rng, height_m=1.85, jitter_m=0.01),
                     generate_motion("sway", seconds=0.4, fps=50.0, rng=rng))
    return motion, static


def given_factors(tmp_path, value=0.92):
    """Factors near the 1.6 m motion subject's (generic model 1.72 m), each segment a little different."""
    f = {s: value + 0.005 * (i % 5) for i, s in enumerate(segment_names())}
    path = tmp_path / "factors.json"
    path.write_text(json.dumps(f))
    return f, path


def test_static_trial_scales(st37_trials, tmp_path):
    """--static: the factors are the static trial's estimate (not the motion trial's)."""
    from simspine.io.trc import write_trc

    motion, static = st37_trials
    write_trc(tmp_path / "static.trc", static.keypoints)
    res = run_ik_pipeline(motion.keypoints, tmp_path / "out", static=tmp_path / "static.trc", refine=0,
                          **NO_REG, progress=False)
    want = estimate_scaling(static.keypoints, refine=0).factors
    got = res.scaling["factors"]
    assert got == pytest.approx(want, rel=1e-9)
    # The static subject is 1.85 m (factors ~1.07), the motion subject 1.6 m (~0.93).
    assert np.mean(list(got.values())) > 1.02
    assert res.scaling["factor_sources"]["torso"].startswith("measured from pairs")
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["options"]["static"].endswith("static.trc")


def _marker_locations(path):
    from simspine.biomech.model import load_model

    model = load_model(path)
    ms = model.getMarkerSet()
    out = {}
    for i in range(ms.getSize()):
        m = ms.get(i)
        loc = m.get_location()
        out[m.getName()] = (m.getParentFrame().findBaseFrame().getName(), np.array([loc.get(k) for k in range(3)]))
    return out


def test_given_scale_factors_skip_estimation(st37_trials, tmp_path):
    """--scale-factors: no estimation (0 refinement rounds, sources say 'given'); every marker of
    the scaled model sits at the generic place times its segment's given factor."""
    from simspine.biomech.model import prepare_model
    from simspine.biomech.scaling import SEGMENTS

    motion, _ = st37_trials
    f, path = given_factors(tmp_path)
    res = run_ik_pipeline(motion.keypoints, tmp_path / "out", scale_factors=path, **NO_REG,
                          progress=False)
    sc = res.scaling
    assert sc["factors"] == f and sc["refine_rounds"] == 0
    assert set(sc["factor_sources"].values()) == {f"given ({path})"}
    generic = _marker_locations(prepare_model())
    scaled = _marker_locations(tmp_path / "out" / "model_scaled.osim")
    seg_of = {b: s.name for s in SEGMENTS for b in s.bodies}
    for name, (body, loc) in generic.items():
        assert np.allclose(scaled[name][1], loc * f[seg_of[body]], atol=1e-9), name
    assert np.nanmean(res.ik.rms) < 0.02


def test_exclude_markers(st37_trials, tmp_path):
    """--exclude-markers: the markers leave scaling and IK."""
    motion, _ = st37_trials
    _, path = given_factors(tmp_path)
    res = run_ik_pipeline(motion.keypoints, tmp_path / "out", scale_factors=path, **NO_REG,
                          exclude_markers="LElbow,RWrist", progress=False)
    assert not {"LElbow", "RWrist"} & set(res.ik.marker_names)
    assert len(res.ik.marker_names) == 35 and res.ik.n_markers.max() == 35
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["options"]["exclude_markers"] == ["LElbow", "RWrist"]
    assert "LElbow" not in summary["markers"]
    with pytest.raises(InputError, match="not in the trial: Elbow"):
        run_ik_pipeline(motion.keypoints, tmp_path / "bad", scale_factors=path, exclude_markers="Elbow",
                        progress=False)


def test_marker_weights_pull_a_marker_closer(st37_trials, tmp_path):
    """--marker-weights: a marker weighted 100x fits much closer than with the default weights."""
    motion, _ = st37_trials
    _, path = given_factors(tmp_path)
    base = run_ik_pipeline(motion.keypoints, tmp_path / "a", scale_factors=path, **NO_REG,
                           progress=False).ik
    rms = np.sqrt(np.nanmean(base.marker_errors ** 2, axis=0))
    trunk = ["LShoulder", "RShoulder", "LHip", "RHip", "Neck", "Spine_04", "LClavicle"]
    target = max(trunk, key=lambda n: rms[base.marker_names.index(n)])
    (tmp_path / "w.csv").write_text(f"marker,weight\n{target},100\n")
    heavy = run_ik_pipeline(motion.keypoints, tmp_path / "b", scale_factors=path, **NO_REG,
                            marker_weights=tmp_path / "w.csv", progress=False).ik
    before = rms[base.marker_names.index(target)]
    after = np.sqrt(np.nanmean(heavy.marker_errors[:, heavy.marker_names.index(target)] ** 2))
    print(f"{target}: RMS {before * 1000:.2f} -> {after * 1000:.2f} mm")
    assert before > 0.004 and after < 0.4 * before
    assert np.nanmean(heavy.rms) > np.nanmean(base.rms)  # the others pay for it


def test_cli_errors_are_one_line(st37_trials, tmp_path):
    """Bad option files end ``simspine ik`` with one error line naming the file and the problem."""
    import subprocess
    import sys

    from simspine.io.trc import write_trc

    motion, _ = st37_trials
    write_trc(tmp_path / "t.trc", motion.keypoints)
    (tmp_path / "w.json").write_text(json.dumps({"LShoulder": 2, "Shoulder": 1}))
    (tmp_path / "f.json").write_text("{not json")
    cases = {("--marker-weights", str(tmp_path / "w.json")): "neither the trial nor the model: Shoulder",
             ("--marker-set", "lumbar"): "marker set not found"}
    for opt, want in cases.items():
        p = subprocess.run([sys.executable, "-m", "simspine.cli", "ik", str(tmp_path / "t.trc"), "--out",
                            str(tmp_path / "o"), *opt], capture_output=True, text=True)
        err = p.stderr.strip()
        assert p.returncode != 0 and "\n" not in err and want in err, (opt, err)
