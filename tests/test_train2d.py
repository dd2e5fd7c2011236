"""simspine.train (issue 14): SpineTrack-37 2D keypoint training and its ONNX export, on images the
tests draw (a stick figure with a coloured dot at each known keypoint)."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("onnxruntime")
pytest.importorskip("pycocotools")
import cv2  # noqa: E402

from simspine.skeletons import spinetrack37  # noqa: E402

SK = spinetrack37()
K = 37


@pytest.fixture(autouse=True)
def one_torch_thread():
    """These tiny models run far faster on one thread than on two contended ones (shared CI cores)."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
# A frontal person in a unit box (x right, y down), SpineTrack-37 order: left side at larger x.
TEMPLATE = np.array([
    (0.50, 0.10), (0.53, 0.08), (0.47, 0.08), (0.56, 0.09), (0.44, 0.09), (0.65, 0.25), (0.35, 0.25),
    (0.72, 0.42), (0.28, 0.42), (0.75, 0.57), (0.25, 0.57), (0.60, 0.55), (0.40, 0.55), (0.60, 0.75),
    (0.40, 0.75), (0.60, 0.93), (0.40, 0.93), (0.50, 0.03), (0.50, 0.20), (0.50, 0.55), (0.63, 0.99),
    (0.37, 0.99), (0.67, 0.97), (0.33, 0.97), (0.58, 0.96), (0.42, 0.96), (0.50, 0.50), (0.50, 0.45),
    (0.50, 0.40), (0.50, 0.34), (0.50, 0.28), (0.60, 0.38), (0.40, 0.38), (0.56, 0.23), (0.44, 0.23),
    (0.50, 0.17), (0.50, 0.14)])
# a distinct saturated BGR colour per keypoint (HSV hues around the circle)
COLORS = cv2.cvtColor(np.array([[[int(180 * i / K), 255, 255] for i in range(K)]], np.uint8),
                      cv2.COLOR_HSV2BGR)[0].astype(int)


def draw_person(rng, size=(96, 96), bright=False):
    """An image (H, W, 3) BGR with one person and its keypoints (37, 2) px: random size, place,
    tilt and limb jitter; bones in grey, keypoints as coloured dots, background noise in 30..220."""
    W, H = size
    h = rng.uniform(0.55, 0.85) * H
    ang = np.deg2rad(rng.uniform(-15, 15))
    R = np.array([[np.cos(ang), -np.sin(ang)], [np.sin(ang), np.cos(ang)]])
    pts = (TEMPLATE - 0.5 + rng.normal(0, 0.02, TEMPLATE.shape)) * np.array([0.6 * h, h])
    c = np.array([rng.uniform(0.35, 0.65) * W, rng.uniform(0.4, 0.6) * H])
    xy = pts @ R.T + c
    base = 150 if bright else 60
    img = np.clip(rng.normal(base, 20, (H, W, 3)), 30, 220).astype(np.uint8)
    for p, q in SK.bones():
        cv2.line(img, tuple(int(v) for v in np.round(xy[p])), tuple(int(v) for v in np.round(xy[q])),
                 (200, 200, 200), 1, cv2.LINE_AA)
    for k in range(K):
        cv2.circle(img, tuple(int(v) for v in np.round(xy[k])), 2, tuple(int(v) for v in COLORS[k]), -1)
    return img, xy


