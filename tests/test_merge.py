"""Merge of pseudo-3D keypoints with trusted markers: table, resampling, filling, confidence."""

import numpy as np
import pytest

from simspine.errors import InputError
from simspine.multiview.merge import (
    MergeOptions,
    default_correspondence,
    h36m_trajectories,
    merge_markers,
    resample,
    same_frame,
)
from simspine.skeletons import H36M_TO_SPINETRACK, h36m32, spinetrack37
from simspine.trajectories import Trajectories

ST = spinetrack37()
FRAME = "human3.6m-world (Z up)"


def _motion(t, k):
    """Smooth known motion of keypoint k (metres)."""
    return np.stack([0.1 * k + 0.5 * t, 0.02 * k + 0.1 * np.sin(t), 1.0 + 0.01 * k + 0 * t], -1)


def _pseudo(rate=60.0, T=120, start=0.0):
    t = start + np.arange(T) / rate
    xyz = np.stack([_motion(t, k) for k in range(37)], 1)
    return Trajectories(t, ST.names, xyz, conf=np.full((T, 37), 0.8), frame=FRAME)


def _h36m(T=100, rate=50.0):
    t = np.arange(T) / rate
    j = np.full((T, 32, 3), np.nan)
    for name, st in H36M_TO_SPINETRACK.items():
        j[:, h36m32().index(name)] = _motion(t, ST.index(st)) + 0.003  # 3 mm off the pseudo
    return h36m_trajectories(j * 1000.0, rate, units="mm")


def test_resample_linear_motion_exact():
    p = _pseudo()
    t2 = np.arange(0, 1.9, 0.02)
    xyz, conf = resample(p, t2)
    inside = t2 <= p.time[-1]
    # linear in x and z: exact; y (sine) within linear-interpolation error
    expect = np.stack([_motion(t2, k) for k in range(37)], 1)
    assert np.allclose(xyz[inside][..., 0], expect[inside][..., 0], atol=1e-12)
    assert np.abs(xyz[inside] - expect[inside]).max() < 0.1 * (1 / 60) ** 2
    assert np.isnan(xyz[~inside]).all() and (conf[~inside] == 0).all()
    assert np.allclose(conf[inside], 0.8)


def test_resample_does_not_bridge_long_gaps():
    p = _pseudo()
    p.xyz[30:60, 5] = np.nan
    xyz, _ = resample(p, p.time, max_gap_s=0.1)
    assert np.isnan(xyz[30:60, 5]).all() and np.isfinite(xyz[:30, 5]).all()
    xyz, _ = resample(p, p.time, max_gap_s=1.0)
    assert np.isfinite(xyz[30:60, 5]).all()


def test_merge_h36m_table_timestamps_and_confidence():
    p, h = _pseudo(), _h36m()
    assert default_correspondence(h.names) == H36M_TO_SPINETRACK
    m = merge_markers(p, h)
    assert m.names == list(ST.names) and m.frame == FRAME
    assert np.array_equal(m.time, h.time)
    tr = [ST.index(v) for v in H36M_TO_SPINETRACK.values()]
    others = np.setdiff1d(np.arange(37), tr)
    expect = np.stack([_motion(h.time, k) for k in range(37)], 1)
    assert np.allclose(m.xyz[:, tr], expect[:, tr] + 0.003, atol=1e-12)  # trusted wins
    assert np.allclose(m.conf[:, tr], 1.0)
    assert np.abs(m.xyz[:, others] - expect[:, others]).max() < 1e-4  # pseudo, resampled 60 -> 50 Hz
    assert np.allclose(m.conf[:, others], 0.5 * 0.8)
    assert (m.meta["sample_source"][:, tr] == 1).all() and (m.meta["sample_source"][:, others] == 2).all()


