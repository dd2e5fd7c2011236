"""Subject scaling: factor recovery on model-generated trials, refusals of bad input."""

import numpy as np
import pytest

from simspine.biomech.fk import Kinematics, run_fk
from simspine.biomech.model import prepare_model
from simspine.biomech.motion import random_motion
from simspine.biomech.scaling import (
    estimate_scaling,
    factors_for_height,
    generic_stature,
    model_stature,
    scale_model,
    segment_names,
)
from simspine.errors import InputError


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return prepare_model(cache_dir=tmp_path_factory.mktemp("cache"))


def subject_factors(height, seed, model_path, spread=0.04):
    """Per-segment factors of a subject of about ``height`` m with non-uniform proportions."""
    rng = np.random.default_rng(seed)
    base = height / generic_stature(model_path)
    f = {s: base * rng.uniform(1 - spread, 1 + spread) for s in segment_names()}
    for s in segment_names():
        if s.endswith("_r"):
            f[s] = f[s[:-2] + "_l"] * rng.uniform(0.98, 1.02)
    return f


def trial(model_path, factors, tmp_path, n=20, seed=3, mass=70.0):
    scaled = scale_model(factors, tmp_path / "subject.osim", mass, model_path)
    kin = Kinematics(str(scaled))
    mot = random_motion(kin, n, seed=seed)
    traj, _ = run_fk(kin, mot)
    return traj, kin, mot


@pytest.mark.parametrize("height,seed", [(1.60, 1), (1.90, 2)])
def test_scaling_recovers_true_factors(model_path, tmp_path, height, seed):
    true = subject_factors(height, seed, model_path)
    traj, kin, _ = trial(model_path, true, tmp_path)
    rep = estimate_scaling(traj, mass=70.0, model_path=model_path)
    rel = {s: rep.factors[s] / true[s] - 1 for s in true}
    assert max(abs(v) for v in rel.values()) < 0.02, rel
    # In practice far better than the 2% asked (refinement converges): state it.
    assert max(abs(v) for v in rel.values()) < 0.005, rel
    stature = model_stature(kin, true["foot_l"])
    assert rep.height_estimate_m == pytest.approx(stature, abs=0.01)


def test_first_guess_is_biased_without_refinement(model_path, tmp_path):
    """Pairs spanning joints (shoulder on the torso to elbow) bias the default-pose ratio; this
    is what the refinement corrects."""
    true = subject_factors(1.75, 4, model_path)
    traj, _, _ = trial(model_path, true, tmp_path, n=10)
    rep0 = estimate_scaling(traj, model_path=model_path, refine=0)
    assert abs(rep0.factors["upperarm_l"] / true["upperarm_l"] - 1) > 0.02


def test_factors_for_height_give_that_stature(model_path, tmp_path):
    f = factors_for_height(1.82, model_path)
    scaled = scale_model(f, tmp_path / "h.osim", 75.0, model_path)
    kin = Kinematics(str(scaled))
    assert model_stature(kin, f["foot_l"]) == pytest.approx(1.82, abs=1e-6)
    assert kin.model.getTotalMass(kin.state) == pytest.approx(75.0)


def test_scale_model_scales_rigid_pairs(model_path, tmp_path):
    scaled = scale_model({"head": 1.1, "thigh_l": 0.9}, tmp_path / "s.osim", 70.0, model_path)
    k0, k1 = Kinematics(str(model_path)), Kinematics(str(scaled))
    for k in (k0, k1):
        k.set_defaults()
    d = [np.linalg.norm(np.subtract(*k.marker_positions(["Head", "Nose"]))) for k in (k0, k1)]
    assert d[1] / d[0] == pytest.approx(1.1, rel=1e-9)


@pytest.fixture(scope="module")
def good_trial(model_path, tmp_path_factory):
    f = subject_factors(1.75, 5, model_path)
    traj, _, _ = trial(model_path, f, tmp_path_factory.mktemp("good"), n=10)
    return traj


def test_missing_pair_takes_factor_from_other_side(model_path, good_trial):
    """A segment without a measured pair is scaled, and scaling.json says where from."""
    traj = good_trial.select([n for n in good_trial.names if n != "LKnee"])
    rep = estimate_scaling(traj, model_path=model_path, refine=0, source="trial.trc")
    assert rep.factors["thigh_l"] == rep.factors["thigh_r"]
    assert rep.factor_sources["thigh_l"] == "from the other side (thigh_r, measured)"
    assert rep.factor_sources["thigh_r"].startswith("measured from pairs RHip-RKnee ")
    # LKnee also ended shank_l's only pair.
    assert rep.factor_sources["shank_l"] == "from the other side (shank_r, measured)"


