"""Batched IK on an accelerator: frames/s on many chains and the projected time for Human3.6M.

The batched backend (:mod:`simspine.biomech.ik_batched`) solves many frame chains at once -- the
sequences of a subject, or one long sequence split into chains -- one frame of each chain per
batch. Its speed grows with the number of chains until the engine is compute-bound; on a GPU
that takes thousands. This benchmark measures it there:

1. ``export FILE`` (where OpenSim is installed): the prepared model read into the batched engine,
   its bounds, marker weights and coordinate tasks, pickled without OpenSim objects;
2. ``run FILE --device cuda`` (where a GPU is; OpenSim not needed): ``--chains`` chains of
   ``--frames`` frames of smooth random motion (the rules of
   :func:`simspine.biomech.motion.random_motion`) made by the engine's forward kinematics, with
   Gaussian marker noise (``--noise-mm``, default 10), solved on the device and -- the first
   ``--cpu-chains`` of them -- on the CPU with one thread, the same solver; printed: frames/s,
   the largest angle difference between the devices, marker RMS and L5_S1 flexion error against
   the generating motion, and the projected time for 2.14 M frames (Human3.6M at 50 Hz).

    python -m simspine.bench.ik_device export problem.pkl
    python -m simspine.bench.ik_device run problem.pkl --chains 4096 --frames 40 --device cuda
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
from pathlib import Path

import numpy as np

#: Frames of Human3.6M's motion capture at 50 Hz (the paper's annotation job).
H36M_FRAMES = 2_140_000


def export(path: str | Path) -> Path:
    """Write the portable batched-IK problem of the prepared model to ``path`` (pickle)."""
    from simspine.biomech.fk import Kinematics, run_fk
    from simspine.biomech.ik_batched import BatchedIK, _Solver
    from simspine.biomech.model import load_model, prepare_model
    from simspine.biomech.motion import UNOBSERVED, random_motion
    from simspine.fileio import atomic_path

    model_path = prepare_model()
    kin = Kinematics(str(model_path))
    traj, _ = run_fk(kin, random_motion(kin, 3, rate=50.0, seed=0))
    solver = _Solver(BatchedIK(), load_model(model_path), [traj], None, None, False)
    port = solver.portable()
    ranges = {c.name: (float(c.range[0]), float(c.range[1]), float(c.default)) for c in kin.free_coordinates}
    blob = {"solver": port, "ranges": ranges, "unobserved": list(UNOBSERVED)}
    with atomic_path(path) as tmp:
        tmp.write_bytes(pickle.dumps(blob))
    return Path(path)


def motion(names, ranges, unobserved, n_chains, n_frames, rate=50.0, seed=0, amplitude=0.4, pelvis_travel=0.3):
    """Smooth random independent coordinates (n_chains, n_frames, n) by random_motion's rules
    (each chain its own frequencies and phases)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n_frames) / rate
    out = np.empty((n_chains, n_frames, len(names)))
    for j, name in enumerate(names):
        lo, hi, default = ranges[name]
        if any(u in name for u in unobserved):
            out[:, :, j] = default
            continue
        if name in ("pelvis_tx", "pelvis_ty", "pelvis_tz"):
            centre, amp = default, pelvis_travel * (0.2 if name == "pelvis_ty" else 1.0)
        elif name in ("pelvis_tilt", "pelvis_list", "pelvis_rotation"):
            centre, amp = 0.0, 0.5 * amplitude
        elif "knee" in name or "elbow" in name:
            centre, amp = lo + 0.3 * (hi - lo), 0.25 * (hi - lo) * amplitude / 0.4
        else:
            centre, amp = 0.5 * (lo + hi), 0.5 * (hi - lo) * amplitude
        f = rng.uniform(0.2, 1.0, (n_chains, 3, 1))
        ph = rng.uniform(0, 2 * np.pi, (n_chains, 3, 1))
        val = centre + amp * np.sin(2 * np.pi * f * t + ph).mean(1)
        out[:, :, j] = np.clip(val, lo, hi)
    return out


def _solve(solver, x, w, lengths, device, threads=None):
    import torch

    s = solver.with_data(x, w, lengths, device)
    saved = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        if s.dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.no_grad():
            zs, Xs, _ = s.lockstep()
        if s.dev.type == "cuda":
            torch.cuda.synchronize()
        return zs.cpu().numpy(), Xs.cpu().numpy(), time.perf_counter() - t0, s.first_seconds
    finally:
        torch.set_num_threads(saved)


