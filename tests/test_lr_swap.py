"""Left/right swap recovery per view: pairs from names, the run decoder, known geometry, a synthetic
session with swaps over runs of frames, and the switch in the options and on the command line."""

import argparse

import numpy as np
import pytest
from synth_pose import standing_pose

from simspine.io.session import Session2D
from simspine.multiview.lr_swap import SwapOptions, _viterbi, fix_lr_swaps, labellings, swap_index
from simspine.multiview.reconstruct import triangulate_session
from simspine.multiview.triangulation import TriangulationOptions
from simspine.skeletons import spinetrack37
from simspine.synth.rig import h36m_rig

SK = spinetrack37()
SWAP = np.asarray(SK.swap)


def test_swap_index_from_names():
    assert swap_index(SK.names).tolist() == list(SK.swap)
    names = ["nose", "left_hip", "right_hip", "LeftKnee", "RightKnee", "pelvis", "hip_r", "hip_l", "LFoo", "Lumbar"]
    assert swap_index(names).tolist() == [0, 2, 1, 4, 3, 5, 7, 6, 8, 9]


def test_labellings_and_run_decoder():
    assert labellings(4).shape == (15, 4) and not labellings(4)[0].any()  # all but "every view mirrored"
    assert len(labellings(3)) == 7 and len(labellings(2)) == 3
    hyps = np.array([[False], [True]])
    trans = 4.0 * np.array([[0, 1], [1, 0]])
    start = np.array([0.0, 4.0])
    T = 60
    cost = np.zeros((T, 2))
    cost[:, 1] = 1.0  # mild evidence for "as detected" everywhere
    cost[10, 0] = 7.0  # one noisy frame: evidence 7 - 1 = 6 < 2 x switch cost: no flip
    cost[20:40, 0] = 3.0  # a run with 2 per frame: flips
    cost[28:32] = 0.0  # frames without evidence inside the run carry its state
    path = hyps[_viterbi(cost, trans, start)][:, 0]
    assert not path[:20].any() and path[20:40].all() and not path[40:].any()


def _turning(rig, T):
    """The standing pose on the rig's stage (world, Z up), turning about the vertical over T frames."""
    p = rig.model_to_world(standing_pose() + rig.stage_yup)
    c = rig.stage_zup
    out = []
    for a in np.linspace(0, np.pi, T):
        R = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
        out.append((p - c) @ R.T + c)
    return np.array(out)


@pytest.fixture(scope="module")
def turning():
    rig = h36m_rig("S9")
    X = _turning(rig, 80)
    uv = np.stack([cam.project(X) for cam in rig.cameras]) + np.random.default_rng(0).normal(0, 2.0, (4, 80, 37, 2))
    return rig.cameras, X, uv, np.full((4, 80, 37), 0.9)


def test_known_geometry(turning):
    cams, X, uv, conf = turning
    truth = np.zeros((4, 80), bool)
    truth[1, 10:30] = True  # one view over a run
    truth[2, 25:40] = True  # overlapping with another: two views at once for five frames
    truth[0, 50:65] = truth[3, 50:65] = True  # two of four views over the very same frames
    bad_uv = np.where(truth[..., None, None], uv[:, :, SWAP], uv)
    bad_conf = np.where(truth[..., None], conf[:, :, SWAP], conf)
    fixed_uv, fixed_conf, swapped = fix_lr_swaps(cams, bad_uv, bad_conf, SWAP)
    np.testing.assert_array_equal(swapped, truth)
    np.testing.assert_array_equal(fixed_uv, uv)
    np.testing.assert_array_equal(fixed_conf, conf)
    # the pair (0, 3) is told from its complement (1, 2) only by 3D continuity
    _, _, tie = fix_lr_swaps(cams, bad_uv, bad_conf, SWAP, SwapOptions(continuity_cost=0))
    assert (tie[:, 50:65] == truth[:, 50:65]).all() or (tie[:, 50:65] == ~truth[:, 50:65]).all()
    # two cameras cannot tell which view is mirrored: unchanged
    u2, c2, s2 = fix_lr_swaps(cams[:2], bad_uv[:2], bad_conf[:2], SWAP)
    assert not s2.any() and np.array_equal(u2, bad_uv[:2], equal_nan=True)


def _session(cams, uv, conf):
    T = uv.shape[1]
    return Session2D(cams, uv, conf, np.arange(T) / 50.0, list(SK.names), "SpineTrack-37", 50.0)