def test_unmeasured_segments_from_height_or_neighbours(model_path, good_trial):
    legs = ("Knee", "Ankle", "BigToe", "SmallToe", "Heel")
    traj = good_trial.select([n for n in good_trial.names if not n.endswith(legs)])
    rep = estimate_scaling(traj, model_path=model_path, refine=0)
    assert rep.factor_sources["thigh_l"] == "from neighbour pelvis"
    assert rep.factors["thigh_l"] == rep.factors["pelvis"]
    assert rep.factor_sources["foot_r"] == "mean of the measured factors"
    assert any("no marker pair measures thigh_l" in w and "give --height" in w for w in rep.warnings)
    rep_h = estimate_scaling(traj, model_path=model_path, refine=0, height=1.80)
    assert rep_h.factor_sources["shank_l"] == "from height 1.800 m"
    assert rep_h.factors["shank_l"] == pytest.approx(factors_for_height(1.80, model_path)["shank_l"])


def test_nothing_to_solve_lists_everything_missing(model_path, good_trial):
    arms = [n for n in good_trial.names if n.endswith(("Elbow", "Wrist")) or n in ("LShoulder", "Nose")]
    with pytest.raises(InputError) as e:
        estimate_scaling(good_trial.select(arms), model_path=model_path, refine=0, source="trial.trc")
    msg = str(e.value)
    assert msg.startswith("trial.trc: cannot fit the model to these markers: the pelvis and trunk need at least 3")
    assert "(present: LShoulder)" in msg
    # Everything missing in one message, and what to do.
    for name in ("LHip", "RHip", "Hip", "Spine_01", "Neck", "LKnee", "RHeel"):
        assert name in msg.split("missing from the trial:")[1]
    assert "Add the missing markers" in msg


def test_refuses_zero_length_segment(model_path, good_trial):
    traj = good_trial.select(good_trial.names)
    traj.xyz[:, traj.names.index("LHeel")] = traj.xyz[:, traj.names.index("LBigToe")]
    with pytest.raises(InputError, match="zero-length segment foot_l: markers LHeel and LBigToe"):
        estimate_scaling(traj, model_path=model_path, refine=0, source="trial.trc")


def test_refuses_non_finite(model_path, good_trial):
    traj = good_trial.select(good_trial.names)
    traj.xyz[3, traj.names.index("RWrist"), 1] = np.inf
    with pytest.raises(InputError, match="trial.trc: non-finite .*RWrist"):
        estimate_scaling(traj, model_path=model_path, refine=0, source="trial.trc")


def test_refuses_implausible_units(model_path, good_trial):
    traj = good_trial.select(good_trial.names)
    traj.xyz *= 1000.0  # millimetres given as metres
    with pytest.raises(InputError, match="implausible scale factor .*check the units \\(expected metres"):
        estimate_scaling(traj, model_path=model_path, refine=0, source="trial.trc")


def test_outlying_factor_is_reported(model_path, good_trial):
    """Ear markers 8 cm apart (a detector's, on the face) give a head factor far below the rest
    (no Head marker, as from mediapipe: the ear pair dominates the head factor)."""
    traj = good_trial.select([n for n in good_trial.names if n != "Head"])
    le, re = traj.names.index("LEar"), traj.names.index("REar")
    mid = 0.5 * (traj.xyz[:, le] + traj.xyz[:, re])
    traj.xyz[:, le] = mid + 0.5 * (traj.xyz[:, le] - mid)
    traj.xyz[:, re] = mid + 0.5 * (traj.xyz[:, re] - mid)
    rep = estimate_scaling(traj, model_path=model_path, refine=0)
    warn = [w for w in rep.warnings if w.startswith("scale factor ") and " for head is " in w]
    assert len(warn) == 1 and "LEar-REar" in warn[0] and "leave them out" in warn[0], rep.warnings
    assert not [w for w in rep.warnings if " for head " not in w]
    # ... and replaced, not used: the head takes its neighbour's (the torso's) factor, recorded.
    rec = rep.replaced["head"]
    assert rec["measured"] < 0.75 and abs(rec["deviation"]) > 0.3 and "LEar-REar" in rec["pairs"]
    assert rep.factors["head"] == pytest.approx(rep.factors["torso"]) and rec["factor"] == rep.factors["head"]
    assert rep.factor_sources["head"].startswith("from neighbour torso") and "outlier" in rep.factor_sources["head"]
    assert f"head uses {rep.factors['head']:.3f}" in warn[0]
    # With --height the replaced factor comes from the stature instead.
    rep_h = estimate_scaling(traj, model_path=model_path, refine=0, height=1.70)
    assert rep_h.factor_sources["head"].startswith("from height 1.700 m") and "head" in rep_h.replaced


def test_no_factor_replaced_on_clean_trial(model_path, good_trial):
    rep = estimate_scaling(good_trial, model_path=model_path, refine=0)
    assert rep.replaced == {} and not [w for w in rep.warnings if "median factor" in w]


def test_refuses_heights_and_masses_in_other_units(model_path, good_trial):
    with pytest.raises(InputError, match="got 175.*give --height in metres"):
        estimate_scaling(good_trial, model_path=model_path, refine=0, height=175.0)
    with pytest.raises(InputError, match="give --mass in kilograms"):
        estimate_scaling(good_trial, model_path=model_path, refine=0, mass=70000.0)


