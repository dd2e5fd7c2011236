"""The spinepose backend of ``simspine detect`` on tiny ONNX models exported here, in SpinePose's
input/output form: known SimCC peaks, a bright spot, fixed detector boxes."""

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
import cv2  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from simspine.cli import main  # noqa: E402
from simspine.detect.spinepose_backend import (  # noqa: E402
    POSE_MEAN,
    POSE_STD,
    PersonDetector,
    SpinePoseBackend,
)
from simspine.errors import InputError  # noqa: E402
from simspine.io.openpose import read_openpose_folder  # noqa: E402

K = 37

H, W = 256, 192   # SpinePose's input size (small/medium/large models)


def make_video(path, n_frames, size):
    """A small black video (MJPG in .avi, mp4v in .mp4)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fourcc = cv2.VideoWriter_fourcc(*("mp4v" if path.suffix == ".mp4" else "MJPG"))
    vw = cv2.VideoWriter(str(path), fourcc, 25.0, size)
    assert vw.isOpened()
    for _ in range(n_frames):
        vw.write(np.zeros((size[1], size[0], 3), np.uint8))
    vw.release()
    return path


def _save(graph, path):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def _const_pose_model(path, bx, by, k=K):
    """A pose model whose SimCC outputs ignore the image: keypoint j peaks at x bin bx[j], y bin by[j]
    (values 0.9 there, 0.1 elsewhere)."""
    sx = np.full((1, k, 2 * W), 0.1, np.float32)
    sy = np.full((1, k, 2 * H), 0.1, np.float32)
    sx[0, np.arange(k), bx] = 0.9
    sy[0, np.arange(k), by] = 0.9
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, H, W])
    ox = helper.make_tensor_value_info("simcc_x", TensorProto.FLOAT, [1, k, 2 * W])
    oy = helper.make_tensor_value_info("simcc_y", TensorProto.FLOAT, [1, k, 2 * H])
    # simcc = const + 0 * ReduceMean(input): keeps the input in the graph.
    nodes = [helper.make_node("ReduceMean", ["input"], ["m"], keepdims=0),
             helper.make_node("Mul", ["m", "zero"], ["z"]),
             helper.make_node("Add", ["cx", "z"], ["simcc_x"]),
             helper.make_node("Add", ["cy", "z"], ["simcc_y"])]
    inits = [numpy_helper.from_array(sx, "cx"), numpy_helper.from_array(sy, "cy"),
             numpy_helper.from_array(np.zeros((), np.float32), "zero")]
    return _save(helper.make_graph(nodes, "pose", [x], [ox, oy], inits), path)


def _spot_pose_model(path):
    """A pose model that looks at the image: every keypoint's SimCC x is the crop's column maximum of
    channel 0 (y: row maximum), each crop pixel repeated twice (split ratio 2). A bright spot in
    channel 0 therefore decodes back to where it is in the image."""
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, H, W])
    ox = helper.make_tensor_value_info("simcc_x", TensorProto.FLOAT, [1, K, 2 * W])
    oy = helper.make_tensor_value_info("simcc_y", TensorProto.FLOAT, [1, K, 2 * H])
    nodes = [
        helper.make_node("Slice", ["input", "s0", "s1", "ax1"], ["c0"]),            # (1, 1, H, W)
        helper.make_node("ReduceMax", ["c0"], ["colmax"], axes=[2], keepdims=0),    # (1, 1, W)
        helper.make_node("ReduceMax", ["c0"], ["rowmax"], axes=[3], keepdims=0),    # (1, 1, H)
        helper.make_node("Resize", ["colmax", "", "sc"], ["cx"], mode="nearest"),   # (1, 1, 2W)
        helper.make_node("Resize", ["rowmax", "", "sc"], ["cy"], mode="nearest"),   # (1, 1, 2H)
        helper.make_node("Expand", ["cx", "shx"], ["simcc_x"]),
        helper.make_node("Expand", ["cy", "shy"], ["simcc_y"]),
    ]
    inits = [numpy_helper.from_array(np.array([0], np.int64), "s0"),
             numpy_helper.from_array(np.array([1], np.int64), "s1"),
             numpy_helper.from_array(np.array([1], np.int64), "ax1"),
             numpy_helper.from_array(np.array([1, 1, 2], np.float32), "sc"),
             numpy_helper.from_array(np.array([1, K, 2 * W], np.int64), "shx"),
             numpy_helper.from_array(np.array([1, K, 2 * H], np.int64), "shy")]
    return _save(helper.make_graph(nodes, "spot", [x], [ox, oy], inits), path)


def _yolox_model(path, dets, size=640):
    """An end-to-end YOLOX-form detector returning fixed ``dets`` (N, 5) in letterboxed input px."""
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, size, size])
    o = helper.make_tensor_value_info("dets", TensorProto.FLOAT, [1, len(dets), 5])
    nodes = [helper.make_node("ReduceMean", ["input"], ["m"], keepdims=0),
             helper.make_node("Mul", ["m", "zero"], ["z"]),
             helper.make_node("Add", ["d", "z"], ["dets"])]
    inits = [numpy_helper.from_array(np.asarray(dets, np.float32)[None], "d"),
             numpy_helper.from_array(np.zeros((), np.float32), "zero")]
    return _save(helper.make_graph(nodes, "yolox", [x], [o], inits), path)


def _rfdetr_model(path, boxes, logits, size=64):
    """An RF-DETR-form detector: fixed boxes (Q, 4) normalised cx, cy, w, h and logits (Q, C)."""
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, size, size])
    ob = helper.make_tensor_value_info("dets", TensorProto.FLOAT, [1, len(boxes), 4])
    ol = helper.make_tensor_value_info("labels", TensorProto.FLOAT, [1, len(boxes), np.shape(logits)[1]])
    nodes = [helper.make_node("ReduceMean", ["input"], ["m"], keepdims=0),
             helper.make_node("Mul", ["m", "zero"], ["z"]),
             helper.make_node("Add", ["b", "z"], ["dets"]),
             helper.make_node("Add", ["l", "z"], ["labels"])]
    inits = [numpy_helper.from_array(np.asarray(boxes, np.float32)[None], "b"),
             numpy_helper.from_array(np.asarray(logits, np.float32)[None], "l"),
             numpy_helper.from_array(np.zeros((), np.float32), "zero")]
    return _save(helper.make_graph(nodes, "rfdetr", [x], [ob, ol], inits), path)


def _expected(bins_x, bins_y, box):
    """RTMPose's geometry written out by hand: 1.25 padding, aspect 192:256, SimCC split ratio 2."""
    x1, y1, x2, y2 = box
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    w, h = (x2 - x1) * 1.25, (y2 - y1) * 1.25
    w, h = (w, w * H / W) if w > h * W / H else (h * W / H, h)
    return np.c_[np.asarray(bins_x) / 2 / W * w + cx - w / 2, np.asarray(bins_y) / 2 / H * h + cy - h / 2]