def run(path, chains=1024, frames=40, device="cuda", noise_mm=10.0, cpu_chains=8, seed=0) -> dict:
    """Solve ``chains`` noisy synthetic chains on ``device`` (and the first ``cpu_chains`` on one
    CPU thread); returns the figures (also printed)."""
    import torch

    blob = pickle.loads(Path(path).read_bytes())
    solver = blob["solver"]
    names = list(solver.free_names)
    bk = solver.bk.to(device)
    z_true = motion(names, blob["ranges"], blob["unobserved"], chains, frames, seed=seed)
    with torch.no_grad():
        zt = torch.as_tensor(z_true.reshape(-1, len(names)), dtype=torch.float64, device=device)
        X = torch.cat([bk.markers(zt[i:i + 65536], solver.names) for i in range(0, len(zt), 65536)]).cpu().numpy()
    rng = np.random.default_rng(seed + 1)
    x = X + rng.normal(0.0, noise_mm / 1000.0, X.shape)
    w = np.broadcast_to(solver.base_weights, x.shape[:2]).copy()
    lengths = np.full(chains, frames)
    print(f"{chains} chains x {frames} frames ({chains * frames} frames), {noise_mm:g} mm noise, device {device}"
          + (f" ({torch.cuda.get_device_name()})" if str(device).startswith("cuda") else ""), flush=True)
    # Warm-up (CUDA context, kernels) on a few chains, not timed.
    _solve(solver, x[:2 * frames], w[:2 * frames], lengths[:2], device)
    # One thread on the CPU: the per-core figure (and two threads under load were far slower).
    zs, Xs, sec, first = _solve(solver, x, w, lengths, device, threads=1 if str(device) == "cpu" else None)
    fps = chains * frames / sec
    steady = chains * (frames - 1) / max(sec - first, 1e-9)
    l5 = names.index("L5_S1_Flex_Ext")
    zt_np = z_true.reshape(-1, len(names))
    rms = np.sqrt(np.mean(np.sum((Xs - x) ** 2, axis=2), axis=1)).mean()
    out = {"device": str(device), "chains": chains, "frames_per_chain": frames, "seconds": sec,
           "first_frames_seconds": first, "frames_per_s": fps, "frames_per_s_after_first": steady,
           "projected_h36m_hours": H36M_FRAMES / fps / 3600.0,
           "marker_rms_mm": 1000 * rms,
           "l5_s1_flexion_rms_deg": float(np.rad2deg(np.sqrt(np.mean((zs[:, l5] - zt_np[:, l5]) ** 2))))}
    print(f"  {device}: {sec:.1f} s ({first:.1f} s first frames): {fps:.0f} frames/s "
          f"({steady:.0f} after the first frames); 2.14 M frames: {out['projected_h36m_hours']:.2f} h; "
          f"marker RMS {out['marker_rms_mm']:.2f} mm, L5_S1 flexion RMS {out['l5_s1_flexion_rms_deg']:.3f} deg",
          flush=True)
    if cpu_chains:
        n = cpu_chains * frames
        zc, _, csec, cfirst = _solve(solver, x[:n], w[:n], lengths[:cpu_chains], "cpu", threads=1)
        rot = [j for j, nm in enumerate(names) if nm not in ("pelvis_tx", "pelvis_ty", "pelvis_tz")]
        diff = np.rad2deg(np.abs(zc[:, rot] - zs[:n, rot]))
        out.update({"cpu_chains": cpu_chains, "cpu_seconds": csec, "cpu_frames_per_s_1_thread": n / csec,
                    "device_vs_cpu_max_angle_diff_deg": float(diff.max()),
                    "device_vs_cpu_rms_angle_diff_deg": float(np.sqrt(np.mean(diff ** 2)))})
        print(f"  cpu, 1 thread, {cpu_chains} chains: {csec:.1f} s: {n / csec:.1f} frames/s; angles vs {device}: "
              f"RMS {out['device_vs_cpu_rms_angle_diff_deg']:.2e} deg, max {out['device_vs_cpu_max_angle_diff_deg']:.2e}",
              flush=True)
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m simspine.bench.ik_device", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    e = sub.add_parser("export", help="write the portable problem (needs OpenSim)")
    e.add_argument("file")
    r = sub.add_parser("run", help="solve synthetic chains on a device (no OpenSim needed)")
    r.add_argument("file")
    r.add_argument("--chains", type=int, nargs="+", default=[1024])
    r.add_argument("--frames", type=int, default=40)
    r.add_argument("--device", default="cuda")
    r.add_argument("--noise-mm", type=float, default=10.0)
    r.add_argument("--cpu-chains", type=int, default=8)
    r.add_argument("--json", default=None)
    a = p.parse_args(argv)
    if a.cmd == "export":
        print(export(a.file))
        return 0
    results = []
    for i, c in enumerate(a.chains):
        results.append(run(a.file, c, a.frames, a.device, a.noise_mm, a.cpu_chains if i == 0 else 0))
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
