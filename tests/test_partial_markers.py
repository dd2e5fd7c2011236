"""Partial marker sets (issue 10): scaling and IK with the markers that exist.

Trials come from the synthetic generator (a subject with 1 cm marker placement error, a pickup
motion with known coordinates) with whole body regions left out, and run through
:func:`run_ik_pipeline` with default options (what ``simspine ik`` runs).
"""

import json

import numpy as np
import pytest

from simspine.biomech.fitting import run_ik_pipeline, undetermined_coordinates
from simspine.biomech.model import prepare_model
from simspine.errors import InputError
from simspine.synth.motion import generate_motion
from simspine.synth.subject import perform, random_subject

L5 = ("L5_S1_Flex_Ext", "L5_S1_Lat_Bending", "L5_S1_axial_rotation")
LEGS = ("Knee", "Ankle", "BigToe", "SmallToe", "Heel")
HEAD = ("Nose", "LEye", "REye", "LEar", "REar", "Head")
ARMS = ("LElbow", "RElbow", "LWrist", "RWrist")


@pytest.fixture(scope="module")
def truth():
    """1.2 s of pickup at 50 Hz (60 frames) on a random subject, 1 cm marker placement jitter."""
    rng = np.random.default_rng(0)
    subject = random_subject(rng, jitter_m=0.01)
    return perform(subject, generate_motion("pickup", seconds=1.2, fps=50.0, rng=rng))


def rmse_deg(res, truth, name):
    return float(np.rad2deg(np.sqrt(np.mean((res.coordinates.column(name) - truth.coordinate(name)) ** 2))))


def run(truth, names, out):
    res = run_ik_pipeline(truth.keypoints.select(names), out, progress=False)
    return res, json.loads((out / "summary.json").read_text()), (out / "ik.mot").read_text()


def test_upper_body_only(truth, tmp_path):
    """Pelvis, trunk, arms and head; no legs. Measured (this seed): L5_S1 RMSE flexion 0.12,
    lateral bending 0.08, axial rotation 0.21 deg; marker RMS 7.8 mm (the 1 cm jitter)."""
    names = [n for n in truth.keypoints.names if not n.endswith(LEGS)]
    res, summary, mot = run(truth, names, tmp_path)
    err = {c: rmse_deg(res, truth, c) for c in L5}
    assert err["L5_S1_Flex_Ext"] <= 1.0, err
    assert max(err.values()) <= 1.0, err
    assert np.nanmean(res.ik.rms) < 0.012
    # Leg segments are scaled from other factors, and scaling.json says which.
    src = res.scaling["factor_sources"]
    assert src["thigh_l"] == "from neighbour pelvis" and src["foot_r"] == "mean of the measured factors"
    assert src["torso"].startswith("measured from pairs Hip-Neck ")
    # Leg coordinates are held at the neutral pose and flagged (summary and .mot header).
    und = summary["undetermined_coordinates"]["coordinates"]
    legs = [f"{c}_{s}" for s in "rl" for c in ("hip_flexion", "hip_adduction", "hip_rotation", "knee_angle",
                                                "ankle_angle", "subtalar_angle", "mtp_angle")]
    assert set(legs) <= set(und) and not {"neck_flexion", "arm_flex_r", "L5_S1_Flex_Ext"} & set(und)
    assert "held at the neutral pose by a weak prior: hip_flexion_r, " in mot
    assert np.allclose(res.coordinates.column("knee_angle_l"), 0.0, atol=1e-3)  # model default 7.7e-5 rad


def test_lower_body_and_trunk(truth, tmp_path):
    """No arms, no head. Measured (this seed): L5_S1 RMSE flexion 0.15, lateral bending 0.12,
    axial rotation 0.25 deg."""
    names = [n for n in truth.keypoints.names if n not in HEAD + ARMS]
    res, summary, mot = run(truth, names, tmp_path)
    err = {c: rmse_deg(res, truth, c) for c in L5}
    assert err["L5_S1_Flex_Ext"] <= 1.0, err
    assert max(err.values()) <= 1.0, err
    src = res.scaling["factor_sources"]
    assert src["head"] == "from neighbour torso" and src["upperarm_l"] == "from neighbour torso"
    und = summary["undetermined_coordinates"]["coordinates"]
    assert {"neck_flexion", "neck_bending", "neck_rotation", "elbow_flex_l", "arm_add_r"} <= set(und)
    assert not {"hip_flexion_r", "knee_angle_l", "L5_S1_Flex_Ext"} & set(und)
    # Arms without markers hang along the body (the neutral pose), not in the model's T-pose.
    assert summary["undetermined_coordinates"]["held_at"]["arm_add_r"] == pytest.approx(np.rad2deg(-0.12))
    assert np.allclose(res.coordinates.column("arm_add_l"), -0.12)
    assert "neck_flexion" in mot.split("endheader")[0]


def test_full_marker_set_flags_only_the_hands():
    """With every SpineTrack-37 marker only the wrist coordinates (no hand markers) are free."""
    from simspine.skeletons import spinetrack37

    und = undetermined_coordinates(str(prepare_model()), spinetrack37().names)
    assert und == ["wrist_flex_r", "wrist_dev_r", "wrist_flex_l", "wrist_dev_l"]


def test_nothing_solvable_is_one_message(truth, tmp_path):
    names = [n for n in truth.keypoints.names if n.endswith(LEGS)] + ["LHip"]
    with pytest.raises(InputError) as e:
        run_ik_pipeline(truth.keypoints.select(names), tmp_path, progress=False)
    msg = str(e.value)
    assert "the pelvis and trunk need at least 3 markers not on one line" in msg and "(present: LHip)" in msg
    missing = msg.split("missing from the trial:")[1]
    assert all(n in missing for n in ("RHip", "Hip", "Spine_01", "LShoulder", "Nose", "LWrist"))
    assert "LKnee" not in missing