def test_spinepose_decodes_simcc_peaks_to_image_pixels(tmp_path):
    rng = np.random.default_rng(1)
    bx, by = rng.integers(0, 2 * W, K), rng.integers(0, 2 * H, K)
    be = SpinePoseBackend(_const_pose_model(tmp_path / "pose.onnx", bx, by), no_detector=True)
    frame = np.zeros((480, 640, 3), np.uint8)
    xy, conf = be.camera()(frame)
    assert xy.shape == (1, K, 2) and conf.shape == (1, K)
    # Whole frame as the box: centre (320, 240), padded 800 x 600 -> 800 x 1066.7 at 192:256.
    np.testing.assert_allclose(xy[0], _expected(bx, by, (0, 0, 640, 480)), atol=1e-3)
    np.testing.assert_allclose(xy[0, 0], [bx[0] / 2 / 192 * 800 - 80, by[0] / 2 / 256 * (800 * 256 / 192) - 293.3333],
                               atol=1e-3)
    np.testing.assert_allclose(conf, 0.9, atol=1e-6)   # mean of the x and y maxima


def test_spinepose_crop_and_normalisation_follow_the_image(tmp_path):
    """A blue spot (channel 0 of the BGR frame, as spinepose feeds it) is found where it is drawn."""
    be = SpinePoseBackend(_spot_pose_model(tmp_path / "spot.onnx"), no_detector=True)
    det = be.camera()
    for (u, v) in [(100, 50), (500, 400), (320, 240)]:
        frame = np.zeros((480, 640, 3), np.uint8)
        frame[v - 2:v + 3, u - 2:u + 3] = (255, 0, 0)
        xy, conf = det(frame)
        # One crop pixel is 800 / 192 = 4.2 image px; the spot is 5 px wide.
        assert np.abs(xy[0] - (u, v)).max() < 5.0, (u, v, xy[0, 0])
        # Peak value: the spot's channel-0 value normalised with spinepose's mean/std for channel 0.
        np.testing.assert_allclose(conf[0], (255 - POSE_MEAN[0]) / POSE_STD[0], rtol=1e-3)


