"""Camera calibration files -> :class:`~simspine.cameras.Camera` lists, and back.

Formats:

* Pose2Sim TOML (read and write): one table per camera with ``name``, ``size`` (w, h px),
  ``matrix`` (3x3 K), ``distortions`` (OpenCV k1 k2 p1 p2 [k3]), ``rotation`` (Rodrigues vector,
  world->camera; a 3x3 matrix is also accepted when reading), ``translation`` (metres,
  world->camera) and ``fisheye = false``; a ``[metadata]`` table. Tables named ``metadata``,
  ``capture_volume``, ``charuco`` or ``checkerboard`` are not cameras (as in Pose2Sim).
* Qualisys ``.qca.txt`` (read): converted exactly as Pose2Sim's ``calib_qca_fun`` does, so that a
  session calibrated in QTM gives the same cameras in both tools.
* Human3.6M (package data): :func:`h36m_cameras` for each subject, Human3.6M distortion model.

Every problem in a file raises :class:`InputError` naming the file and the problem.
"""

from __future__ import annotations

import json
import math
import os
import re
import tomllib
import xml.etree.ElementTree as ET
from importlib import resources
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from simspine.cameras import Camera, rotation_from_quaternion
from simspine.errors import InputError
from simspine.fileio import write_text_atomic

NOT_CAMERAS = ("metadata", "capture_volume", "charuco", "checkerboard")
REQUIRED_FIELDS = ("size", "matrix", "distortions", "rotation", "translation")


# ---- small helpers ----------------------------------------------------------------------------
def rodrigues_to_matrix(rvec) -> np.ndarray:
    """(3,) Rodrigues (axis * angle, radians) -> (3, 3) rotation matrix (same as ``cv2.Rodrigues``)."""
    return Rotation.from_rotvec(np.asarray(rvec, dtype=float).reshape(3)).as_matrix()


def matrix_to_rodrigues(R) -> np.ndarray:
    """(3, 3) rotation matrix -> (3,) Rodrigues vector."""
    return Rotation.from_matrix(np.asarray(R, dtype=float)).as_rotvec()


def _natural_key(s: str):
    # Same ordering as Pose2Sim's natural_sort_key: digit runs compare as numbers.
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", s)]


