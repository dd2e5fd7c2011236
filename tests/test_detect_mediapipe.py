"""The mediapipe backend of ``simspine detect``: BlazePose -> SpineTrack-37 mapping, and runs on a
blank video and on real frames of Pose2Sim's demo recording."""

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from simspine.detect.mediapipe_backend import BLAZEPOSE_TO_SPINETRACK, landmarks_to_spinetrack
from simspine.skeletons import spinetrack37

NAMES = list(spinetrack37().names)
K = len(NAMES)


def test_mapping_fills_the_corresponding_points_only():
    lm = np.c_[np.arange(33) / 40, np.arange(33) / 80, 0.3 + np.arange(33) / 100]
    xy, conf = landmarks_to_spinetrack(lm, 640, 480, NAMES)
    idx = {n: i for i, n in enumerate(NAMES)}
    # Pixel position = normalised position x image size; confidence = visibility.
    np.testing.assert_allclose(xy[idx["LEye"]], [2 / 40 * 640, 2 / 80 * 480])     # left eye centre, not a corner
    np.testing.assert_allclose(xy[idx["RBigToe"]], [32 / 40 * 640, 32 / 80 * 480])
    assert conf[idx["LShoulder"]] == pytest.approx(0.3 + 11 / 100)
    assert conf[idx["RShoulder"]] == pytest.approx(0.3 + 12 / 100)               # sides not swapped
    mapped = conf > 0
    assert mapped.sum() == 21
    # No Head, Neck (C7) or Hip (sacrum) synthesised from BlazePose, no small toes, no spine points.
    for name in ["Head", "Neck", "Hip", "LSmallToe", "RSmallToe", "Spine_01", "Spine_05", "LClavicle",
                 "LLatissimus", "Neck_02", "Neck_03"]:
        assert conf[idx[name]] == 0 and np.isnan(xy[idx[name]]).all(), name


def test_mapping_matches_mediapipe_landmark_names():
    mp = pytest.importorskip("mediapipe")
    expected = {"Nose": "NOSE", "Eye": "EYE", "Ear": "EAR", "Shoulder": "SHOULDER", "Elbow": "ELBOW",
                "Wrist": "WRIST", "Hip": "HIP", "Knee": "KNEE", "Ankle": "ANKLE", "Heel": "HEEL",
                "BigToe": "FOOT_INDEX"}
    for name, i in BLAZEPOSE_TO_SPINETRACK.items():
        side = {"L": "LEFT_", "R": "RIGHT_"}.get(name[0], "") if name != "Nose" else ""
        part = name[1:] if side else name
        assert mp.solutions.pose.PoseLandmark(i).name == side + expected[part], name


def _video(path, frames):
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = frames[0].shape[:2]
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (w, h))
    assert vw.isOpened()
    for f in frames:
        vw.write(f)
    vw.release()


def test_mediapipe_on_a_blank_video_writes_empty_frames_and_resumes(tmp_path, capsys):
    pytest.importorskip("mediapipe")
    from simspine.cli import main

    s = tmp_path / "s"
    _video(s / "videos" / "camA.avi", [np.full((96, 128, 3), 90, np.uint8)] * 3)
    assert main(["detect", str(s), "--backend", "mediapipe", "--no-progress"]) == 0
    assert "camA: 3 frames (128x96)" in capsys.readouterr().out
    files = sorted((s / "pose" / "camA_json").iterdir())
    assert [f.name for f in files] == ["camA_000000.json", "camA_000001.json", "camA_000002.json"]
    assert all(json.loads(f.read_text())["people"] == [] for f in files)     # nobody in a blank frame
    assert main(["detect", str(s), "--backend", "mediapipe", "--no-progress"]) == 0
    assert "0 camera(s) detected, 1 already complete" in capsys.readouterr().out


def _demo_video():
    try:
        import Pose2Sim
    except ImportError:
        return None
    p = Path(Pose2Sim.__file__).parent / "Demo_SinglePerson" / "videos" / "cam01.mp4"
    return p if p.is_file() else None


@pytest.mark.skipif(_demo_video() is None, reason="Pose2Sim's demo recording is not installed")
def test_mediapipe_finds_the_person_in_real_frames(tmp_path):
    pytest.importorskip("mediapipe")
    from simspine.detect import detect_session
    from simspine.io.openpose import read_openpose_folder

    cap = cv2.VideoCapture(str(_demo_video()))
    frames = []
    for _ in range(4):
        ok, f = cap.read()
        assert ok
        frames.append(cv2.resize(f, (f.shape[1] // 3, f.shape[0] // 3), interpolation=cv2.INTER_AREA))
    cap.release()
    s = tmp_path / "s"
    _video(s / "videos" / "cam01.avi", frames)
    res = detect_session(s, "mediapipe", progress=False, log=lambda m: None)
    assert res[0].n_frames == 4 and res[0].frames_with_person == 4
    xy, conf = read_openpose_folder(s / "pose" / "cam01_json", K)
    idx = {n: i for i, n in enumerate(NAMES)}
    body = [idx[n] for n in ["Nose", "LShoulder", "RShoulder", "LHip", "RHip", "LKnee", "RKnee"]]
    assert (conf[:, body] > 0.5).all()
    assert (conf[:, [idx[n] for n in ["Head", "Neck", "Hip", "Spine_03"]]] == 0).all()
    # An upright person: nose above shoulders above hips above knees above ankles (image y down).
    y = {n: xy[:, [idx["L" + n], idx["R" + n]], 1].mean(axis=1) for n in ["Shoulder", "Hip", "Knee", "Ankle"]}
    assert (xy[:, idx["Nose"], 1] < y["Shoulder"]).all()
    assert (y["Shoulder"] < y["Hip"]).all() and (y["Hip"] < y["Knee"]).all() and (y["Knee"] < y["Ankle"]).all()
    # Inside the frame, and nose to ankles spans about a third of its height (the subject stands back).
    h = frames[0].shape[0]
    assert ((xy[:, body] >= 0) & (xy[:, body] <= max(frames[0].shape[:2]))).all()
    assert (y["Ankle"] - xy[:, idx["Nose"], 1] > 0.25 * h).all()
