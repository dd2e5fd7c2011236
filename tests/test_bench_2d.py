"""simspine bench 2d: OKS AP/AR and PCK/AUC of COCO results and OpenPose folders vs COCO ground truth."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

pytest.importorskip("pycocotools")

from simspine.skeletons import spinetrack37  # noqa: E402

N_IMG = 8


def _gt_dict(rng):
    """8 images (camera c1, frames 0-7), one person each, a few keypoints unlabelled."""
    images, anns = [], []
    for i in range(N_IMG):
        box = np.array([100 + 10 * i, 50, 120 + 5 * i, 260])
        kp = np.zeros((37, 3))
        kp[:, 0] = box[0] + rng.uniform(0, box[2], 37)
        kp[:, 1] = box[1] + rng.uniform(0, box[3], 37)
        kp[:, 2] = 2
        hidden = rng.choice(37, 3, replace=False)
        kp[hidden] = 0
        images.append({"id": 10 + i, "file_name": f"S9/S9_Walking.c1/{i:06d}.jpg", "width": 640, "height": 480,
                       "camera": "c1", "frame": i})
        anns.append({"id": i + 1, "image_id": 10 + i, "category_id": 1, "iscrowd": 0, "bbox": box.tolist(),
                     "area": float(box[2] * box[3]), "keypoints": kp.ravel().tolist(), "num_keypoints": 34})
    cat = {"id": 1, "name": "person", "keypoints": list(spinetrack37().names), "skeleton": []}
    return {"images": images, "annotations": anns, "categories": [cat]}


def _gt_arrays(gt):
    kp = np.array([a["keypoints"] for a in gt["annotations"]]).reshape(-1, 37, 3)
    return kp, np.array([a["bbox"] for a in gt["annotations"]], dtype=float)


def _results(kp, image_ids, scores):
    out = []
    for k, iid, s in zip(kp, image_ids, scores, strict=True):
        v = np.c_[k[:, :2], np.ones(37)]
        out.append({"image_id": int(iid), "category_id": 1, "keypoints": v.ravel().tolist(), "score": float(s)})
    return out


def _run(tmp_path, gt, preds, labels=None):
    from simspine.cli import main

    (tmp_path / "gt.json").write_text(json.dumps(gt))
    args = ["bench", "2d", "--gt", str(tmp_path / "gt.json"), "--pred", *map(str, preds),
            "--json", str(tmp_path / "out.json")]
    if labels:
        args += ["--label", *labels]
    assert main(args) == 0
    return json.loads((tmp_path / "out.json").read_text())["results"]


def test_perfect_predictions_coco_results_and_openpose_folder(tmp_path, capsys):
    from simspine.io.openpose import write_openpose_folder

    gt = _gt_dict(np.random.default_rng(0))
    kp, _ = _gt_arrays(gt)
    (tmp_path / "res.json").write_text(json.dumps(_results(kp, [10 + i for i in range(N_IMG)], np.ones(N_IMG))))
    xy = kp[..., :2].copy()
    conf = np.where(kp[..., 2] > 0, 0.9, 0.0)
    write_openpose_folder(tmp_path / "session" / "pose" / "c1_json", xy, conf)
    res = _run(tmp_path, gt, [tmp_path / "res.json", tmp_path / "session"], ["coco", "openpose"])
    out = capsys.readouterr().out
    assert "Tab. 2 layout" in out and "APB" in out and "openpose" in out
    for label in ("coco", "openpose"):
        r = res[label]
        for subset in ("body", "spine"):
            assert r[subset] == {"AP": 1.0, "AP50": 1.0, "AP75": 1.0, "AR": 1.0}
        assert r["pck"]["all"] == {"PCK@0.1": 1.0, "PCK@0.2": 1.0, "AUC": 1.0}
        assert r["pck"]["spine"]["AUC"] == 1.0
        assert r["matched"] == N_IMG


def test_pck_auc_worked_by_hand(tmp_path):
    """Every keypoint 5.5 % of the box's shorter side off: PCK(t) = 0 for t <= 0.05, 1 from 0.06;
    trapezoids over 0..0.5 step 0.01: (0.44 + 0.01 / 2) / 0.5 = 0.89."""
    gt = _gt_dict(np.random.default_rng(1))
    kp, boxes = _gt_arrays(gt)
    side = boxes[:, 2:].min(1)
    shift = 0.055 * side[:, None, None] * np.array([0.6, 0.8])  # 3-4-5 triangle: length 0.055 * side
    (tmp_path / "res.json").write_text(json.dumps(_results(kp[..., :2] + shift, [10 + i for i in range(N_IMG)],
                                                           np.ones(N_IMG))))
    r = _run(tmp_path, gt, [tmp_path / "res.json"])["res.json"]
    assert r["pck"]["all"]["PCK@0.1"] == 1.0 and r["pck"]["all"]["PCK@0.2"] == 1.0
    assert r["pck"]["all"]["AUC"] == pytest.approx(0.89, abs=1e-12)


def _reference(gt, results, ids):
    """pycocotools' own numbers on the subset ``ids``, from the dicts sliced independently."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    sk = spinetrack37()
    g = json.loads(json.dumps(gt))
    for a in g["annotations"]:
        k = np.array(a["keypoints"]).reshape(37, 3)[ids]
        a["keypoints"] = k.ravel().tolist()
        a["num_keypoints"] = int((k[:, 2] > 0).sum())
    g["categories"][0]["keypoints"] = [sk.names[i] for i in ids]
    dets = []
    for d in results:
        d = dict(d)
        d["keypoints"] = np.array(d["keypoints"]).reshape(37, 3)[ids].ravel().tolist()
        dets.append(d)
    with contextlib.redirect_stdout(io.StringIO()):
        cg = COCO()
        cg.dataset = g
        cg.createIndex()
        ev = COCOeval(cg, cg.loadRes(dets), "keypoints")
        ev.params.kpt_oks_sigmas = np.asarray(sk.oks_sigmas)[ids]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    return {"AP": ev.stats[0], "AP50": ev.stats[1], "AP75": ev.stats[2], "AR": ev.stats[5]}


