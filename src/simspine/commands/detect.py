"""``simspine detect SESSION``: 2D keypoints from each camera's video, as OpenPose JSON per frame."""

from __future__ import annotations

import argparse

NAME = "detect"
HELP = "detect 2D keypoints in a session's videos (SESSION/videos/) into OpenPose JSON (SpineTrack-37)"
DESCRIPTION = (
    "Run a 2D body detector on each camera's video, SESSION/videos/<camera>.<mp4|avi|mov|mkv>, and write "
    "SESSION/pose/<camera>_json/<camera>_<frame:06d>.json (OpenPose JSON, pixels, SpineTrack-37 order, "
    "0 0 0 for keypoints not produced; frames numbered from 0). Backends: 'spinepose' runs SpinePose's "
    "SpineTrack-37 ONNX models (all 37 points, spine included) from local files, never downloading: "
    "--pose-model and --det-model, or the files already in spinepose's cache; 'mediapipe' runs BlazePose "
    "(bundled with mediapipe 0.10.21): body, face and foot points, no spine points. Resumable: a camera "
    "whose folder holds every frame of its video is skipped; a camera's folder appears only when complete. "
    "The frame rate is not written: readers take it from Config.toml, else from the videos."
)


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be an integer >= 1, got {text!r}")
    return v


def add_arguments(p) -> None:
    from simspine.detect import BACKENDS

    p.add_argument("session", metavar="SESSION", help="session folder with videos/<camera>.<mp4|avi|mov|mkv>")
    p.add_argument("--backend", choices=BACKENDS, default="spinepose", help="2D detector (default: %(default)s)")
    p.add_argument("--overwrite", action="store_true", help="detect again cameras whose folder is already complete")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    g = p.add_argument_group("spinepose backend")
    g.add_argument("--pose-model", metavar="FILE", default=None,
                   help="SpineTrack-37 pose model ONNX (default: one already in ~/.cache/spinepose/hub/checkpoints)")
    g.add_argument("--det-model", metavar="FILE", default=None,
                   help="person detector ONNX, RF-DETR or YOLOX as spinepose uses (default: one already in "
                        "spinepose's cache)")
    g.add_argument("--no-detector", action="store_true", help="no person detector: the whole frame is the box")
    g.add_argument("--max-people", type=_positive_int, default=10,
                   help="most people per frame and camera (default: %(default)s)")


def run(args) -> int:
    from simspine.detect import detect_session

    opts = {"pose_model": args.pose_model, "det_model": args.det_model, "no_detector": args.no_detector,
            "max_people": args.max_people}
    results = detect_session(args.session, args.backend, overwrite=args.overwrite, progress=not args.no_progress,
                             **opts)
    done = [r for r in results if not r.skipped]
    print(f"{len(done)} camera(s) detected, {len(results) - len(done)} already complete; "
          f"keypoints in {args.session}/pose/<camera>_json/")
    return 0