def test_merge_fallback_and_short_horizon_filling():
    p, h = _pseudo(), _h36m()
    lw = h36m32().index("LWrist")
    h.xyz[10:13, lw] = np.nan  # trusted gap: falls back to the pseudo keypoint
    k = ST.index("Spine_03")
    p.xyz[20:23, k] = np.nan  # pseudo gap of 3 frames at 60 Hz: bridged by resampling
    p.xyz[60:90, ST.index("Nose")] = np.nan  # 0.5 s gap: too long, stays missing
    m = merge_markers(p, h)
    iw = ST.index("LWrist")
    assert (m.meta["sample_source"][10:13, iw] == 2).all() and np.allclose(m.conf[10:13, iw], 0.4)
    assert np.isfinite(m.xyz[:, k]).all()
    nose = m.point("Nose")
    assert np.isnan(nose).any() and (m.conf[np.isnan(nose).any(-1), ST.index("Nose")] == 0).all()
    # without fallback, a short trusted gap is filled by interpolation with reduced confidence
    m2 = merge_markers(p, h, options=MergeOptions(fallback_to_pseudo=False, fill_horizon_s=0.1))
    assert (m2.meta["sample_source"][10:13, iw] == 3).all()
    assert np.allclose(m2.conf[10:13, iw], 0.5)
    expect = _motion(h.time[10:13], iw) + 0.003
    assert np.abs(m2.xyz[10:13, iw] - expect).max() < 1e-3
    # ends: a trusted marker starting late is held for at most the horizon (5 frames at 50 Hz)
    h.xyz[:20, h36m32().index("RKnee")] = np.nan
    m3 = merge_markers(p, h, options=MergeOptions(fallback_to_pseudo=False))
    src = m3.meta["sample_source"][:, ST.index("RKnee")]
    assert (src[:15] == 0).all() and (src[15:20] == 3).all() and (src[20:] == 1).all()


def test_merge_trc_names_and_errors():
    p = _pseudo()
    t = np.arange(50) / 50.0
    trc = Trajectories(t, ["LHip", "RHip", "Marker9"], np.zeros((50, 3, 3)), frame=FRAME)
    assert default_correspondence(trc.names) == {"LHip": "LHip", "RHip": "RHip"}
    m = merge_markers(p, trc)
    assert np.allclose(m.point("LHip"), 0.0)
    assert same_frame("opensim-ground (Y up)", "opensim-ground (Y up, metres)")
    assert not same_frame("opensim-ground (Y up)", FRAME)
    with pytest.raises(InputError, match="frame"):
        merge_markers(p, Trajectories(t, ["LHip"], np.zeros((50, 1, 3)), frame="opensim-ground (Y up)"))
    with pytest.raises(InputError, match="not there"):
        merge_markers(p, trc, correspondence={"LKnee": "LKnee"})
    with pytest.raises(InputError, match="unknown keypoint"):
        merge_markers(p, trc, correspondence={"Marker9": "T12"})
    with pytest.raises(InputError, match="no trusted marker"):
        merge_markers(p, Trajectories(t, ["Foo"], np.zeros((50, 1, 3)), frame=FRAME))
    with pytest.raises(InputError, match=r"\(T, 32 or 17, 3\)"):
        h36m_trajectories(np.zeros((5, 20, 3)))


def test_other_layouts_hip_and_neck_do_not_drive_spinetrack_markers(tmp_path):
    # Halpe-26's "Hip" (pelvis centre) and "Neck" (between the shoulders) are not SpineTrack-37's
    # sacrum and C7: a body-detector session must not feed them into those markers.
    from simspine.annotate import _pseudo_only
    from simspine.io.npz import read_trajectories_npz, write_trajectories_npz
    from simspine.multiview.merge import MergeOptions
    from simspine.skeletons import model_marker_names

    names = ["Nose", "LShoulder", "RShoulder", "Hip", "Neck", "Head", "LHip", "RHip"]
    t = np.arange(5) / 50.0
    xyz = np.random.default_rng(0).normal(size=(5, len(names), 3))
    assert model_marker_names(names, "HALPE_26") == ["Nose", "LShoulder", "RShoulder", "LHip", "RHip", "Head"]
    assert "Hip" in model_marker_names(names, "SpineTrack-37")
    halpe = Trajectories(t, names, xyz, meta={"skeleton": "HALPE_26"})
    # the layout survives the stage files, so a resumed run decides the same way
    write_trajectories_npz(tmp_path / "f.npz", halpe)
    halpe = read_trajectories_npz(tmp_path / "f.npz")
    only = _pseudo_only(halpe, MergeOptions(), tmp_path)
    assert "Hip" not in only.names and "Neck" not in only.names and "LHip" in only.names
    trusted = Trajectories(t, ["LKnee"], xyz[:, :1])
    merged = merge_markers(halpe, trusted)
    sk = spinetrack37()
    assert np.isnan(merged.xyz[:, sk.index("Hip")]).all() and np.isnan(merged.xyz[:, sk.index("Neck")]).all()
    assert np.allclose(merged.xyz[:, sk.index("LHip")], xyz[:, names.index("LHip")])