def test_synthetic_session_swap_runs():
    """10% of view-frames mirrored over runs of 10 frames (simulated detector, 2 s, four Human3.6M
    cameras, default noise, outliers and occlusion): >= 90% found, almost no false alarms, MPJPE as
    without the swaps (without the fix the whole body is 40% worse)."""
    from simspine.synth.detector import DetectorConfig
    from simspine.synth.session import SynthConfig, make_session

    s = make_session(SynthConfig(action="pickup", seconds=2.0, seed=1,
                                 detector=DetectorConfig(swap_runs=0.1, swap_run_frames=10)))
    d, cams, truth = s.detections, s.rig.cameras, s.world_keypoints
    assert abs(d.view_swapped.mean() - 0.1) < 0.01
    clean_uv = np.where(d.view_swapped[..., None, None], d.uv[:, :, SWAP], d.uv)  # the same detections, unswapped
    clean_conf = np.where(d.view_swapped[..., None], d.conf[:, :, SWAP], d.conf)

    def mpjpe(rec, idx):
        return np.nanmean(np.linalg.norm(rec.result.points[:, idx] - truth[:, idx], axis=-1)) * 1000

    clean = triangulate_session(_session(cams, clean_uv, clean_conf))
    fixed = triangulate_session(_session(cams, d.uv, d.conf))
    plain = triangulate_session(_session(cams, d.uv, d.conf), TriangulationOptions(swap_fix=False))
    found = np.zeros_like(d.view_swapped)
    rep = fixed.report["lr_swap"]
    for c, name in enumerate(d.cameras):
        for a, b in rep["cameras"][name]["runs"]:
            found[c, a:b + 1] = True
        assert rep["cameras"][name]["frames_unswapped"] == found[c].sum()
    assert (found & d.view_swapped).sum() >= 0.9 * d.view_swapped.sum()
    assert (found & ~d.view_swapped).sum() <= 0.01 * found.size
    assert clean.report["lr_swap"]["frames_unswapped_total"] == 0
    assert not plain.report["lr_swap"]["enabled"] and plain.report["lr_swap"]["frames_unswapped_total"] == 0
    spine, body = SK.subset("spine"), np.arange(len(SK))
    assert mpjpe(fixed, spine) <= 1.2 * mpjpe(clean, spine)
    assert mpjpe(fixed, body) <= 1.2 * mpjpe(clean, body)
    assert mpjpe(plain, body) > 1.3 * mpjpe(clean, body)


def test_options_and_command_line():
    from simspine.commands.triangulate import add_triangulation_arguments, triangulation_options

    assert TriangulationOptions().swap_fix and TriangulationOptions().consistency
    p = argparse.ArgumentParser()
    add_triangulation_arguments(p)
    o = triangulation_options(p.parse_args([]))
    assert o.swap_fix and o.consistency
    o = triangulation_options(p.parse_args(["--no-swap-fix", "--no-consistency"]))
    assert not o.swap_fix and not o.consistency


def test_swap_groups_from_names():
    from simspine.multiview.lr_swap import swap_groups

    g = swap_groups(SK.names)
    named = {k: sorted(SK.names[i] for i in v) for k, v in g.items()}
    assert named["face"] == ["LEar", "LEye", "REar", "REye"]
    assert {"LShoulder", "RElbow", "LWrist", "RClavicle", "LLatissimus"} <= set(named["arms"])
    assert {"LHip", "RKnee", "LAnkle", "RBigToe", "LSmallToe", "RHeel"} <= set(named["legs"])
    assert not set(named["arms"]) & set(named["legs"])
    lr = {SK.names[k] for k in range(len(SK)) if SWAP[k] != k}
    assert set().union(*named.values()) == lr  # every SpineTrack-37 pair is in a group
    for v in g.values():
        assert set(SWAP[v]) == set(v)  # closed under the left/right swap
    g2 = swap_groups(["left_shoulder", "right_shoulder", "hip_l", "hip_r", "nose"])
    assert g2["arms"].tolist() == [0, 1] and g2["legs"].tolist() == [2, 3] and "face" not in g2


def test_arms_only_swap_run():
    """Only the arms of one view mirrored over 30 frames (the legs as detected), as a real detector
    does: the arms group is relabelled over >= 90% of the run, nothing else is touched, and the
    whole-body MPJPE is that of the session without the swap (within 1.1x). Deciding whole views
    cannot fix it."""
    from simspine.multiview.lr_swap import fix_lr_swaps_by_group, swap_groups
    from simspine.synth.session import SynthConfig, make_session

    s = make_session(SynthConfig(action="pickup", seconds=2.0, seed=1))
    d, cams, truth = s.detections, s.rig.cameras, s.world_keypoints
    arms = swap_groups(SK.names)["arms"]
    run = np.zeros(d.uv.shape[:3], bool)  # (C, T, K)
    run[1, 30:60, arms] = True
    bad_uv = np.where(run[..., None], d.uv[:, :, SWAP], d.uv)
    bad_conf = np.where(run, d.conf[:, :, SWAP], d.conf)

    _, _, by = fix_lr_swaps_by_group(cams, bad_uv, bad_conf, SWAP, names=SK.names)
    assert set(by) == {"arms", "legs", "view"}  # the face (two pairs) follows the whole view
    assert by["arms"][1, 30:60].mean() >= 0.9
    assert (by["arms"] & ~run.any(-1)).sum() <= 2
    assert not by["legs"].any() and not by["view"].any()

    def mpjpe(rec):
        return np.nanmean(np.linalg.norm(rec.result.points - truth, axis=-1)) * 1000

    clean = triangulate_session(_session(cams, d.uv, d.conf))
    fixed = triangulate_session(_session(cams, bad_uv, bad_conf))
    assert mpjpe(fixed) <= 1.1 * mpjpe(clean)
    rep = fixed.report["lr_swap"]["cameras"][d.cameras[1]]
    assert rep["groups"]["arms"] >= 27 and rep["groups"]["legs"] == 0
    # whole views only: mirroring the view would break its legs, so the arms stay swapped
    _, _, view = fix_lr_swaps_by_group(cams, bad_uv, bad_conf, SWAP, groups={})
    assert view["view"][1, 30:60].mean() < 0.5
