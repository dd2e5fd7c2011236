"""Simulated 2D keypoint detector: what a SpineTrack-37 (or body-only) detector would report.

Input: true 3D keypoints (T, 37, 3) in the cameras' world (metres) and a list of cameras.
Output: :class:`Detections` — pixels (C, T, 37, 2) and confidences (C, T, 37) per camera, plus
masks saying which error each value carries (so tests and reports can check the simulation).

Error model, applied in this order (each a pure function of its inputs and a seeded
``numpy.random.Generator``):

1. exact projection through each camera's lens model (distortion included);
2. self-occlusion (:func:`occlusion_mask`): a point is hidden when the segment from it to the
   camera centre passes through a body part (capsules around the torso, head, thighs, shanks,
   upper arms and forearms built from the keypoints themselves), or, for points on the body's
   surface (spine and back points on the torso, face points on the head), when the surface faces
   away from the camera. Hidden points are either not reported (``occluded_drop``) or reported as
   a guess: larger noise and low confidence, as real detectors do;
3. Gaussian pixel noise (``noise_px`` standard deviation per axis);
4. gross outliers (rate ``outlier_rate``): a displacement of 20–200 px (log-uniform) in a random
   direction;
5. left/right swaps: each left/right pair trades places with probability ``swap_rate`` per camera
   and frame; and, as real detectors do when a person's front and back are unclear from one
   camera, whole views mirrored (every pair swapped) over runs of ``swap_run_frames`` consecutive
   frames covering a share ``swap_runs`` of each camera's frames (``view_swapped``);
6. missed detections (rate ``miss_rate``), and points outside the image, are not reported;
7. confidence: a per-point base in [0.75, 0.98] times a factor that falls with the pixel error
   actually made (``0.25 + 0.75 exp(-e²/2σ²)``, σ = ``conf_sigma_px``), times 0.35 when occluded —
   so confidence goes down when errors go up;
8. ``body_only``: the 11 spine-centric keypoints that a body detector (Halpe-26) does not have
   (ids 26–36) are not reported.

Not reported = NaN pixels and confidence 0 (OpenPose JSON writes such points as ``0, 0, 0``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from simspine.cameras import Camera
from simspine.errors import InputError
from simspine.skeletons import spinetrack37

#: SpineTrack-37 ids a Halpe-26 body detector reports (body 17 + Head, Neck, Hip + feet 6).
BODY_DETECTOR_IDS = tuple(range(26))


@dataclass(frozen=True)
class DetectorConfig:
    """Parameters of the simulated detector (pixels unless stated)."""

    noise_px: float = 3.0
    outlier_rate: float = 0.05
    outlier_px: tuple[float, float] = (20.0, 200.0)
    miss_rate: float = 0.01
    swap_rate: float = 0.005
    swap_runs: float = 0.0  # share of each camera's frames inside runs where the whole view is mirrored
    swap_run_frames: int = 25  # length of one such run, frames
    occlusion: bool = True
    occluded_drop: float = 0.5  # share of hidden points not reported at all; the rest are guesses
    occluded_noise_factor: float = 2.5
    conf_sigma_px: float = 25.0
    body_only: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass
class Detections:
    """Simulated 2D detections of C cameras over T frames of K keypoints.

    Attributes:
        cameras: camera names (C).
        uv: (C, T, K, 2) pixels (distorted image coordinates); NaN where not reported.
        conf: (C, T, K) confidence in [0, 1]; 0 where not reported.
        true_uv: (C, T, K, 2) exact projections of the true points (NaN behind a camera).
        occluded, outlier, swapped, missed: (C, T, K) masks of what happened to each value
            (``swapped``: the value reported for k is the other side's).
        view_swapped: (C, T) mask of the view-frames mirrored as a whole (runs of swaps).
    """

    cameras: list[str]
    uv: np.ndarray
    conf: np.ndarray
    true_uv: np.ndarray
    occluded: np.ndarray
    outlier: np.ndarray
    swapped: np.ndarray
    missed: np.ndarray
    config: dict = field(default_factory=dict)
    view_swapped: np.ndarray | None = None

    @property
    def error_px(self) -> np.ndarray:
        """(C, T, K) distance between reported and true pixels (NaN where not reported)."""
        return np.linalg.norm(self.uv - self.true_uv, axis=-1)


# ---- body geometry for occlusion ----------------------------------------------------------
# Capsules (name, from-keypoint(s), to-keypoint(s), radius m). A tuple of names means their midpoint.
_CAPSULES = (
    ("torso", ("LHip", "RHip"), ("LShoulder", "RShoulder"), 0.12),
    ("head", ("LEar", "REar"), ("LEar", "REar"), 0.095),
    ("lthigh", "LHip", "LKnee", 0.075), ("rthigh", "RHip", "RKnee", 0.075),
    ("lshank", "LKnee", "LAnkle", 0.055), ("rshank", "RKnee", "RAnkle", 0.055),
    ("luparm", "LShoulder", "LElbow", 0.05), ("ruparm", "RShoulder", "RElbow", 0.05),
    ("lforearm", "LElbow", "LWrist", 0.04), ("rforearm", "RElbow", "RWrist", 0.04),
)
# Points on a body part's surface, hidden when the surface faces away from the camera.
_SURFACE = {
    "torso": ("Hip", "Spine_01", "Spine_02", "Spine_03", "Spine_04", "Spine_05", "LLatissimus", "RLatissimus",
              "Neck", "Neck_02", "Neck_03"),
    "head": ("Nose", "LEye", "REye", "LEar", "REar"),
}
_FACING_COS = -0.25  # a surface point stays visible until it faces this far away (grazing views)


def _endpoint(xyz: np.ndarray, spec) -> np.ndarray:
    sk = spinetrack37()
    if isinstance(spec, tuple):
        return np.mean([xyz[..., sk.index(n), :] for n in spec], axis=0)
    return xyz[..., sk.index(spec), :]


def _segment_distance(p0, p1, q0, q1) -> np.ndarray:
    """Smallest distance between segments p0-p1 and q0-q1 (broadcast arrays (..., 3))."""
    d1, d2, r = p1 - p0, q1 - q0, p0 - q0
    a = (d1 * d1).sum(-1)
    e = (d2 * d2).sum(-1)
    f = (d2 * r).sum(-1)
    c = (d1 * r).sum(-1)
    b = (d1 * d2).sum(-1)
    denom = a * e - b * b
    with np.errstate(divide="ignore", invalid="ignore"):
        s = np.where(denom > 1e-12, np.clip((b * f - c * e) / denom, 0, 1), 0.0)
        t = np.where(e > 1e-12, (b * s + f) / e, 0.0)
        # clamp t and recompute s (Ericson, Real-Time Collision Detection, 5.1.9)
        s = np.where(t < 0, np.clip(-c / np.where(a > 1e-12, a, 1), 0, 1), s)
        s = np.where(t > 1, np.clip((b - c) / np.where(a > 1e-12, a, 1), 0, 1), s)
        t = np.clip(t, 0, 1)
    diff = (p0 + d1 * s[..., None]) - (q0 + d2 * t[..., None])
    return np.linalg.norm(diff, axis=-1)


def _closest_on_segment(p, a, b) -> np.ndarray:
    ab = b - a
    L = (ab * ab).sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(L > 1e-12, ((p - a) * ab).sum(-1) / np.where(L > 1e-12, L, 1), 0.0)
    return a + ab * np.clip(t, 0, 1)[..., None]


def occlusion_mask(xyz: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """(C, T, K) True where keypoint k of frame t is hidden from camera c.

    Args:
        xyz: (T, 37, 3) true SpineTrack-37 keypoints in the cameras' world, metres.
        centers: (C, 3) camera centres in the same world.
    """
    sk = spinetrack37()
    xyz = np.asarray(xyz, float)
    T, K, _ = xyz.shape
    C = len(centers)
    P = np.broadcast_to(xyz[None], (C, T, K, 3))
    cam = np.broadcast_to(np.asarray(centers, float)[:, None, None, :], (C, T, K, 3))
    hidden = np.zeros((C, T, K), bool)
    for name, a_spec, b_spec, radius in _CAPSULES:
        A = _endpoint(xyz, a_spec)[None, :, None, :]  # (1, T, 1, 3)
        B = _endpoint(xyz, b_spec)[None, :, None, :]
        inside = np.linalg.norm(P - _closest_on_segment(P, A, B), axis=-1) < radius  # (C, T, K)
        # a ray only counts as blocked when it passes clearly through the part (0.9 r): grazing
        # rays along the surface stay visible
        blocked = _segment_distance(P, cam, A, B) < 0.9 * radius
        hidden |= blocked & ~inside
        surface = [sk.index(n) for n in _SURFACE.get(name, ())]
        if surface:
            Ps = P[:, :, surface]
            normal = Ps - _closest_on_segment(Ps, A, B)
            view = cam[:, :, surface] - Ps
            with np.errstate(invalid="ignore", divide="ignore"):
                cos = (normal * view).sum(-1) / (np.linalg.norm(normal, axis=-1) * np.linalg.norm(view, axis=-1))
            hidden[:, :, surface] |= cos < _FACING_COS
    return hidden


def simulate_detections(xyz: np.ndarray, cameras: list[Camera], config: DetectorConfig | None = None,
                        rng: np.random.Generator | None = None) -> Detections:
    """Simulate a 2D detector on every camera (see the module docstring for the error model).

    Args:
        xyz: (T, 37, 3) true SpineTrack-37 keypoints in the cameras' world frame, metres.
        cameras: C cameras.
        config: detector parameters (defaults: 3 px noise, 5% outliers).
        rng: seeded generator; the result is a pure function of (inputs, generator state).
    """
    cfg = config or DetectorConfig()
    rng = rng if rng is not None else np.random.default_rng(0)
    xyz = np.asarray(xyz, float)
    sk = spinetrack37()
    if xyz.ndim != 3 or xyz.shape[1:] != (len(sk), 3):
        raise InputError(None, f"keypoints must be (T, {len(sk)}, 3), got {xyz.shape}")
    C, (T, K, _) = len(cameras), xyz.shape

    true_uv = np.stack([cam.project(xyz) for cam in cameras])  # (C, T, K, 2)
    occluded = occlusion_mask(xyz, np.stack([c.center for c in cameras])) if cfg.occlusion \
        else np.zeros((C, T, K), bool)

    sigma = np.full((C, T, K), float(cfg.noise_px))
    sigma[occluded] *= cfg.occluded_noise_factor
    uv = true_uv + rng.standard_normal((C, T, K, 2)) * sigma[..., None]

    outlier = rng.random((C, T, K)) < cfg.outlier_rate
    lo, hi = cfg.outlier_px
    mag = np.exp(rng.uniform(np.log(lo), np.log(hi), (C, T, K)))
    ang = rng.uniform(0, 2 * np.pi, (C, T, K))
    jump = np.stack([np.cos(ang), np.sin(ang)], -1) * mag[..., None]
    uv = np.where(outlier[..., None], uv + jump, uv)

    err = np.linalg.norm(uv - true_uv, axis=-1)
    base = rng.uniform(0.75, 0.98, (C, T, K))
    conf = base * (0.25 + 0.75 * np.exp(-0.5 * (err / cfg.conf_sigma_px) ** 2))
    conf = np.where(occluded, conf * 0.35, conf)

    # left/right swaps: both members of a pair trade pixels and confidences
    swapped = np.zeros((C, T, K), bool)
    pairs = [(i, j) for i, j in enumerate(sk.swap) if i < j]
    if cfg.swap_rate > 0 and pairs:
        do = rng.random((C, T, len(pairs))) < cfg.swap_rate
        for p, (i, j) in enumerate(pairs):
            m = do[:, :, p]
            uv[m, i], uv[m, j] = uv[m, j].copy(), uv[m, i].copy()
            conf[m, i], conf[m, j] = conf[m, j].copy(), conf[m, i].copy()
            swapped[m, i] = swapped[m, j] = True

    view_swapped = np.zeros((C, T), bool)
    if cfg.swap_runs > 0:
        # drawn only when asked for, so sessions without runs keep their random stream
        swap = np.asarray(sk.swap)
        view_swapped = swap_run_mask(C, T, cfg.swap_runs, cfg.swap_run_frames, rng)
        m = view_swapped
        uv[m] = uv[m][:, swap]
        conf[m] = conf[m][:, swap]
        swapped[m] = swapped[m][:, swap] ^ (swap != np.arange(K))

    missed = rng.random((C, T, K)) < cfg.miss_rate
    missed |= occluded & (rng.random((C, T, K)) < cfg.occluded_drop)
    w = np.array([c.size[0] for c in cameras])[:, None, None]
    h = np.array([c.size[1] for c in cameras])[:, None, None]
    with np.errstate(invalid="ignore"):
        outside = ~((uv[..., 0] >= 0) & (uv[..., 0] < w) & (uv[..., 1] >= 0) & (uv[..., 1] < h))
    missed |= outside | ~np.isfinite(true_uv).all(-1)
    if cfg.body_only:
        spine = np.setdiff1d(np.arange(K), BODY_DETECTOR_IDS)
        missed[:, :, spine] = True
    uv[missed] = np.nan
    conf = np.where(missed, 0.0, np.clip(conf, 0.0, 1.0))
    return Detections([c.name for c in cameras], uv, conf, true_uv, occluded, outlier & ~missed,
                      swapped & ~missed, missed, cfg.as_dict(), view_swapped)


def swap_run_mask(C: int, T: int, share: float, run_frames: int, rng: np.random.Generator) -> np.ndarray:
    """(C, T) bool: per camera, ``round(share * T / run_frames)`` runs of ``run_frames`` frames at
    random places, separated by at least one frame (fewer runs when they do not fit)."""
    L = max(1, int(run_frames))
    n = min(int(round(share * T / L)), (T + 1) // (L + 1))
    out = np.zeros((C, T), bool)
    if n <= 0:
        return out
    for c in range(C):
        # free frames split into n + 1 gaps (a random composition); interior gaps get one extra
        free = T - n * L - (n - 1)
        cuts = np.sort(rng.integers(0, free + 1, n))
        gaps = np.diff(np.r_[0, cuts])
        start = 0
        for g in gaps:
            start += g
            out[c, start:start + L] = True
            start += L + 1
    return out
