"""Defaults that the README states, pinned by value (issue 16).

Each check names the README passage that states the value. A changed default must change the
README too (and this test, deliberately). Where the README gives a behaviour (the filter's gain at
its cutoff), the behaviour is measured, not the parameter read back.
"""

from __future__ import annotations

import inspect

import numpy as np
import pytest

from simspine.cli import build_parser


def _defaults(argv: list[str]) -> dict:
    """Defaults of a subcommand's options, as argparse gives them."""
    return vars(build_parser().parse_args(argv))


# ---- triangulation -------------------------------------------------------------------------------
def test_triangulation_defaults():
    from simspine.multiview.triangulation import TriangulationOptions

    o = TriangulationOptions()
    # README, bench real row: "Pose2Sim's triangulation ... its defaults, 0.3 / 15 px"
    assert o.conf_threshold == 0.3
    # README, Multi-view front end: "dropping the worst view while its error exceeds the threshold (15 px)"
    assert o.reproj_threshold_px == 15.0
    assert o.max_error_px is None  # i.e. the same 15 px decides validity
    # triangulation module docstring / TriangulationOptions: Huber 5 px, pair consistency 20 px
    assert o.huber_delta_px == 5.0
    assert o.consistency is True and o.consistency_threshold_px == 20.0
    assert o.reject_ambiguous is True and o.max_uncertainty_mm_per_px == 25.0
    assert o.swap_fix is True


def test_triangulate_cli_defaults_are_the_options():
    # README, simspine triangulate: the command line uses the same defaults as the Python API
    d = _defaults(["triangulate", "SESSION", "--out", "OUT"])
    assert d["conf_threshold"] == 0.3 and d["reproj_threshold"] == 15.0 and d["huber"] == 5.0
    assert d["person"] == 0  # README, several people: "0, the default, is the most central"


def test_association_agreement_threshold():
    # README, Several people in view: "weighted median ray distance < 0.1 m, Pose2Sim's threshold"
    from simspine.multiview.association import AssociationOptions

    assert AssociationOptions().agreement_m == 0.1


# ---- filtering -------------------------------------------------------------------------------------
def test_filter_defaults():
    # README, Python API: "Butterworth 4th order, 6 Hz, zero phase"
    from simspine.multiview.filtering import FilterOptions

    o = FilterOptions()
    assert o.cutoff_hz == 6.0 and o.order == 4
    # FilterOptions (README: "interpolated over a short gap: filter --max-gap"): 10 frames, cubic
    assert o.max_gap == 10 and o.gap_method == "cubic"
    assert o.filled_conf == 0.5 and o.hampel is False
    d = _defaults(["annotate", "SESSION", "--out", "OUT"])
    assert d["cutoff"] == 6.0 and d["order"] == 4 and d["max_gap"] == 10