def write_coco(folder, n, seed, bright=False, size=(96, 96)):
    """A COCO keypoints JSON + PNG images of ``n`` drawn people; returns the JSON path."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    images, anns = [], []
    for i in range(n):
        img, xy = draw_person(rng, size, bright)
        name = f"img{i:04d}.png"
        cv2.imwrite(str(folder / name), img)
        lo, hi = xy.min(0), xy.max(0)
        pad = 0.05 * (hi - lo)
        box = [float(lo[0] - pad[0]), float(lo[1] - pad[1]), float(hi[0] - lo[0] + 2 * pad[0]),
               float(hi[1] - lo[1] + 2 * pad[1])]
        kp = np.concatenate([xy, np.full((K, 1), 2.0)], 1)
        images.append({"id": i + 1, "file_name": name, "width": size[0], "height": size[1]})
        anns.append({"id": i + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 0, "bbox": box,
                     "area": box[2] * box[3], "keypoints": [float(v) for v in kp.ravel()], "num_keypoints": K})
    cat = {"id": 1, "name": "person", "keypoints": list(SK.names), "skeleton": []}
    path = folder / "ann.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": [cat]}))
    return path


def tiny_model_cfg():
    return {"input_size": [64, 48], "widths": [16, 32, 48], "depths": [1, 1, 1], "head_hidden": 64, "head_kernel": 3}


def tiny_model(seed=0):
    from simspine.train.config import ModelConfig
    from simspine.train.model import build_model

    torch.manual_seed(seed)
    return build_model(ModelConfig(**tiny_model_cfg())).eval()


# ---- crop geometry and SimCC targets ------------------------------------------------------------
def test_unrotated_affine_is_the_detect_backends_and_rotation_turns_about_the_centre():
    from simspine.detect.spinepose_backend import warp_matrix
    from simspine.train.crop import affine_matrix, apply_affine

    c, s = np.array([40.3, 52.7]), np.array([33.0, 44.0])
    np.testing.assert_array_equal(affine_matrix(c, s, 0.0, (48, 64)), warp_matrix(c, s, (48, 64)))
    M = affine_matrix(c, s, 90.0, (48, 64))
    # the box centre lands on the crop centre; a point half a box width along the box's rotated "up"
    # (rotated by +90 deg: (0, -w/2) -> (w/2, 0)) lands straight above the crop centre
    np.testing.assert_allclose(apply_affine(M, c), [24.0, 32.0], atol=1e-4)
    np.testing.assert_allclose(apply_affine(M, c + [s[0] / 2, 0.0]), [24.0, 32.0 - 24.0], atol=1e-4)


def test_simcc_targets_decode_back_to_image_pixels_for_a_box_across_the_image_border():
    from simspine.detect.spinepose_backend import decode_simcc, warp_matrix
    from simspine.train.crop import apply_affine, box_center_size, simcc_targets

    W, H = 48, 64
    box = (-30.0, -20.0, 60.0, 70.0)          # x, y, w, h: starts left of and above the image
    c, s = box_center_size(box, (W, H))
    rng = np.random.default_rng(0)
    xy = c + rng.uniform(-0.45, 0.45, (K, 2)) * s   # inside the crop, many outside the image (x, y < 0)
    assert (xy < 0).any()
    xy[3] = c + 0.7 * s                             # one outside the crop: no label, weight 0
    M = warp_matrix(c, s, (W, H))
    tx, ty, w = simcc_targets(apply_affine(M, xy), np.ones(K, bool), (W, H), 2.0, (4.9, 5.66))
    assert w[3] == 0 and not tx[3].any() and (np.delete(w, 3) == 1).all()
    got, score = decode_simcc(tx[None], ty[None], c, s, (W, H))
    px_per_bin = s / np.array([W, H]) / 2.0
    err = np.abs(got[0] - xy)
    assert np.isnan(got[0, 3]).all()
    assert (np.delete(err, 3, axis=0) <= px_per_bin / 2 + 1e-3).all()   # within half a SimCC bin


# ---- augmentation curriculum -------------------------------------------------------------------
def _person():
    img, xy = draw_person(np.random.default_rng(5), (96, 96))
    lo, hi = xy.min(0), xy.max(0)
    return img, xy, (lo[0], lo[1], hi[0] - lo[0], hi[1] - lo[1])


def test_flip_mirrors_the_crop_and_swaps_left_and_right_keypoints():
    from simspine.train.augment import augment
    from simspine.train.config import StageConfig

    img, xy, box = _person()
    kw = dict(half_body_p=0.0, scale=[1.0, 1.0], rotate=20.0, rotate_p=1.0)
    a = augment(img, xy, np.ones(K, bool), box, StageConfig(flip_p=0.0, **kw), (48, 64),
                np.random.default_rng(1), SK.swap, SK.names)
    b = augment(img, xy, np.ones(K, bool), box, StageConfig(flip_p=1.0, **kw), (48, 64),
                np.random.default_rng(1), SK.swap, SK.names)
    assert b.flipped and not a.flipped and "flip" in b.applied and a.rotation == b.rotation != 0
    np.testing.assert_array_equal(b.crop, a.crop[:, ::-1])
    L, R = SK.names.index("LShoulder"), SK.names.index("RShoulder")
    # the flipped sample's LShoulder is the mirror image of the unflipped sample's RShoulder ...
    np.testing.assert_allclose(b.xy[L], [47 - a.xy[R, 0], a.xy[R, 1]], atol=1e-9)
    # ... and the image there shows the right shoulder's dot colour (the pixels came from it)
    for k, src in [(L, R), (SK.names.index("LWrist"), SK.names.index("RWrist"))]:
        u, v = np.round(b.xy[k]).astype(int)
        assert np.abs(b.crop[v, u].astype(int) - COLORS[src]).max() < 60
    # the frontal person keeps its left side on the image's right after flip + swap
    assert b.xy[L, 0] > b.xy[R, 0] and a.xy[L, 0] > a.xy[R, 0]


def test_each_curriculum_stage_applies_what_it_names(tmp_path):
    from simspine.train.coco_data import CocoKeypoints, CurriculumDataset
    from simspine.train.config import config_from_dict

    ann = write_coco(tmp_path / "d", 8, 0)
    cfg = config_from_dict({"data": {"train": [{"annotations": str(ann)}]}, "model": tiny_model_cfg(),
                            "train": {"epochs": 10, "out": str(tmp_path / "o")}, "augment": {"switch": [0.4, 0.7]}})
    ds = CurriculumDataset([CocoKeypoints(ann)], cfg)
    assert [ds.stage(e) for e in range(10)] == [1, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    seen = {}
    for epoch in (0, 4, 9):
        samples = [ds.augmented(i % 8, epoch, i // 8, i % 8) for i in range(32)]
        seen[ds.stage(epoch)] = samples
        for a in samples:
            for x0, y0, x1, y1 in a.holes:     # a dropout box is black in the crop
                assert x1 > x0 and y1 > y0 and not a.crop[y0:y1, x0:x1].any()
    count = {st: {op: sum(op in a.applied for a in s) for op in ("dropout", "photometric", "half_body", "flip",
                                                                  "blur", "median_blur", "rotate", "shift")}
             for st, s in seen.items()}
    assert count[1]["dropout"] == 32 and count[1]["photometric"] == 32          # p = 1 in stage 1
    assert 6 <= count[2]["dropout"] <= 26 and count[2]["photometric"] == 0      # p = 0.5 in stage 2
    assert count[1]["shift"] > 0 and count[2]["shift"] == 0
    assert count[1]["half_body"] > 0 and count[2]["half_body"] > 0
    assert all(count[3][op] == 0 for op in ("dropout", "photometric", "half_body", "blur", "median_blur", "shift"))
    assert all(not a.holes for a in seen[3])
    assert all(0 < count[st]["flip"] < 32 for st in (1, 2, 3))
    # stage 3's rotations are milder than stage 1's (30 vs 80 deg spread)
    assert max(abs(a.rotation) for a in seen[3]) <= 60 < max(abs(a.rotation) for a in seen[1])


# ---- ONNX export --------------------------------------------------------------------------------
def test_exported_onnx_equals_torch_and_runs_in_simspine_detect(tmp_path, capsys):
    from simspine.cli import main
    from simspine.detect.spinepose_backend import POSE_MEAN, POSE_STD, PoseModel
    from simspine.io.openpose import read_openpose_folder
    from simspine.train.export import export_onnx, onnx_name, onnx_vs_torch
    from simspine.train.model import predict

    model = tiny_model(3)
    path = export_onnx(model, tmp_path / onnx_name(model))
    assert path.name == "spinetrack37_64x48.onnx"
    rng = np.random.default_rng(2)
    imgs, boxes = [], []
    for i in range(4):
        img, xy = draw_person(rng, (96, 80))
        imgs.append(img)
        lo, hi = xy.min(0), xy.max(0)
        boxes.append([lo[0], lo[1], hi[0], hi[1]] if i < 2 else [-25.0, -10.0, 50.0, 70.0])  # last two cross the border
    assert onnx_vs_torch(model, path, imgs, boxes) <= 1e-3
    # raw SimCC outputs too (the same normalised crop in both)
    pm = PoseModel(path)
    x = ((np.random.default_rng(0).uniform(0, 255, (64, 48, 3)) - POSE_MEAN) / POSE_STD).astype(np.float32)
    x = x.transpose(2, 0, 1)[None]
    ox, oy = pm.session.run(None, {pm.input_name: x})
    with torch.no_grad():
        tx, ty = model(torch.from_numpy(x))
    np.testing.assert_allclose(ox, tx.numpy(), atol=1e-4)
    np.testing.assert_allclose(oy, ty.numpy(), atol=1e-4)
    # through `simspine detect`: a short video of drawn people, the whole frame as the box
    s = tmp_path / "s"
    (s / "videos").mkdir(parents=True)
    vw = cv2.VideoWriter(str(s / "videos" / "cam01.avi"), cv2.VideoWriter_fourcc(*"MJPG"), 25.0, (96, 80))
    for img in imgs:
        vw.write(img)
    vw.release()
    assert main(["detect", str(s), "--pose-model", str(path), "--no-detector", "--no-progress"]) == 0
    assert "cam01: 4 frames" in capsys.readouterr().out
    got, _ = read_openpose_folder(s / "pose" / "cam01_json", K)
    cap = cv2.VideoCapture(str(s / "videos" / "cam01.avi"))
    for t in range(4):
        ok, frame = cap.read()
        assert ok
        want, _ = predict(model, frame, [[0, 0, 96, 80]])
        np.testing.assert_allclose(got[t], want[0], atol=1e-3)
    cap.release()


# ---- training ----------------------------------------------------------------------------------
def _config(tmp_path, out, epochs, n_train=48, n_val=16, batches=0, lr=3e-3):
    from simspine.train.config import config_from_dict

    d = tmp_path / "data"
    if not (d / "v" / "ann.json").exists():
        write_coco(d / "a", n_train, 1)
        write_coco(d / "b", n_train, 2, bright=True)
        write_coco(d / "v", n_val, 3)
    return {"data": {"train": [{"annotations": str(d / "a" / "ann.json"), "name": "dark"},
                               {"annotations": str(d / "b" / "ann.json"), "name": "bright"}],
                     "val": {"annotations": str(d / "v" / "ann.json"), "name": "val"}},
            "model": tiny_model_cfg(), "optim": {"lr": lr, "warmup_iters": 5},
            "train": {"out": str(tmp_path / out), "epochs": epochs, "batch_size": 16, "threads": 1,
                      "batches_per_epoch": batches, "eval_batch_size": 16}}, config_from_dict


def test_fine_tuning_on_drawn_people_lowers_the_loss_and_raises_the_auc(tmp_path):
    from simspine.train.loop import train_2d

    d, make = _config(tmp_path, "run", epochs=6, batches=4)
    lines = []
    res = train_2d(make(d), log=lines.append)
    h = res.history
    print("loss", [round(e["loss"], 3) for e in h], "AUC", round(res.initial["auc"], 3),
          [round(e["auc"], 3) for e in h])
    assert [e["stage"] for e in h] == [1, 1, 1, 2, 2, 3]
    assert h[-1]["loss"] < 0.6 * h[0]["loss"]
    assert h[-1]["auc"] > res.initial["auc"] and max(h[-2]["auc"], h[-1]["auc"]) > res.initial["auc"] + 0.05
    # every sample of the batch mix came from both sets, 8 each; progress has loss and throughput
    assert "dark 48 (8/batch), bright 48 (8/batch)" in lines[0]
    assert any("loss" in s and "samples/s" in s for s in lines)
    assert res.onnx.is_file() and res.onnx_diff_px <= 1e-3
    saved = json.loads((res.out / "history.json").read_text())
    assert saved["epochs"][-1]["auc"] == pytest.approx(h[-1]["auc"])
    assert {"ap_body", "ar_body", "ap_spine", "ar_spine", "auc_spine"} <= set(h[-1])


class Killed(Exception):
    pass


def test_a_killed_run_resumes_from_its_last_checkpoint_to_the_same_state(tmp_path, capsys):
    from simspine.cli import main
    from simspine.train.loop import load_checkpoint, train_2d

    d, make = _config(tmp_path, "whole", epochs=3, n_train=16, n_val=8, batches=2)
    cfg_file = tmp_path / "whole.toml"
    cfg_file.write_text(_toml(d))
    assert main(["train", "2d", "--config", str(cfg_file)]) == 0
    out = capsys.readouterr().out
    assert "loss" in out and "AUC" in out and "spinetrack37_64x48.onnx" in out
    whole = load_checkpoint(tmp_path / "whole" / "last.pt")

    d["train"]["out"] = str(tmp_path / "killed")

    def kill(epoch, batch, loss):
        if epoch == 1 and batch == 1:     # the 2nd epoch's last batch: epoch 1's checkpoint is on disk
            raise Killed

    with pytest.raises(Killed):
        train_2d(make(d), log=lambda m: None, on_batch=kill)
    assert load_checkpoint(tmp_path / "killed" / "last.pt")["epoch"] == 0
    assert not [p for p in (tmp_path / "killed").iterdir() if p.name.startswith(".")]   # no temporary left
    lines = []
    d["train"]["eval_batch_size"] = 4     # how it runs may change on resume (not what it learns)
    res = train_2d(make(d), log=lines.append)
    # what was recomputed: epochs 2 and 3 only (2 batches each), after epoch 1
    assert res.resumed_after == 1 and res.batches_run == 4
    assert any("resuming" in s and "after epoch 1 of 3" in s for s in lines)
    assert not any("before training" in s for s in lines)
    again = load_checkpoint(tmp_path / "killed" / "last.pt")
    assert again["epoch"] == whole["epoch"] == 2
    for k, v in whole["model"].items():
        torch.testing.assert_close(again["model"][k], v, rtol=0, atol=1e-6, msg=k)
    assert [e["loss"] for e in again["history"]] == pytest.approx([e["loss"] for e in whole["history"]], abs=1e-6)
    assert again["optimizer"]["state"][0]["step"] == whole["optimizer"]["state"][0]["step"]
    # other settings in the same folder are refused, naming the checkpoint
    from simspine.errors import InputError

    d["optim"]["lr"] = 1e-3
    with pytest.raises(InputError, match="last.pt: written with other settings"):
        train_2d(make(d), log=lambda m: None)


def _toml(d) -> str:
    def val(v):
        return json.dumps(v)

    lines = []
    for t in d["data"]["train"]:
        lines += ["[[data.train]]", *(f"{k} = {val(v)}" for k, v in t.items())]
    lines += ["[data.val]", *(f"{k} = {val(v)}" for k, v in d["data"]["val"].items())]
    for table in ("model", "optim", "train"):
        lines += [f"[{table}]", *(f"{k} = {val(v)}" for k, v in d[table].items())]
    return "\n".join(lines) + "\n"


def test_example_config_states_every_choice_and_bad_configs_name_the_file_and_key(tmp_path):
    import dataclasses
    import tomllib
    from importlib import resources

    from simspine.errors import InputError
    from simspine.train.config import Config, load_config

    ex = resources.files("simspine.data").joinpath("train2d_example.toml")
    raw = tomllib.loads(ex.read_text())
    cfg = load_config(ex)
    assert [s.name for s in cfg.train_sets] == ["spinetrack", "simspine"] and cfg.train.epochs == 10
    for table in ("model", "loss", "optim", "train"):     # every field written out
        assert set(raw[table]) == {f.name for f in dataclasses.fields(getattr(Config(), table))}
    for st in ("stage1", "stage2", "stage3"):
        assert set(raw["augment"][st]) == {f.name for f in dataclasses.fields(Config().augment.stage1)}
    assert cfg.augment == Config().augment
    bad = tmp_path / "bad.toml"
    bad.write_text('[[data.train]]\nannotations = "a.json"\n[optim]\nlrate = 1.0\n')
    with pytest.raises(InputError, match=r"bad.toml: unknown key 'lrate' in \[optim\]"):
        load_config(bad)
    bad.write_text('[[data.train]]\nannotations = "a.json"\n[model]\ninput_size = [250, 192]\n')
    with pytest.raises(InputError, match="multiple of the backbone's stride 32"):
        load_config(bad)
    bad.write_text('[train]\nepochs = 3\n')
    with pytest.raises(InputError, match="no training data"):
        load_config(bad)


def test_a_spinepose_like_onnx_converts_to_torch_and_fine_tunes(tmp_path):
    """init_onnx: our exported file (SpinePose's form) back to torch by onnx2torch (installed with
    --no-deps; skipped where it is absent)."""
    from simspine.train.model import _torchvision_stub

    _torchvision_stub()
    pytest.importorskip("onnx2torch")
    from simspine.train.config import ModelConfig
    from simspine.train.export import export_onnx
    from simspine.train.model import build_model

    model = tiny_model(4)
    path = export_onnx(model, tmp_path / "pose_64x48.onnx")
    conv = build_model(ModelConfig(init_onnx=str(path)))
    assert conv.kind == "onnx" and conv.input_hw == (64, 48) and conv.split_ratio == 2.0
    x = torch.randn(2, 3, 64, 48)
    with torch.no_grad():
        for a, b in zip(model(x), conv.eval()(x), strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=1e-5)
    conv.train()
    px, py = conv(x)
    (px.square().mean() + py.square().mean()).backward()
    assert all(p.grad is not None for p in conv.parameters())
    export_onnx(conv, tmp_path / "again_64x48.onnx")
    # the whole command from it: one short epoch, exported again
    from simspine.cli import main

    d, _ = _config(tmp_path, "fromonnx", epochs=1, n_train=8, n_val=4, batches=1)
    (tmp_path / "c.toml").write_text(_toml(d))
    assert main(["train", "2d", "--config", str(tmp_path / "c.toml"), "--init-onnx", str(path)]) == 0
    assert (tmp_path / "fromonnx" / "spinetrack37_64x48.onnx").is_file()


def test_timm_backbone_hook_builds_a_simcc_model_from_the_last_feature_map(monkeypatch):
    """backbone = 'timm' (timm itself cannot be installed here: a stand-in module with timm's
    create_model(features_only=True) form checks the wiring)."""
    import sys
    import types

    from simspine.errors import InputError
    from simspine.train.config import ModelConfig
    from simspine.train.model import build_model

    cfg = ModelConfig(input_size=[64, 48], backbone="timm", timm_name="tiny", head_hidden=32, head_kernel=3)
    monkeypatch.setitem(sys.modules, "timm", None)       # not importable
    with pytest.raises(InputError, match="needs a working timm"):
        build_model(cfg)
    calls = {}

    class Features(torch.nn.Module):     # timm's features_only models return a list of maps
        def __init__(self):
            super().__init__()
            self.a = torch.nn.Conv2d(3, 8, 3, 4, 1)
            self.b = torch.nn.Conv2d(8, 16, 3, 4, 1)

        def forward(self, x):
            f1 = self.a(x)
            return [f1, self.b(f1)]

    def create_model(name, pretrained, features_only, out_indices):
        calls.update(name=name, pretrained=pretrained, features_only=features_only)
        return Features()

    monkeypatch.setitem(sys.modules, "timm", types.SimpleNamespace(create_model=create_model))
    m = build_model(cfg)
    assert calls == {"name": "tiny", "pretrained": False, "features_only": True}
    sx, sy = m(torch.zeros(2, 3, 64, 48))
    assert sx.shape == (2, K, 96) and sy.shape == (2, K, 128)
    assert m.net.head.final.in_channels == 16 and m.net.head.mlp[0].in_features == 4 * 3


def test_coco_reader_reorders_keypoint_names_and_names_a_missing_image(tmp_path):
    from simspine.errors import InputError
    from simspine.train.coco_data import CocoKeypoints

    ann = write_coco(tmp_path / "d", 3, 7)
    d = json.loads(ann.read_text())
    ours = CocoKeypoints(ann)
    perm = np.random.default_rng(0).permutation(K)          # the same data, keypoints listed in another order
    d["categories"][0]["keypoints"] = [SK.names[i] for i in perm]
    for a in d["annotations"]:
        a["keypoints"] = [float(v) for v in np.asarray(a["keypoints"]).reshape(K, 3)[perm].ravel()]
    d["annotations"].append({"id": 9, "image_id": 1, "category_id": 1, "iscrowd": 1, "bbox": [0, 0, 5, 5],
                             "keypoints": [0.0] * (3 * K)})      # a crowd region: not a sample
    other = tmp_path / "d" / "other.json"
    other.write_text(json.dumps(d))
    theirs = CocoKeypoints(other)
    assert len(theirs) == 3
    np.testing.assert_array_equal(theirs.keypoints, ours.keypoints)
    assert theirs.image(0).shape == (96, 96, 3)
    (tmp_path / "d" / "img0001.png").unlink()
    with pytest.raises(InputError, match=r"img0001.png: image of other.json missing or unreadable"):
        theirs.image(1)


@pytest.mark.slow
def test_longer_fine_tuning_reaches_a_useful_model(tmp_path):
    """20 epochs on 96 + 96 drawn people (about 100 s here): measured loss 10.07 -> 1.84, AUC
    0.048 -> 0.802, spine AP 0.84."""
    from simspine.train.loop import train_2d

    d, make = _config(tmp_path, "long", epochs=20, n_train=96, n_val=32)
    res = train_2d(make(d), log=lambda m: None)
    h = res.history
    assert h[-1]["loss"] < 0.3 * h[0]["loss"]
    assert h[-1]["auc"] > 0.6 > res.initial["auc"] + 0.4
    assert h[-1]["ap_spine"] > 0.5