def _array(value, shape_ok, path, cam, field_name) -> np.ndarray:
    """Convert a TOML value to a float array, raising a clear error on the wrong shape or type."""
    try:
        arr = np.asarray(value, dtype=float)
    except (TypeError, ValueError):
        raise InputError(path, f"camera {cam!r}: field {field_name!r} is not numeric: {value!r}") from None
    if not shape_ok(arr.shape):
        raise InputError(path, f"camera {cam!r}: field {field_name!r} has shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InputError(path, f"camera {cam!r}: field {field_name!r} contains NaN or infinite values")
    return arr


def _camera(path, label, **kw) -> Camera:
    """Build a Camera, re-raising its validation errors with the file name."""
    try:
        return Camera(**kw)
    except InputError as e:
        raise InputError(path, f"camera {label!r}: {e.problem}") from None


# ---- Pose2Sim TOML ----------------------------------------------------------------------------
def read_calibration_toml(path: str | os.PathLike) -> list[Camera]:
    """Read a Pose2Sim calibration TOML into cameras, in file order.

    ``name`` defaults to the table name when absent (Pose2Sim itself keys cameras by table).
    """
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise InputError(path, f"cannot read calibration: {e.strerror or e}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise InputError(path, f"not a valid TOML calibration file ({e})") from None
    cams = []
    for key, sec in data.items():
        if key in NOT_CAMERAS or not isinstance(sec, dict):
            continue
        missing = [f for f in REQUIRED_FIELDS if f not in sec]
        if missing:
            raise InputError(path, f"camera {key!r}: missing field{'s' if len(missing) > 1 else ''} "
                                   f"{', '.join(repr(m) for m in missing)}")
        name = str(sec.get("name", key))
        if sec.get("fisheye", False):
            raise InputError(path, f"camera {name!r}: fisheye calibrations are not supported")
        size = _array(sec["size"], lambda s: s == (2,), path, name, "size")
        K = _array(sec["matrix"], lambda s: s == (3, 3), path, name, "matrix")
        dist = _array(sec["distortions"], lambda s: len(s) == 1 and 0 < s[0] <= 8, path, name, "distortions")
        rot = _array(sec["rotation"], lambda s: s in ((3,), (3, 3)), path, name, "rotation")
        t = _array(sec["translation"], lambda s: s == (3,), path, name, "translation")
        R = rodrigues_to_matrix(rot) if rot.shape == (3,) else rot
        cams.append(_camera(path, name, name=name, size=(round(size[0]), round(size[1])), K=K, dist=dist,
                            R=R, t=t, dist_model="opencv"))
    if not cams:
        raise InputError(path, "no camera tables in the calibration file")
    _check_unique(path, cams)
    return cams


def _check_unique(path, cams: list[Camera]) -> None:
    names = [c.name for c in cams]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise InputError(path, f"duplicate camera names: {', '.join(dup)}")


def _toml_key(name: str) -> str:
    return name if re.fullmatch(r"[A-Za-z0-9_-]+", name) else json.dumps(name)


def _toml_float(v: float) -> str:
    return repr(float(v))  # shortest repr that round-trips exactly; 'nan'/'inf' are valid TOML


def _toml_list(values) -> str:
    return "[ " + ", ".join(_toml_float(v) for v in values) + "]"


def write_calibration_toml(path: str | os.PathLike, cameras: list[Camera], fit_distortion: bool = False,
                           world_frame: str | None = None) -> Path:
    """Write cameras to a Pose2Sim calibration TOML, atomically.

    Pose2Sim only knows OpenCV distortion. Cameras with the Human3.6M model are converted exactly
    when their tangential terms are zero; otherwise ``fit_distortion=True`` writes a least-squares
    OpenCV fit (its largest error in pixels goes into a comment) and the default raises.

    Args:
        path: output ``.toml``.
        cameras: cameras to write (names must be unique).
        fit_distortion: allow an approximate distortion conversion (see above).
        world_frame: free text naming the world frame of the extrinsics (stored in ``[metadata]``).
    """
    _check_unique(path, cameras)
    out = ["# Pose2Sim calibration written by simspine: X_cam = R X_world + t; rotation is a Rodrigues",
           "# vector (radians), translation in metres, matrix in pixels, OpenCV distortions k1 k2 p1 p2 [k3].", ""]
    for cam in cameras:
        note = ""
        if cam.dist_model != "opencv":
            try:
                cam = cam.converted("opencv", exact=not fit_distortion)
            except InputError as e:
                raise InputError(path, e.problem) from None
            note = (f"# distortion converted from {cam.name!r}'s Human3.6M model; largest error "
                    f"{getattr(cam, 'conversion_error_px', 0.0):.3g} px\n")
        k1, k2, p1, p2, k3 = cam.dist
        dist = [k1, k2, p1, p2] + ([k3] if k3 != 0 else [])
        K = cam.K
        out.append(
            f"[{_toml_key(cam.name)}]\n{note}"
            f"name = {json.dumps(cam.name)}\n"
            f"size = [ {float(cam.size[0])}, {float(cam.size[1])}]\n"
            f"matrix = [ {_toml_list(K[0])}, {_toml_list(K[1])}, {_toml_list(K[2])}]\n"
            f"distortions = {_toml_list(dist)}\n"
            f"rotation = {_toml_list(matrix_to_rodrigues(cam.R))}\n"
            f"translation = {_toml_list(cam.t)}\n"
            f"fisheye = false\n")
    meta = "[metadata]\nadjusted = false\nerror = 0.0\n"
    if world_frame:
        meta += f"world_frame = {json.dumps(world_frame)}\n"
    out.append(meta)
    return write_text_atomic(path, "\n".join(out))


# ---- Qualisys -------------------------------------------------------------------------------
def read_qca(path: str | os.PathLike, binning_factor: int = 1) -> list[Camera]:
    """Read a Qualisys ``.qca.txt`` calibration the way Pose2Sim's ``calib_qca_fun`` converts it.

    Conventions (all Pose2Sim's): only cameras whose ``model`` contains "video" or "none" are kept,
    in natural order of their serial; image size from ``fov_video`` (``right - left + 1``, divided by
    ``binning_factor``); Qualisys stores subpixels (64 per pixel), so focal lengths, principal point
    *and* distortion coefficients are divided by 64 and by ``binning_factor``, and the principal
    point is shifted by the ``fov_video`` origin. The ``transform`` rows r11..r33 form the
    world->camera rotation M of a camera looking along -z; Pose2Sim turns it by pi about the camera
    x axis to OpenCV's +z looking camera: ``R = diag(1, -1, -1) M``, ``t = -R c`` with ``c`` the
    camera centre (mm -> m). The third radial coefficient, ignored by Pose2Sim, is kept (scaled the
    same way); it is 0 in the files Qualisys writes for video cameras.
    """
    try:
        root = ET.parse(path).getroot()
    except OSError as e:
        raise InputError(path, f"cannot read calibration: {e.strerror or e}") from None
    except ET.ParseError as e:
        raise InputError(path, f"not a valid Qualisys .qca.txt (XML) file ({e})") from None
    tags = root.findall("cameras/camera")
    if not tags:
        raise InputError(path, "no <cameras>/<camera> elements: not a Qualisys calibration")
    cams = []
    for i, tag in enumerate(tags):
        serial = tag.attrib.get("serial")
        label = serial or f"#{i + 1}"
        if not any(m in tag.attrib.get("model", "").lower() for m in ("video", "none")):
            continue  # marker cameras: Pose2Sim drops them too

        def num(elem, attr, elem_name, _label=label):
            if elem is None:
                raise InputError(path, f"camera {_label!r}: missing <{elem_name}> element")
            if attr not in elem.attrib:
                raise InputError(path, f"camera {_label!r}: missing field {attr!r} in <{elem_name}>")
            try:
                v = float(elem.attrib[attr])
            except ValueError:
                raise InputError(path, f"camera {_label!r}: {attr}={elem.attrib[attr]!r} is not a number") from None
            if not math.isfinite(v):
                raise InputError(path, f"camera {_label!r}: {attr} is NaN or infinite")
            return v

        if serial is None:
            raise InputError(path, f"camera {label!r}: missing field 'serial'")
        fov, intr, tr = tag.find("fov_video"), tag.find("intrinsic"), tag.find("transform")
        left, top = num(fov, "left", "fov_video"), num(fov, "top", "fov_video")
        w = (num(fov, "right", "fov_video") - left + 1) / binning_factor
        h = (num(fov, "bottom", "fov_video") - top + 1) / binning_factor
        s = 64.0 * binning_factor
        k1, k2, k3 = (num(intr, f"radialDistortion{j}", "intrinsic") / s for j in (1, 2, 3))
        p1, p2 = (num(intr, f"tangentalDistortion{j}", "intrinsic") / s for j in (1, 2))
        fu, fv = num(intr, "focalLengthU", "intrinsic") / s, num(intr, "focalLengthV", "intrinsic") / s
        cu = num(intr, "centerPointU", "intrinsic") / s - left
        cv = num(intr, "centerPointV", "intrinsic") / s - top
        M = np.array([[num(tr, f"r{a}{b}", "transform") for b in (1, 2, 3)] for a in (1, 2, 3)])
        c = np.array([num(tr, ax, "transform") for ax in "xyz"]) / 1000.0
        R = np.diag([1.0, -1.0, -1.0]) @ M
        t = -R @ c
        K = np.array([[fu, 0.0, cu], [0.0, fv, cv], [0.0, 0.0, 1.0]])
        cams.append(_camera(path, serial, name=serial, size=(round(w), round(h)), K=K,
                            dist=[k1, k2, p1, p2, k3], R=R, t=t, dist_model="opencv"))
    if not cams:
        raise InputError(path, "no video cameras (model 'video' or 'none') in the calibration")
    cams.sort(key=lambda c: _natural_key(c.name))
    _check_unique(path, cams)
    return cams


# ---- Human3.6M ------------------------------------------------------------------------------
def _h36m_json() -> dict:
    return json.loads(resources.files("simspine.data").joinpath("h36m_cameras.json").read_text())


def h36m_subjects() -> list[str]:
    """Subjects with camera extrinsics in the package data (S1, S5, S6, S7, S8, S9, S11)."""
    return list(_h36m_json()["extrinsics"])


def h36m_cameras(subject: str) -> list[Camera]:
    """The four Human3.6M cameras of ``subject`` (e.g. ``"S9"``), Human3.6M distortion model.

    The package data gives per camera a quaternion (w, x, y, z) rotating camera axes into world axes
    and the camera centre in millimetres; here ``R`` is world->camera (the quaternion's matrix
    transposed) and ``t = -R c`` in metres. World frame: Human3.6M's, Z up, metres. Camera names
    are the Human3.6M camera ids ('54138969', ...), in the dataset's order.
    """
    data = _h36m_json()
    if subject not in data["extrinsics"]:
        raise InputError(None, f"unknown Human3.6M subject {subject!r} (known: {', '.join(data['extrinsics'])})")
    cams = []
    for intr, ext in zip(data["intrinsics"], data["extrinsics"][subject], strict=True):
        R = rotation_from_quaternion(ext["orientation_wxyz"]).T
        c = np.asarray(ext["translation_mm"], dtype=float) / 1000.0
        fx, fy = intr["focal_length"]
        cx, cy = intr["center"]
        K = np.array([[fx, 0.0, cx], [0.0, fy, cy], [0.0, 0.0, 1.0]])
        dist = list(intr["radial_distortion"]) + list(intr["tangential_distortion"])  # k1 k2 k3 p1 p2
        cams.append(Camera(intr["id"], (intr["res_w"], intr["res_h"]), K, dist, R, -R @ c, dist_model="h36m"))
    return cams


# ---- dispatch -------------------------------------------------------------------------------
def load_calibration(path: str | os.PathLike, binning_factor: int = 1) -> list[Camera]:
    """Read any supported calibration file, chosen by extension.

    ``.toml`` -> Pose2Sim TOML; ``.qca.txt`` / ``.qca`` -> Qualisys (``binning_factor`` applies).
    """
    p = Path(path)
    name = p.name.lower()
    if not p.exists():
        raise InputError(path, "calibration file not found")
    if name.endswith(".toml"):
        return read_calibration_toml(p)
    if name.endswith(".qca.txt") or name.endswith(".qca"):
        return read_qca(p, binning_factor)
    raise InputError(path, "unknown calibration format (expected a Pose2Sim .toml or a Qualisys .qca.txt)")