def test_crafted_case_matches_pycocotools(tmp_path):
    """Noise of growing size per image, one image without a prediction, one extra low-scored wrong
    prediction: the figures are pycocotools' own on the same dicts."""
    from simspine.metrics import oks_subset

    rng = np.random.default_rng(2)
    gt = _gt_dict(rng)
    kp, boxes = _gt_arrays(gt)
    pred = kp[..., :2] + rng.normal(size=kp[..., :2].shape) * np.linspace(1, 25, N_IMG)[:, None, None]
    ids = [10 + i for i in range(N_IMG)]
    keep = [i for i in range(N_IMG) if i != 3]  # image 13: missed
    wrong = kp[5, :, :2][::-1].copy()           # a confident-looking mess on image 15, low score
    scores = np.linspace(0.95, 0.6, N_IMG)
    results = _results(np.concatenate([pred[keep], wrong[None]]), [ids[i] for i in keep] + [15],
                       list(scores[keep]) + [0.3])
    (tmp_path / "res.json").write_text(json.dumps(results))
    r = _run(tmp_path, gt, [tmp_path / "res.json"])["res.json"]
    for subset in ("body", "spine"):
        ref = _reference(gt, results, oks_subset(subset))
        for k in ("AP", "AP50", "AP75", "AR"):
            assert r[subset][k] == pytest.approx(ref[k], abs=1e-12), (subset, k)
    assert 0.2 < r["body"]["AP"] < 0.95  # a case that is neither perfect nor empty
    # PCK: image 13 counts all its keypoints wrong, so PCK@0.2 <= 7/8
    assert r["pck"]["all"]["PCK@0.2"] <= 7 / 8 + 1e-12 and r["matched"] == 7


def test_errors_name_the_file(tmp_path):
    from simspine.bench.pose2d import load_coco_results, load_ground_truth
    from simspine.errors import InputError

    (tmp_path / "bad.json").write_text("{\"images\": []}")
    with pytest.raises(InputError, match="bad.json: not a COCO keypoints file"):
        load_ground_truth(tmp_path / "bad.json")
    gt_path = tmp_path / "gt.json"
    gt_path.write_text(json.dumps(_gt_dict(np.random.default_rng(0))))
    gt = load_ground_truth(gt_path)
    (tmp_path / "r.json").write_text(json.dumps([{"image_id": 99, "keypoints": [0] * 111, "score": 1}]))
    with pytest.raises(InputError, match="r.json: entry 0: image_id 99 is not in the ground truth"):
        load_coco_results(tmp_path / "r.json", gt)
    (tmp_path / "r.json").write_text(json.dumps([{"image_id": 10, "keypoints": [0] * 12, "score": 1}]))
    with pytest.raises(InputError, match="12 keypoint values, expected 3 x 37"):
        load_coco_results(tmp_path / "r.json", gt)
