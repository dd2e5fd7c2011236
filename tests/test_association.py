"""Several people in view: the tracked subject is chosen by cross-view agreement and continuity
(simspine.multiview.association), not by detector confidence; --person picks another subject."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from simspine.calibration import h36m_cameras, write_calibration_toml
from simspine.errors import InputError
from simspine.frames import yup_to_zup
from simspine.io.openpose import read_openpose_people, read_openpose_people_folder
from simspine.io.session import load_pose2sim_session
from simspine.multiview.association import associate, capture_centre
from simspine.multiview.triangulation import triangulate
from simspine.synth.detector import DetectorConfig, simulate_detections
from simspine.synth.rig import ring_rig

sys.path.insert(0, str(Path(__file__).parent))
from synth_pose import standing_pose  # noqa: E402

T, FPS = 120, 50.0


def _walker(centre, offset, phase, T=T):
    """(T, 37, 3) Z-up world: the standing pose turning and swaying around ``centre + offset``."""
    t = np.arange(T) / FPS
    base = yup_to_zup(standing_pose())
    ang = 0.6 * np.sin(2 * np.pi * 0.3 * t + phase) + phase
    c, s = np.cos(ang), np.sin(ang)
    R = np.zeros((T, 3, 3))
    R[:, 0, 0], R[:, 0, 1], R[:, 1, 0], R[:, 1, 1], R[:, 2, 2] = c, -s, s, c, 1.0
    xyz = np.einsum("tij,kj->tki", R, base)
    xyz[..., 0] += centre[0] + offset[0] + 0.3 * np.sin(2 * np.pi * 0.2 * t + phase)[:, None]
    xyz[..., 1] += centre[1] + offset[1]
    return xyz


def _people(cams, offset=(1.5, 0.5), intruder_cams=None, seed=0, T=T):
    """Subject at the capture centre and a more confident intruder ``offset`` metres away.

    Returns truth (subject, intruder), single-person detections (uv, conf) of the subject, and
    the candidate arrays (C, T, 2, K, 2) / (C, T, 2, K) in a per-frame shuffled order with the
    subject's index (C, T) (-1 where a camera does not see it).
    """
    centre = capture_centre(cams)
    A = _walker(centre, (0.0, 0.0), 0.0, T)
    B = _walker(centre, offset, 1.3, T)
    dA = simulate_detections(A, cams, DetectorConfig(), np.random.default_rng(seed + 1))
    dB = simulate_detections(B, cams, DetectorConfig(), np.random.default_rng(seed + 2))
    cB = np.where(dB.conf > 0, np.clip(dB.conf * 1.25 + 0.1, 0, 1), 0.0)  # clearer than the subject
    uvB = dB.uv.copy()
    if intruder_cams is not None:
        off = np.setdiff1d(np.arange(len(cams)), intruder_cams)
        uvB[off], cB[off] = np.nan, 0.0
    uv = np.stack([dA.uv, uvB], 2)
    conf = np.stack([dA.conf, cB], 2)
    swap = np.random.default_rng(seed + 3).random((len(cams), T)) < 0.5
    uv = np.where(swap[..., None, None, None], uv[:, :, ::-1], uv)
    conf = np.where(swap[..., None, None], conf[:, :, ::-1], conf)
    return (A, B), (dA.uv, dA.conf), (uv, conf), swap.astype(int)


def _mpjpe_mm(cams, uv, conf, truth):
    X = triangulate(cams, uv, conf).points
    return 1000 * float(np.nanmean(np.linalg.norm(X - truth, axis=-1)))


@pytest.fixture(scope="module")
def h36m():
    return h36m_cameras("S9")


def test_more_confident_intruder_in_one_camera_does_not_displace_the_subject(h36m):
    (A, _), single, (uv, conf), subj = _people(h36m, intruder_cams=[1])
    res = associate(h36m, uv, conf, fps=FPS)
    # camera 1 holds two people, the others one (the subject) in slot 0 or 1 as shuffled
    present = np.isfinite(uv).any((-1, -2)) & (conf > 0).any(-1)  # (C, T, P)
    truth_idx = np.where(present[np.arange(4)[:, None], np.arange(T)[None], subj], subj, -1)
    assert (res.chosen == truth_idx).mean() >= 0.99
    base = _mpjpe_mm(h36m, *single, A)
    mine = _mpjpe_mm(h36m, res.keypoints, res.conf, A)
    assert abs(mine - base) <= max(0.5, 0.02 * base), (mine, base)
    # the most confident person per file (the old reader) is displaced in camera 1
    best = conf.mean(-1).argmax(2)
    ci, ti = np.arange(4)[:, None], np.arange(T)[None]
    naive = _mpjpe_mm(h36m, uv[ci, ti, best], conf[ci, ti, best], A)
    assert naive > base + 5, (naive, base)


def test_intruder_in_every_camera_shuffled_order_tracks_the_subject_and_person_1_the_other(h36m):
    (A, B), single, (uv, conf), subj = _people(h36m, offset=(1.2, -0.6), seed=5)
    res = associate(h36m, uv, conf, fps=FPS)
    assert (res.chosen == subj).mean() >= 0.99
    assert res.people_at_start == 2 and res.start_frame == 0
    base = _mpjpe_mm(h36m, *single, A)
    assert abs(_mpjpe_mm(h36m, res.keypoints, res.conf, A) - base) <= max(0.5, 0.02 * base)
    other = associate(h36m, uv, conf, person=1, fps=FPS)
    assert (other.chosen == 1 - subj).mean() >= 0.99
    assert _mpjpe_mm(h36m, other.keypoints, other.conf, B) < 40  # the intruder, reconstructed
    with pytest.raises(InputError, match="person 2 asked for, but at most 2 people"):
        associate(h36m, uv, conf, person=2, fps=FPS)


def test_subject_missing_from_a_camera_leaves_it_empty_not_the_bystander(h36m):
    (A, _), _, (uv, conf), subj = _people(h36m, offset=(0.0, 1.0), seed=2)
    # camera 2 loses the subject for frames 40..79 while the bystander stays in its files
    gone = np.zeros((4, T), bool)
    gone[2, 40:80] = True
    slot = subj[2, 40:80]
    uv[2, np.arange(40, 80), slot], conf[2, np.arange(40, 80), slot] = np.nan, 0.0
    res = associate(h36m, uv, conf, fps=FPS)
    assert (res.chosen[gone] == -1).mean() >= 0.99
    assert (res.chosen[~gone] == subj[~gone]).mean() >= 0.99
    assert np.isnan(res.keypoints[gone]).all() and (res.conf[gone] == 0).all()


# ---- Pose2Sim project folders ------------------------------------------------------------------
def _write_people_folder(folder: Path, uv, conf, count_frames=None):
    """OpenPose JSON with every candidate of (T, P, K, 2) written as a person (empty ones left out)."""
    folder.mkdir(parents=True, exist_ok=True)
    for t in range(uv.shape[0]):
        people = []
        for p in range(uv.shape[1]):
            ok = np.isfinite(uv[t, p]).all(-1) & (conf[t, p] > 0)
            if not ok.any():
                continue
            vals = np.zeros((uv.shape[2], 3))
            vals[ok, :2], vals[ok, 2] = uv[t, p, ok], conf[t, p, ok]
            people.append({"person_id": [-1], "pose_keypoints_2d": [round(float(v), 3) for v in vals.ravel()]})
        (folder / f"{folder.name[:-5]}_{t:06d}.json").write_text(json.dumps({"version": 1.3, "people": people}))


@pytest.fixture(scope="module")
def two_people_project(tmp_path_factory):
    rig = ring_rig(4)
    cams = rig.cameras
    root = tmp_path_factory.mktemp("two_people")
    truth, single, (uv, conf), subj = _people(cams, offset=(1.4, 0.4), seed=11, T=60)
    for name, (u, c) in (("many", (uv, conf)), ("one", (single[0][:, :, None], single[1][:, :, None]))):
        s = root / name
        write_calibration_toml(s / "calibration" / "Calib.toml", cams)
        for i, cam in enumerate(cams):
            _write_people_folder(s / "pose" / f"{cam.name}_json", u[i], c[i])
        (s / "Config.toml").write_text("[project]\nframe_rate = 50\n")
    return root, cams, truth, subj


def test_reader_returns_every_person_in_file_order(two_people_project):
    root, cams, _, subj = two_people_project
    folder = root / "many" / "pose" / f"{cams[0].name}_json"
    xy, conf = read_openpose_people(folder / f"{cams[0].name}_000003.json")
    assert xy.shape == (2, 37, 2) and conf.shape == (2, 37)
    xy_all, conf_all, count = read_openpose_people_folder(folder)
    assert xy_all.shape == (60, 2, 37, 2) and (count == 2).all()
    np.testing.assert_array_equal(np.isnan(xy_all[3]), np.isnan(xy))
    # a frame with nobody: P = 0, and padding in the folder array
    empty = root / "empty.json"
    empty.write_text(json.dumps({"people": []}))
    xy0, conf0 = read_openpose_people(empty, 37)
    assert xy0.shape == (0, 37, 2) and conf0.shape == (0, 37)
    assert read_openpose_people(empty) == (None, None)


def test_session_with_two_people_per_file_keeps_the_subject_and_person_selects(two_people_project):
    root, cams, (A, B), subj = two_people_project
    one = load_pose2sim_session(root / "one")
    many = load_pose2sim_session(root / "many")
    assert one.meta["people"] == {"person": 0, "frames_with_several_people": 0}
    info = many.meta["people"]
    assert info["frames_with_several_people"] == 60 and info["most_people_in_a_file"] == 2
    assert info["association"]["frames_with_subject"] == 60
    json.dumps(info)  # JSON-serialisable (saved in the session .npz)
    A60, B60 = A[:60], B[:60]
    base = _mpjpe_mm(cams, one.keypoints, one.conf, A60)
    mine = _mpjpe_mm(cams, many.keypoints, many.conf, A60)
    assert abs(mine - base) <= max(0.5, 0.02 * base), (mine, base)
    # the chosen person is the subject in (nearly) every view: its pixels equal the single-person files'
    same = np.isclose(many.keypoints, one.keypoints, atol=1e-6, equal_nan=True).all((-1, -2))
    assert same.mean() >= 0.99
    other = load_pose2sim_session(root / "many", person=1)
    assert _mpjpe_mm(cams, other.keypoints, other.conf, B60) < 40
    assert _mpjpe_mm(cams, other.keypoints, other.conf, A60) > 500
    with pytest.raises(InputError, match="no keypoint file holds more than one person"):
        load_pose2sim_session(root / "one", person=1)


def test_triangulate_command_person_option(two_people_project, tmp_path, capsys):
    from simspine.cli import main
    from simspine.frames import zup_to_yup
    from simspine.io.trc import read_trc

    root, cams, (A, B), _ = two_people_project
    for person, truth in ((0, A[:60]), (1, B[:60])):
        out = tmp_path / f"p{person}"
        assert main(["triangulate", str(root / "many"), "--out", str(out), "--person", str(person)]) == 0
        assert f"several people in 60 frames: person {person}" in capsys.readouterr().out
        trc = read_trc(out / "triangulated.trc")
        err = np.linalg.norm(trc.xyz - zup_to_yup(truth), axis=-1)
        assert np.nanmean(err) < 0.04
        rep = json.loads((out / "triangulated_report.json").read_text())
        assert rep["people"]["person"] == person and rep["people"]["frames_with_several_people"] == 60
    with pytest.raises(SystemExit) as e:
        main(["triangulate", str(root / "many"), "--out", str(tmp_path / "bad"), "--person", "-1"])
    assert e.value.code != 0 and "--person: must be an integer >= 0" in capsys.readouterr().err


def test_annotate_person_option(two_people_project, tmp_path, capsys):
    from simspine.cli import main
    from simspine.frames import zup_to_yup
    from simspine.io.trc import read_trc

    root, _, (_, B), _ = two_people_project
    out = tmp_path / "ann"
    assert main(["annotate", str(root / "many"), "--out", str(out), "--front-end-only", "--person", "1",
                 "--quiet"]) == 0
    trc = read_trc(out / "triangulated.trc")
    assert np.nanmean(np.linalg.norm(trc.xyz - zup_to_yup(B[:60]), axis=-1)) < 0.04
    assert json.loads((out / "triangulated_report.json").read_text())["people"]["person"] == 1
