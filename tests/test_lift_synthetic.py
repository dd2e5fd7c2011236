"""simspine.lift.synthetic: the benchmark store of model-driven subjects, read back by the lifting loader."""

from __future__ import annotations

import numpy as np


def test_synthetic_store_samples_and_detections(tmp_path):
    from simspine.lift.data import load_samples
    from simspine.lift.synthetic import write_synthetic_store

    store = write_synthetic_store(tmp_path / "s.h5", subjects=("S1", "S9"), actions=("twist",), seconds=1.0,
                                  fps=10.0, repeats=1, pred_2d=tmp_path / "det", progress=False)
    gt = load_samples(store, ["S1"], "full", "gt", rate_hz=10.0)
    assert len(gt) == 10 * 4 and len(set(gt.camera.tolist())) == 4 and set(gt.action.tolist()) == {"twist"}
    # camera-frame 3D in front of the camera, 2-6 m away, a body-sized pose (1.3-2.2 m tall)
    assert np.all(gt.y3d[..., 2] > 1.5) and np.all(gt.y3d[..., 2] < 8)
    extent = gt.y3d.max(1) - gt.y3d.min(1)
    assert np.all((np.linalg.norm(extent, axis=-1) > 1.0) & (np.linalg.norm(extent, axis=-1) < 2.6))
    det = load_samples(store, ["S1"], "full", str(tmp_path / "det"), rate_hz=10.0)
    assert len(det) == len(gt)  # occluded points are reported as guesses: every view kept
    err = np.linalg.norm(det.x2d - gt.x2d, axis=-1)
    assert 1.0 < np.median(err) < 10.0  # the simulated detector's 3 px noise (7.5 px when occluded)
    np.testing.assert_array_equal(det.y3d, gt.y3d)


def test_coupled_motion_moves_trunk_and_limbs_together():
    """The synergies make lumbar flexion co-vary with hip and arm flexion, axial rotation with counter-swinging
    arms; strength 0 leaves the action as it is; every coordinate stays in its range."""
    from simspine.lift.synthetic import SYNERGIES, couple_motion
    from simspine.synth.motion import RANGES, generate_motion

    base = generate_motion("sway", 20.0, 20.0, rng=np.random.default_rng(1))
    assert couple_motion(base, np.random.default_rng(2), 0.0) is base
    m = couple_motion(base, np.random.default_rng(2), 1.0)
    d = {k: m.coords[k] - base.coords[k] for k in m.coords}
    lean = d["L5_S1_Flex_Ext"]
    assert np.ptp(lean) > 0.02  # a real slow variation, not a constant
    # forward flexion (negative) goes with hip flexion and arms forward (positive): correlation near -1
    for coord in ("hip_flexion_r", "elbow_flex_l", "neck_flexion"):
        assert np.corrcoef(lean, d[coord])[0, 1] < -0.95, coord
    assert np.corrcoef(lean, d["arm_flex_r"] + d["arm_flex_l"])[0, 1] < -0.9  # the twist's swing cancels
    # axial rotation: right arm forward, left arm back (their difference), the head turning back
    twist = d["L5_S1_axial_rotation"]
    assert np.corrcoef(twist, d["arm_flex_r"] - d["arm_flex_l"])[0, 1] > 0.9
    assert np.corrcoef(twist, d["neck_rotation"])[0, 1] < -0.95
    for k, v in m.coords.items():
        lo, hi = RANGES[k]
        if k in {c for g in SYNERGIES.values() for c in g}:
            assert lo <= v.min() and v.max() <= hi, k
    assert m.meta["coupling"] == 1.0 and m.action == "sway"