def _sine_through_filter(freq_hz: float, rate: float = 100.0, seconds: float = 20.0):
    from simspine.multiview.filtering import filter_trajectories
    from simspine.trajectories import Trajectories

    t = np.arange(int(seconds * rate)) / rate
    x = np.sin(2 * np.pi * freq_hz * t)
    xyz = np.zeros((t.size, 1, 3))
    xyz[:, 0, 0] = x
    out = filter_trajectories(Trajectories(t, ["p"], xyz)).xyz[:, 0, 0]
    mid = slice(t.size // 4, 3 * t.size // 4)  # away from the edges
    return t[mid], x[mid], out[mid]


def test_filter_gain_half_at_cutoff_and_zero_phase():
    # README, Python API: "runs forwards and backwards: zero phase, gain 0.5 (-6 dB) at the cutoff"
    t, x, y = _sine_through_filter(6.0)
    gain = np.sqrt(np.mean(y**2) / np.mean(x**2))
    assert gain == pytest.approx(0.5, abs=0.01)
    # zero phase: the output is the input scaled, no lag (least-squares fit of y = a x + b x')
    quad = np.cos(2 * np.pi * 6.0 * t)
    a, b = np.linalg.lstsq(np.c_[x, quad], y, rcond=None)[0]
    assert a == pytest.approx(0.5, abs=0.01) and abs(b) < 1e-3
    # pass band: 1 Hz goes through (gain > 0.99); stop band: 15 Hz is cut (< 0.01)
    t, x, y = _sine_through_filter(1.0)
    assert np.sqrt(np.mean(y**2) / np.mean(x**2)) > 0.99
    t, x, y = _sine_through_filter(15.0)
    assert np.sqrt(np.mean(y**2) / np.mean(x**2)) < 0.01


# ---- merge -----------------------------------------------------------------------------------------
def test_merge_defaults():
    # README: "filled (interpolated over a short gap: filter --max-gap, merge fill horizon)"
    from simspine.multiview.merge import MergeOptions

    o = MergeOptions()
    assert o.trusted_conf == 1.0 and o.pseudo_conf == 0.5 and o.filled_conf == 0.5
    assert o.fill_horizon_s == 0.1 and o.fallback_to_pseudo is True
    assert _defaults(["annotate", "SESSION", "--out", "OUT"])["pseudo_conf"] == 0.5


# ---- IK ----------------------------------------------------------------------------------------------
def test_ik_smoothness_and_accuracy():
    # README, Biomechanical core: "the pipeline uses w = 0.1 at 50 Hz"
    from simspine.biomech.fitting import DEFAULT_SMOOTHNESS_50HZ, run_ik_pipeline
    from simspine.biomech.ik import JacobianIK, smoothness_for_rate

    assert DEFAULT_SMOOTHNESS_50HZ == 0.1
    assert inspect.signature(run_ik_pipeline).parameters["smoothness"].default == 0.1
    assert _defaults(["ik", "M.trc", "--out", "OUT"])["smoothness"] == 0.1
    # the weight scales with rate^4 (same physical acceleration penalty)
    assert smoothness_for_rate(0.1, 50.0) == pytest.approx(0.1)
    assert smoothness_for_rate(0.1, 100.0) == pytest.approx(1.6)
    assert smoothness_for_rate(0.1, 25.0) == pytest.approx(0.1 / 16)
    # JacobianIK's convergence accuracy 1e-6 (bench ik: "OpenSim's solver stops early at its default accuracy")
    assert inspect.signature(JacobianIK.__init__).parameters["accuracy"].default == 1e-6
    assert _defaults(["ik", "M.trc", "--out", "OUT"])["mass"] == 70.0  # run_ik_pipeline(mass=70)
    assert inspect.signature(run_ik_pipeline).parameters["mass"].default == 70.0


# ---- scaling -----------------------------------------------------------------------------------------
def test_scaling_thresholds():
    from simspine.biomech import scaling

    # README: "Left/right factors more than 15% apart ... warn"
    assert scaling.MAX_ASYMMETRY == 0.15
    # README (scaling commit): "a measured factor >30% from the median of the measured factors
    # (>=3 measured) is replaced"
    assert scaling.OUTLIER_FACTOR == 0.30 and scaling.OUTLIER_MIN_SEGMENTS == 3
    assert scaling.FACTOR_RANGE == (0.5, 2.0)


def test_asymmetry_boundary_by_value():
    from simspine.biomech.scaling import asymmetric_segments

    # |l - r| / mean: 1.0 vs 1.17 -> 0.157 (> 0.15), 1.0 vs 1.16 -> 0.148 (< 0.15)
    assert asymmetric_segments({"femur_l": 1.0, "femur_r": 1.17}) == ["femur"]
    assert asymmetric_segments({"femur_l": 1.0, "femur_r": 1.16}) == []


# ---- plausibility ------------------------------------------------------------------------------------
def test_plausibility_thresholds():
    from simspine.biomech import plausibility as p

    # README, Plausibility warnings: "within 0.5° (1 mm) of a bound ... in more than 5% of frames"
    assert (p.BOUND_TOL_DEG, p.BOUND_TOL_M, p.BOUND_SHARE) == (0.5, 0.001, 0.05)
    # "a marker whose IK RMS error exceeds 5 cm, or 3x the median marker's (and 2 cm)"
    assert (p.MARKER_RMS_ABS_M, p.MARKER_RMS_REL, p.MARKER_RMS_REL_FLOOR_M) == (0.05, 3.0, 0.02)
    # "over 60° from +Y in most frames"
    assert p.UP_ANGLE_DEG == 60.0 and p.UP_SHARE == 0.5
    # "an estimated height outside 1.2–2.2 m"
    assert p.HEIGHT_RANGE_M == (1.2, 2.2)


# ---- calibration refinement ------------------------------------------------------------------------
def test_calibration_refine_centre_prior():
    # README, simspine calibrate refine: "centres held near the calibration by a 2 mm prior"
    from simspine.multiview.calibration_refine import RefineOptions

    assert RefineOptions().centre_sigma_m == 0.002


# ---- metrics -----------------------------------------------------------------------------------------
def test_metrics_defaults():
    from simspine import metrics
    from simspine.skeletons import spinetrack37

    # README, Metrics: "root-relative MPJPE (root Hip, the sacrum)"
    assert metrics.ROOT == 19 and spinetrack37().names[metrics.ROOT] == "Hip"
    # "PCK-AUC (... thresholds 0–0.5 by 0.01)"
    assert metrics.AUC_THRESHOLDS.shape == (51,) and np.allclose(metrics.AUC_THRESHOLDS, np.arange(51) * 0.01, rtol=0, atol=1e-15)
    assert inspect.signature(metrics.pck_auc).parameters["thresholds"].default is metrics.AUC_THRESHOLDS
    # "COCO keypoint AP ... for the body (0–16) and spine (36, 35, 18, 30, 29, 28, 27, 26, 19) subsets"
    assert metrics.oks_subset("body").tolist() == list(range(17))
    assert metrics.oks_subset("spine").tolist() == [36, 35, 18, 30, 29, 28, 27, 26, 19]
    # "spine = the 15 spine-centric keypoints, body = COCO 17, all 37"
    r = metrics.regions()
    assert (len(r["spine"]), r["body"].tolist(), r["all"].tolist()) == (15, list(range(17)), list(range(37)))
    # pck's default threshold 0.2 of the box's shorter side (its docstring and the benchmarks' PCK@0.2)
    assert inspect.signature(metrics.pck).parameters["thresholds"].default == 0.2
