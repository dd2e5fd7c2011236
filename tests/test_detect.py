"""``simspine detect``: session videos -> OpenPose JSON per frame, resumable per camera; the spinepose
backend run on tiny ONNX models exported here (known SimCC peaks, known boxes)."""

import json

import cv2
import numpy as np
import pytest

from simspine.cli import main
from simspine.detect import detect_session
from simspine.detect.writer import is_complete
from simspine.errors import InputError
from simspine.io.openpose import read_openpose_folder

K = 37


def make_video(path, n_frames, size=(64, 48)):
    """A small black MJPG .avi."""
    path.parent.mkdir(parents=True, exist_ok=True)
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, size)
    assert vw.isOpened()
    for _ in range(n_frames):
        vw.write(np.zeros((size[1], size[0], 3), np.uint8))
    vw.release()
    return path


class FakeBackend:
    """One person per frame at a position that encodes the frame number; can fail at a given call."""

    name = "fake"

    def __init__(self, fail_at=None):
        self.cameras = 0
        self.calls = 0
        self.fail_at = fail_at

    def camera(self):
        self.cameras += 1
        frame_no = iter(range(10**6))

        def detect(frame):
            self.calls += 1
            if self.fail_at is not None and self.calls == self.fail_at:
                raise KeyboardInterrupt
            i = next(frame_no)
            xy = np.full((1, K, 2), np.nan)
            conf = np.zeros((1, K))
            xy[0, 5] = (10.0 + i, 20.0)       # LShoulder moves 1 px per frame
            conf[0, 5] = 0.75
            return xy, conf

        detect.close = lambda: None
        return detect


def _session(tmp_path, frames=(5, 5)):
    s = tmp_path / "s"
    for i, n in enumerate(frames):
        make_video(s / "videos" / f"cam{i + 1:02d}.avi", n)
    return s


def test_detect_writes_one_file_per_frame_numbered_from_zero(tmp_path):
    s = _session(tmp_path, (5, 7))
    res = detect_session(s, FakeBackend(), progress=False, log=lambda m: None)
    assert [(r.camera, r.n_frames, r.skipped, r.frames_with_person) for r in res] == \
        [("cam01", 5, False, 5), ("cam02", 7, False, 7)]
    names = sorted(p.name for p in (s / "pose" / "cam02_json").iterdir())
    assert names == [f"cam02_{i:06d}.json" for i in range(7)]
    doc = json.loads((s / "pose" / "cam02_json" / "cam02_000003.json").read_text())
    kp = np.array(doc["people"][0]["pose_keypoints_2d"]).reshape(K, 3)
    # Frame 3's detection sits in file 3: a frame off-by-one or a lost keypoint order shows here.
    assert kp[5].tolist() == [13.0, 20.0, 0.75]
    assert np.count_nonzero(kp) == 3                   # keypoints not produced are 0, 0, 0
    xy, conf = read_openpose_folder(s / "pose" / "cam02_json")
    assert xy.shape == (7, K, 2) and np.allclose(xy[:, 5, 0], 10 + np.arange(7))
    assert sorted(p.name for p in (s / "pose").iterdir()) == ["cam01_json", "cam02_json"]   # no partial folder left


def test_detect_resumes_per_camera_and_never_leaves_a_half_written_camera(tmp_path):
    s = _session(tmp_path, (5, 5))
    # Interrupted on cam02's third frame: cam01 is complete, cam02 has no folder at all.
    with pytest.raises(KeyboardInterrupt):
        detect_session(s, FakeBackend(fail_at=5 + 3), progress=False, log=lambda m: None)
    assert is_complete(s / "pose" / "cam01_json", "cam01", 5)
    assert not (s / "pose" / "cam02_json").exists()
    assert not any(p.name.startswith(".") for p in (s / "pose").iterdir())
    stamp = (s / "pose" / "cam01_json" / "cam01_000000.json").stat().st_mtime_ns

    be = FakeBackend()
    res = detect_session(s, be, progress=False, log=lambda m: None)
    assert [r.skipped for r in res] == [True, False]
    assert be.cameras == 1 and be.calls == 5           # only cam02 was detected again
    assert (s / "pose" / "cam01_json" / "cam01_000000.json").stat().st_mtime_ns == stamp
    assert is_complete(s / "pose" / "cam02_json", "cam02", 5)

    # A folder missing a frame (removed by hand) is nobody's finished work: refused, kept, named.
    (s / "pose" / "cam02_json" / "cam02_000004.json").unlink()
    with pytest.raises(InputError, match="cam02_json: holds keypoints that are not a complete SpineTrack-37"):
        detect_session(s, FakeBackend(), progress=False, log=lambda m: None)
    assert len(list((s / "pose" / "cam02_json").iterdir())) == 4
    # --overwrite detects everything again.
    be = FakeBackend()
    detect_session(s, be, overwrite=True, progress=False, log=lambda m: None)
    assert be.calls == 10 and is_complete(s / "pose" / "cam02_json", "cam02", 5)


def test_another_detectors_folder_is_not_taken_for_a_finished_camera(tmp_path):
    s = _session(tmp_path, (3,))
    # A complete HALPE_26 folder (26 keypoints) with the same file names, e.g. from Pose2Sim.
    folder = s / "pose" / "cam01_json"
    folder.mkdir(parents=True)
    for i in range(3):
        doc = {"version": 1.3, "people": [{"pose_keypoints_2d": [1.0] * 78}]}
        (folder / f"cam01_{i:06d}.json").write_text(json.dumps(doc))
    with pytest.raises(InputError, match="26 keypoints per person.*--overwrite"):
        detect_session(s, FakeBackend(), progress=False, log=lambda m: None)
    assert json.loads((folder / "cam01_000000.json").read_text())["people"][0]["pose_keypoints_2d"] == [1.0] * 78
    res = detect_session(s, FakeBackend(), overwrite=True, progress=False, log=lambda m: None)
    assert not res[0].skipped and len(read_openpose_folder(folder)[0][0]) == K


def test_detect_input_errors_are_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["detect", str(tmp_path / "empty"), "--backend", "mediapipe"]) == 2
    err = capsys.readouterr().err.strip()
    assert "videos" in err and "\n" not in err

    bad = tmp_path / "bad"
    (bad / "videos").mkdir(parents=True)
    (bad / "videos" / "cam01.mp4").write_bytes(b"not a video at all" * 100)
    with pytest.raises(InputError, match="cam01.mp4: cannot open"):
        detect_session(bad, FakeBackend(), progress=False)

    s = _session(tmp_path, (2,))
    assert main(["detect", str(s), "--pose-model", str(tmp_path / "nope.onnx"), "--no-detector"]) == 2
    err = capsys.readouterr().err.strip()
    assert "nope.onnx: pose model not found" in err and "\n" not in err
    assert not (s / "pose" / "cam01_json").exists()


def test_spinepose_without_model_files_names_the_option_and_downloads_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))   # an empty spinepose cache
    s = _session(tmp_path, (2,))
    assert main(["detect", str(s), "--backend", "spinepose"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--pose-model" in err and "\n" not in err
    assert not (tmp_path / "home").exists()             # nothing created, nothing fetched