@pytest.fixture(scope="module")
def asymmetric_foot(model_path, tmp_path_factory):
    """A subject whose left foot markers measure 20% longer than the right (e.g. a detector's
    heel/toe points on a real recording), 10 frames."""
    f = subject_factors(1.75, 6, model_path, spread=0.0)
    f["foot_l"] *= 1.2
    traj, _, _ = trial(model_path, f, tmp_path_factory.mktemp("asym"), n=10)
    return f, traj


def test_asymmetry_warns_names_pairs_and_symmetrises(model_path, asymmetric_foot):
    f, traj = asymmetric_foot
    rep = estimate_scaling(traj, model_path=model_path, refine=2, source="trial.trc")
    warn = [w for w in rep.warnings if w.startswith("left/right scale factors for foot differ by")]
    assert len(warn) == 1, rep.warnings
    # The pairs behind each side, with their measured lengths.
    for key in ("LHeel-LBigToe", "LHeel-LSmallToe", "RHeel-RBigToe", "RBigToe-RSmallToe"):
        assert f"{key} {rep.pair_lengths[key]:.3f} m" in warn[0]
    assert "--strict refuses" in warn[0]
    # One factor for both sides: the mean (exact markers: equal spreads -> weights 1/2), so about
    # 1.1x the right foot's true factor.
    assert rep.factors["foot_l"] == rep.factors["foot_r"]
    assert rep.factors["foot_l"] / f["foot_r"] == pytest.approx(1.1, abs=0.01)
    sym = rep.symmetrised["foot"]
    # Found on the default-pose estimate (before refinement), which the motion's toe flexion
    # biases a little: measured 17.1% for the true 18.2% (= 0.2 / 1.1).
    assert sym["found"] == "default-pose estimate"
    assert sym["difference"] == pytest.approx(0.2 / 1.1, abs=0.02)
    assert sym["left"] / sym["right"] == pytest.approx(1.2, abs=0.02)
    assert sym["rule"] == "mean of left and right" and sym["factor"] == rep.factors["foot_l"]
    assert set(sym["pairs_left"]) == {"LHeel-LBigToe", "LHeel-LSmallToe", "LBigToe-LSmallToe"}
    assert "symmetrised with foot_r" in rep.factor_sources["foot_l"]
    # The other segments are untouched by it.
    assert not set(rep.symmetrised) - {"foot"}
    assert rep.factors["shank_l"] == pytest.approx(f["shank_l"], rel=0.01)


def test_asymmetry_refused_when_strict(model_path, asymmetric_foot):
    _, traj = asymmetric_foot
    with pytest.raises(InputError) as e:
        estimate_scaling(traj, model_path=model_path, refine=0, source="trial.trc", strict=True)
    msg = str(e.value)
    assert msg.startswith("trial.trc: strongly asymmetric scale factors for foot: left ")
    assert "from LHeel-LBigToe " in msg and "from RHeel-RBigToe " in msg
    assert "check the left/right labels" in msg and "run without --strict" in msg


def test_noisier_side_counts_less(model_path, asymmetric_foot):
    """With one side's pair lengths much more variable, the symmetric factor leans to the other."""
    _, traj = asymmetric_foot
    noisy = traj.select(traj.names)
    rng = np.random.default_rng(0)
    for n in ("LHeel", "LBigToe", "LSmallToe"):
        noisy.xyz[:, noisy.names.index(n)] += rng.normal(0, 0.01, (noisy.n_frames, 3))
    rep = estimate_scaling(noisy, model_path=model_path, refine=0)
    sym = rep.symmetrised["foot"]
    assert sym["spread_left"] > 2 * sym["spread_right"]
    assert sym["weight_right"] > 0.8
    assert rep.factors["foot_l"] == pytest.approx(sym["weight_left"] * sym["left"] + sym["weight_right"] * sym["right"])


def test_implausible_frames_are_trimmed(model_path, good_trial):
    """A few frames with a swapped/garbage marker do not move the factor."""
    traj = good_trial.select(good_trial.names)
    ref = estimate_scaling(traj, model_path=model_path, refine=0).factors
    sh, el = traj.names.index("LShoulder"), traj.names.index("LElbow")
    traj.xyz[2, el] = traj.xyz[2, sh] + 2.0 * (traj.xyz[2, el] - traj.xyz[2, sh])  # twice as long
    rep = estimate_scaling(traj, model_path=model_path, refine=0)
    assert rep.frames_trimmed["LShoulder-LElbow"] == 1
    assert rep.factors["upperarm_l"] == pytest.approx(ref["upperarm_l"], rel=0.003)


def test_refinement_shows_progress(model_path, good_trial, capsys):
    """Scaling is one of the long stages: a line per refinement round."""
    estimate_scaling(good_trial, model_path=model_path, refine=2, progress=True)
    lines = [ln for ln in capsys.readouterr().out.splitlines() if "scaling refinement" in ln]
    assert [ln.split(":")[0].strip() for ln in lines] == ["scaling refinement 1/2", "scaling refinement 2/2"]