def test_yolox_detector_boxes_order_threshold_and_letterbox(tmp_path):
    # Frame 320 x 240 letterboxed into 640 x 640: ratio 2, so input px / 2 = image px.
    dets = [[40, 40, 200, 400, 0.5], [300, 20, 600, 460, 0.95], [0, 0, 10, 10, 0.2]]
    det = PersonDetector(_yolox_model(tmp_path / "yolox_tiny.onnx", dets))
    assert det.kind == "yolox"
    boxes = det(np.zeros((240, 320, 3), np.uint8))
    np.testing.assert_allclose(boxes, [[150, 10, 300, 230], [20, 20, 100, 200]])   # by score, 0.2 dropped

    bx, by = np.full(K, 2 * W // 2), np.full(K, 2 * H // 2)      # every keypoint at the crop centre
    be = SpinePoseBackend(_const_pose_model(tmp_path / "pose.onnx", bx, by), tmp_path / "yolox_tiny.onnx")
    xy, conf = be.camera()(np.zeros((240, 320, 3), np.uint8))
    assert xy.shape == (2, K, 2)
    np.testing.assert_allclose(xy[:, 0], [[225, 120], [60, 110]], atol=1e-3)   # the box centres


def test_rfdetr_detector_keeps_confident_people_only(tmp_path):
    boxes = [[0.5, 0.5, 0.5, 0.8], [0.25, 0.5, 0.1, 0.2], [0.75, 0.5, 0.2, 0.2], [0.1, 0.1, 0.1, 0.1]]
    logits = [[5, 3, -5],     # person, p = 0.95 (background logit ignored)
              [5, -5, -5],    # background only
              [-5, -5, 4],    # another class, confident
              [-5, 0.5, -5]]  # person, p = 0.62
    det = PersonDetector(_rfdetr_model(tmp_path / "rfdetr_n_v142_64x64.onnx", boxes, logits))
    assert det.kind == "rfdetr"
    out = det(np.zeros((100, 200, 3), np.uint8))
    np.testing.assert_allclose(out, [[50, 10, 150, 90], [10, 5, 30, 15]], atol=1e-4)


def test_pose_model_with_another_keypoint_count_is_refused(tmp_path):
    path = _const_pose_model(tmp_path / "coco.onnx", np.zeros(17, int), np.zeros(17, int), k=17)
    with pytest.raises(InputError, match="17 keypoints"):
        SpinePoseBackend(path, no_detector=True)


def test_detect_command_spinepose_on_a_video(tmp_path, capsys):
    s = tmp_path / "s"
    make_video(s / "videos" / "cam01.avi", 4, size=(96, 64))
    make_video(s / "videos" / "cam02.mp4", 3, size=(96, 64))
    bx, by = np.arange(K) * 10, np.arange(K) * 13
    model = _const_pose_model(tmp_path / "pose.onnx", bx, by)
    assert main(["detect", str(s), "--pose-model", str(model), "--no-detector", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "cam01: 4 frames" in out and "frames/s" in out and "a person in 100% of frames" in out
    for cam, n in [("cam01", 4), ("cam02", 3)]:
        xy, conf = read_openpose_folder(s / "pose" / f"{cam}_json", K)
        assert xy.shape == (n, K, 2)
        np.testing.assert_allclose(xy[-1], _expected(bx, by, (0, 0, 96, 64)), atol=1e-3)
    # Second run: both cameras complete, nothing detected.
    assert main(["detect", str(s), "--pose-model", str(model), "--no-detector", "--no-progress"]) == 0
    assert "0 camera(s) detected, 2 already complete" in capsys.readouterr().out
