"""Pose2Sim sessions: frames identified by the number in their file names, frame rate from
Config.toml or the videos (never a default), and one keypoint layout across cameras."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from simspine.calibration import read_qca
from simspine.cli import main
from simspine.errors import InputError
from simspine.io.openpose import read_openpose_folder, write_openpose_folder
from simspine.io.session import load_pose2sim_session

QCA = Path(__import__("Pose2Sim").__file__).parent / "Demo_SinglePerson" / "calibration" / "Calib.qca.txt"
N = 10  # frames 0..9 of the truth


def _project(root: Path, frames=None, K=37, config="[project]\nframe_rate = 50\n"):
    """Qualisys calibration + OpenPose JSON of projected random points. ``frames[c]`` lists the frame
    numbers camera c has a file for (default all of 0..N-1). Returns the true (C, N, K, 2) pixels."""
    (root / "calibration").mkdir(parents=True)
    shutil.copy(QCA, root / "calibration" / "Calib.qca.txt")
    cams = read_qca(QCA)
    rng = np.random.default_rng(1)
    X = rng.uniform([-0.3, -0.3, 0.2], [0.3, 0.3, 1.7], size=(N, K, 3))
    uv = np.stack([c.project(X) for c in cams])
    for c, cam in enumerate(cams):
        folder = root / "pose" / f"{cam.name}_json"
        keep = range(N) if frames is None else frames[c]
        for f in keep:
            write_openpose_folder(folder, uv[c, f:f + 1], np.full((1, K), 0.9), prefix=cam.name, start=f)
    if config is not None:
        (root / "Config.toml").write_text(config)
    return uv


def test_frame_missing_from_every_camera_is_a_gap_at_its_true_time(tmp_path):
    frames = [[f for f in range(N) if f != 4]] * 4
    uv = _project(tmp_path / "p", frames)
    s = load_pose2sim_session(tmp_path / "p")
    assert s.n_frames == N and s.fps == 50
    np.testing.assert_allclose(s.timestamps, np.arange(N) / 50)  # 0.08 s stays where frame 4 was
    assert np.isnan(s.keypoints[:, 4]).all() and (s.conf[:, 4] == 0).all()
    keep = [f for f in range(N) if f != 4]
    np.testing.assert_allclose(s.keypoints[:, keep], uv[:, keep], atol=1e-3)  # frames 5..9 not shifted
    assert s.meta["first_frame"] == 0 and s.meta["last_frame"] == 9
    assert s.meta["frames_missing"] == {f"cam0{c}": 1 for c in range(1, 5)}


def test_frame_missing_in_one_camera_only(tmp_path):
    frames = [list(range(N)), [f for f in range(N) if f not in (3, 6)], list(range(N)), list(range(N))]
    uv = _project(tmp_path / "p", frames)
    s = load_pose2sim_session(tmp_path / "p")
    assert s.n_frames == N
    assert np.isnan(s.keypoints[1, [3, 6]]).all() and (s.conf[1, [3, 6]] == 0).all()
    np.testing.assert_allclose(s.keypoints[1, 7], uv[1, 7], atol=1e-3)  # frame 7 is frame 7, not frame 5
    np.testing.assert_allclose(s.keypoints[[0, 2, 3]], uv[[0, 2, 3]], atol=1e-3)
    assert s.meta["frames_missing"]["cam02"] == 2


def test_cameras_with_different_numbering_ranges_are_aligned(tmp_path):
    # cam01 has frames 2..9, cam02 0..7, cam03/cam04 3..8: one axis 0..9 by frame number
    frames = [list(range(2, 10)), list(range(0, 8)), list(range(3, 9)), list(range(3, 9))]
    uv = _project(tmp_path / "p", frames)
    s = load_pose2sim_session(tmp_path / "p")
    assert s.n_frames == N and s.meta["first_frame"] == 0 and s.meta["last_frame"] == 9
    np.testing.assert_allclose(s.timestamps, np.arange(N) / 50)
    assert s.meta["frame_ranges"] == {"cam01": [2, 9], "cam02": [0, 7], "cam03": [3, 8], "cam04": [3, 8]}
    for c, fr in enumerate(frames):
        other = [f for f in range(N) if f not in fr]
        assert np.isnan(s.keypoints[c, other]).all()
        np.testing.assert_allclose(s.keypoints[c, fr], uv[c, fr], atol=1e-3)


def test_timestamps_start_at_the_first_frame_number(tmp_path):
    frames = [list(range(5, N))] * 4
    uv = _project(tmp_path / "p", frames)
    s = load_pose2sim_session(tmp_path / "p")
    assert s.n_frames == 5 and s.meta["first_frame"] == 5
    np.testing.assert_allclose(s.timestamps, np.arange(5) / 50)  # t = (frame - 5) / fps
    np.testing.assert_allclose(s.keypoints, uv[:, 5:], atol=1e-3)


def test_single_folder_reads_by_frame_number(tmp_path):
    xy = np.arange(3 * 2 * 2, dtype=float).reshape(3, 2, 2) + 1
    folder = tmp_path / "cam01_json"
    for f, row in zip((7, 9, 12), xy, strict=True):
        write_openpose_folder(folder, row[None], np.ones((1, 2)), start=f)
    got, conf = read_openpose_folder(folder)
    assert got.shape == (6, 2, 2)  # frames 7..12
    np.testing.assert_allclose(got[[0, 2, 5]], xy)
    assert np.isnan(got[[1, 3, 4]]).all() and (conf[[1, 3, 4]] == 0).all()
    got, _ = read_openpose_folder(folder, frames=[9, 10, 12])
    np.testing.assert_allclose(got[[0, 2]], xy[1:])
    assert np.isnan(got[1]).all()


def test_files_without_a_frame_number_are_refused(tmp_path):
    _project(tmp_path / "p")
    folder = tmp_path / "p" / "pose" / "cam02_json"
    shutil.copy(folder / "cam02_000003.json", folder / "cam_last.json")
    with pytest.raises(InputError) as e:
        load_pose2sim_session(tmp_path / "p")
    assert str(e.value).startswith(f"{folder}: 1 keypoint file(s) without a frame number in the name "
                                   "(e.g. 'cam_last.json')")
    (folder / "cam_last.json").unlink()
    shutil.copy(folder / "cam02_000003.json", folder / "cam02_3.json")
    with pytest.raises(InputError, match="two keypoint files for frame 3"):
        load_pose2sim_session(tmp_path / "p")


# ---- frame rate -------------------------------------------------------------------------------
def test_session_without_a_frame_rate_is_refused(tmp_path, capsys):
    for config in (None, "[project]\nframe_rate = 'auto'\n", "[project]\n"):
        root = tmp_path / f"p{hash(config) % 1000}"
        _project(root, config=config)
        with pytest.raises(InputError) as e:
            load_pose2sim_session(root)
        msg = str(e.value)
        assert msg.startswith(f"{root}: frame rate unknown: ") and msg.endswith("pass it with --fps (e.g. --fps 60)")
        assert ("there is no Config.toml" if config is None else "Config.toml has") in msg
        # the command line: one line, exit 2
        assert main(["triangulate", str(root), "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("simspine triangulate: error: ") and "--fps" in err
        # --fps gives it
        s = load_pose2sim_session(root, fps=25)
        assert s.fps == 25 and s.meta["fps_source"] == "argument"
        np.testing.assert_allclose(s.timestamps, np.arange(N) / 25)
    assert not (tmp_path / "o" / "triangulated.trc").exists()
    with pytest.raises(SystemExit) as ex:  # argparse's usage error
        main(["triangulate", str(root), "--out", str(tmp_path / "o"), "--fps", "0"])
    assert ex.value.code == 2 and "argument --fps: must be a number > 0" in capsys.readouterr().err
    with pytest.raises(InputError, match="frame rate must be a number > 0"):
        load_pose2sim_session(root, fps=-5)


def test_config_frame_rate_is_used_and_checked(tmp_path):
    _project(tmp_path / "p", config="[project]\nframe_rate = 120\n")
    s = load_pose2sim_session(tmp_path / "p")
    assert s.fps == 120 and s.meta["fps_source"] == "Config.toml"
    np.testing.assert_allclose(s.timestamps, np.arange(N) / 120)
    for bad, what in (("-30", "must be a number > 0"), ("'fast'", "expected a number \\(Hz\\) or 'auto'"),
                      ("0", "must be a number > 0")):
        (tmp_path / "p" / "Config.toml").write_text(f"[project]\nframe_rate = {bad}\n")
        with pytest.raises(InputError, match=f"^{tmp_path / 'p' / 'Config.toml'}: .*{what}"):
            load_pose2sim_session(tmp_path / "p")


def _video(path: Path, fps: float, frames: int = 3):
    import cv2

    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, (32, 24))
    assert w.isOpened()
    for i in range(frames):
        w.write(np.full((24, 32, 3), 40 * i, dtype=np.uint8))
    w.release()


def test_video_frame_rate_is_used_when_config_says_auto(tmp_path):
    root = tmp_path / "p"
    _project(root, config="[project]\nframe_rate = 'auto'\n")
    (root / "videos").mkdir()
    for c in range(1, 5):
        _video(root / "videos" / f"cam0{c}.avi", 25.0)
    s = load_pose2sim_session(root)
    assert s.fps == pytest.approx(25.0) and s.meta["fps_source"] == "video: cam01.avi, cam02.avi, cam03.avi, cam04.avi"
    np.testing.assert_allclose(s.timestamps, np.arange(N) / 25, atol=1e-9)
    # videos that disagree: said, and --fps asked for
    _video(root / "videos" / "cam03.avi", 30.0)
    with pytest.raises(InputError) as e:
        load_pose2sim_session(root)
    assert str(e.value) == (f"{root / 'videos'}: the videos state different frame rates: cam01.avi 25 fps, "
                            "cam02.avi 25 fps, cam03.avi 30 fps, cam04.avi 25 fps; pass the rate of the keypoint "
                            "files with --fps")
    assert load_pose2sim_session(root, fps=25).fps == 25
    # a number in Config.toml wins over the videos
    (root / "Config.toml").write_text("[project]\nframe_rate = 50\n")
    assert load_pose2sim_session(root).fps == 50


# ---- keypoint layouts -------------------------------------------------------------------------
def test_a_camera_in_another_layout_is_named(tmp_path):
    root = tmp_path / "p"
    _project(root, K=26, config="[project]\nframe_rate = 50\n[pose]\npose_model = 'Body_with_feet'\n")
    shutil.rmtree(root / "pose" / "cam03_json")
    write_openpose_folder(root / "pose" / "cam03_json", np.ones((N, 17, 2)), np.ones((N, 17)), prefix="cam03")
    with pytest.raises(InputError) as e:
        load_pose2sim_session(root)
    assert str(e.value).startswith(f"{root}: pose/cam03_json holds 17 keypoints per person, the other cameras 26 ")
    assert main(["triangulate", str(root), "--out", str(tmp_path / "o")]) == 2


def test_halpe26_session_names_its_points_and_maps_eyes_and_ears(tmp_path):
    from simspine.skeletons import model_marker_names

    root = tmp_path / "p"
    uv = _project(root, K=26, config="[project]\nframe_rate = 50\n[pose]\npose_model = 'Body_with_feet'\n")
    s = load_pose2sim_session(root)
    assert s.skeleton == "HALPE_26" and len(s.keypoint_names) == 26
    assert s.keypoint_names[:5] == ["Nose", "LEye", "REye", "LEar", "REar"]
    assert s.keypoint_names[17:20] == ["Head", "Neck", "Hip"]
    np.testing.assert_allclose(s.keypoints, uv, atol=1e-3)
    used = model_marker_names(s.keypoint_names, s.skeleton)
    assert len(used) == 24 and {"LEye", "REye", "LEar", "REar", "Head"} <= set(used)
    assert "Hip" not in used and "Neck" not in used
    # pose_model is read case-insensitively; a count that does not fit the layout names the config
    (root / "Config.toml").write_text("[project]\nframe_rate = 50\n[pose]\npose_model = 'halpe_26'\n")
    assert load_pose2sim_session(root).skeleton == "HALPE_26"
    (root / "Config.toml").write_text("[project]\nframe_rate = 50\n[pose]\npose_model = 'coco_17'\n")
    with pytest.raises(InputError, match=f"^{root / 'Config.toml'}: skeleton COCO_17 has 17 keypoints but the "
                                         "files hold 26"):
        load_pose2sim_session(root)


def test_frame_numbers_that_cannot_be_frames_are_refused(tmp_path):
    # a camera numbered on another clock: no frame in common with the others
    frames = [list(range(N))] * 3 + [[]]
    root = tmp_path / "p"
    _project(root, frames)
    uv = np.ones((3, 37, 2))
    write_openpose_folder(root / "pose" / "cam04_json", uv, np.ones((3, 37)), prefix="cam04", start=500)
    with pytest.raises(InputError) as e:
        load_pose2sim_session(root)
    assert str(e.value).startswith(f"{root}: the frames of camera cam04 (500..502) overlap no other camera's "
                                   "(cam01 0..9, cam02 0..9, cam03 0..9)")
    # numbers that are not frame numbers (a time stamp in ms, say): refused, not a huge session
    shutil.rmtree(root / "pose" / "cam04_json")
    write_openpose_folder(root / "pose" / "cam04_json", uv[:1], np.ones((1, 37)), prefix="cam04", start=5)
    write_openpose_folder(root / "pose" / "cam04_json", uv[:1], np.ones((1, 37)), prefix="cam04", start=1_000_000)
    with pytest.raises(InputError, match="frame numbers run from 0 to 1000000 \\(1000001 frames\\) but the cameras "
                                         "have at most 10 files"):
        load_pose2sim_session(root)
