"""Batched trajectory inverse kinematics: many frames per array operation (``--ik-backend batched``).

:class:`BatchedIK` implements :class:`~simspine.biomech.ik.IKBackend` on the batched
forward-kinematics engine (:class:`simspine.biomech.batched_fk.BatchedKinematics`, PyTorch) and
minimises the objective of :class:`~simspine.biomech.ik.JacobianIK`, per frame::

    sum_m w_m c_m(t) rho(|p_m(z_t) - x_m(t)|)  +  sum_k w_k (z_k,t - v_k)^2

over the independent coordinates z (couplers eliminated, model ranges as bounds, the root joint
unbounded), with the same robust loss and phases (least squares; Huber only in frames where a
marker is then beyond the threshold; the log tail only where one still is; threshold
:data:`~simspine.biomech.ik.ROBUST_K` x the frame's residual scale, never below 1 cm), plus, with
``smoothness`` > 0, the paper's temporal term over the whole trajectory::

    smoothness * sum_t |z_t - (z_t-1 + z_t+1) / 2|^2        (t = 1 .. T-2)

How the frames are solved: JacobianIK's path, frame by frame, for many *chains* at once -- the
trials given to :meth:`BatchedIK.solve_many` (sequences of one model: a subject's), each cut into
chains of at most ``chain_frames`` frames if that is set:

* first frames of all chains together: the pelvis placed on the data (yaw + translation fit),
  the default pose solved; where that fits worse than ~0.2 mm per marker, ``restarts`` random
  poses within the ranges (all candidates of all chains in one batch, each to the noisy relative
  decrease, taken in turn until one fits below the floor, as JacobianIK's loop); the best solved
  to full accuracy with the robust phases;
* then every chain advances on its own, one frame in flight per chain (:meth:`_Solver.lockstep`):
  its start is the previous frame's pose or its constant-velocity prediction, whichever fits the
  frame's markers better; least squares, then Huber where a marker is beyond the threshold, then
  the log tail where one still is (damped Gauss-Newton with JacobianIK's damping: Marquardt
  scaling floored at ``MARQUARDT_FLOOR`` of the largest entry, ``WARM_DAMPING`` at each phase's
  start, Nielsen's gain-ratio decrease; steps projected on the bounds, JacobianIK's convergence
  tests); a frame far above the recent median cost gets partial
  restarts; every iteration evaluates the trial points and new starts of all chains in ONE call
  of the engine, so the batch is the number of chains and the iteration count is the longest
  chain's, not the sum of each frame's slowest member;
* backward repair as JacobianIK's (a frame far above its successor is solved again from it);
* smoothness > 0: the per-frame solution is refined by Gauss-Newton on the whole objective of
  each trial, window by window (``window`` frames, ``smoothing_overlap`` shared), the block-banded
  normal equations solved by ``scipy.linalg.solveh_banded``.

Status (tests/test_ik_batched.py, 24-60 frames of ``random_motion``, one chain per trial):
the same poses as JacobianIK -- exact markers, 10 mm noise, 10 mm noise with 20% missing markers:
within 3e-8 deg (60 frames) -- and the same marker RMS. Chains cut from one trial
(``chain_frames``) start cold, so weakly observed coordinates (forearm pronation, arm rotation)
can settle a few degrees elsewhere there. Speed (``simspine bench ik --sequences``): 64 trials x
150 frames of 10 mm noise on one core 381 frames/s, 66x OpenSim's IK tool; on an H200
(``simspine.bench.ik_device``) 16384 chains x 100 frames at 34,838 frames/s, 2.14 M frames in
0.02 h. One trial alone is cut into chains of :data:`DEFAULT_CHAIN_FRAMES` when the backend is
chosen by name; JacobianIK stays the default backend (as fast on one trial, and its smoothing
sweeps gain more than the windowed smoothing here).
"""

from __future__ import annotations

import time as _time

import numpy as np

from simspine.biomech.ik import (
    MARQUARDT_FLOOR,
    NOISY_RELATIVE_DECREASE,
    RELATIVE_DECREASE,
    ROBUST_CHI3_MEDIAN,
    ROBUST_K,
    ROBUST_LOSS,
    ROBUST_LOSSES,
    ROBUST_MIN_DELTA,
    WARM_DAMPING,
    IKResult,
    _Kinematic,
    _prepare,
    _result,
    huber_weight,
    log_weight,
    marquardt_diagonal,
)
from simspine.errors import InputError
from simspine.trajectories import Trajectories

#: Frames per window of the smoothing stage (one banded Gauss-Newton system per window).
DEFAULT_WINDOW = 128
#: Frames shared by consecutive windows of the smoothing stage (held at their current values by
#: the window that does not own them).
DEFAULT_SMOOTHING_OVERLAP = 16

_LS, _HUBER, _LOG = 0, 1, 2


def _kinematics_class():
    from simspine.biomech.batched_fk import BatchedKinematics

    return BatchedKinematics


#: Chain length of the batched backend chosen by name (`--ik-backend batched`, one trial at a
#: time): one 600-frame trial of 10 mm noise with the pipeline's smoothness, one core: 23 frames/s
#: as one chain, 45 with chains of 100 frames, 58 of 50, 62 of 25, 64 of 15 (JacobianIK: 50-52);
#: L5_S1 error and marker RMS the same (0.249 deg, 15.815 mm). Each chain starts cold (its first
#: frame's restarts); the smoothing runs over the whole trial, across the cuts.
DEFAULT_CHAIN_FRAMES = 25


class BatchedIK:
    """Batched Gauss-Newton / Levenberg-Marquardt trajectory IK (see the module docstring).

    ``accuracy``: convergence threshold on the step (rad or m); ``smoothness``: weight of the
    temporal term per frame (0 = frame-by-frame IK); ``window``: frames per smoothing window;
    ``robust``: as :class:`~simspine.biomech.ik.JacobianIK`'s; ``threads``: torch threads for
    the solve (None: leave torch's setting); ``device``: torch device ("cpu", "cuda");
    ``chain_frames``: cut trials longer than this into chains solved side by side (None: one
    chain per trial, JacobianIK's path); ``kinematics``: the engine class (default
    :class:`simspine.biomech.batched_fk.BatchedKinematics`).
    """

    name = "batched"

    def __init__(self, accuracy: float = 1e-6, max_iterations: int = 50, first_frame_iterations: int = 200,
                 restarts: int = 8, smoothness: float = 0.0, window: int = DEFAULT_WINDOW,
                 smoothing_overlap: int = DEFAULT_SMOOTHING_OVERLAP, smoothing_iterations: int = 30,
                 robust: bool | str = True, robust_k: float = ROBUST_K,
                 robust_min_delta: float = ROBUST_MIN_DELTA, noisy_relative_decrease: float = NOISY_RELATIVE_DECREASE,
                 threads: int | None = 1, device: str = "cpu", kinematics=None, chain_frames: int | None = None):
        if robust is True:
            robust = ROBUST_LOSS
        if robust and robust not in ROBUST_LOSSES:
            raise InputError(None, f"unknown robust loss {robust!r} (known: {', '.join(ROBUST_LOSSES)})")
        if window < 4:
            raise InputError(None, f"batched IK window must be at least 4 frames (got {window})")
        if smoothing_overlap < 0:
            raise InputError(None, f"smoothing overlap must be >= 0 (got {smoothing_overlap})")
        if smoothness < 0:
            raise InputError(None, f"smoothness must be >= 0 (got {smoothness})")
        if chain_frames is not None and chain_frames < 2:
            raise InputError(None, f"batched IK chains must be at least 2 frames (got {chain_frames})")
        self.robust_loss = robust or None
        self.robust_k, self.robust_min_delta = robust_k, robust_min_delta
        self.accuracy = accuracy
        self.max_iterations, self.first_frame_iterations = max_iterations, first_frame_iterations
        self.restarts = restarts
        self.smoothness = smoothness
        self.window, self.smoothing_overlap = window, min(smoothing_overlap, window // 4)
        self.smoothing_iterations = smoothing_iterations
        self.noisy_relative_decrease = noisy_relative_decrease
        self.threads, self.device = threads, device
        self.kinematics = kinematics
        self.chain_frames = chain_frames

    def solve(self, model, markers: Trajectories, weights=None, coordinate_tasks=None, progress=False) -> IKResult:
        return self.solve_many(model, [markers], weights, coordinate_tasks, progress)[0]

    def solve_many(self, model, trials: list[Trajectories], weights=None, coordinate_tasks=None,
                   progress=False) -> list[IKResult]:
        """Solve several trials of one model together (frame t of every trial in one batch: the
        batches that make the engine fast); trials with the same markers are solved as one
        batch. Returns one :class:`~simspine.biomech.ik.IKResult` per trial, in order; each
        result's ``seconds`` is its share (by frames) of its batch's solve time."""
        import torch

        from simspine.biomech.ik import _as_model

        if not trials:
            return []
        model = _as_model(model)
        groups: dict[tuple, list[int]] = {}
        for i, m in enumerate(trials):
            groups.setdefault(tuple(m.names), []).append(i)
        from threadpoolctl import threadpool_limits

        saved_threads = torch.get_num_threads()
        out: list[IKResult | None] = [None] * len(trials)
        try:
            if self.threads:
                torch.set_num_threads(self.threads)
            # scipy's BLAS (the banded smoothing solve) held to the same threads: with its default
            # two threads on this loaded 2-core machine one 5120-unknown banded solve took 0.3-1.2 s
            # instead of 0.01 s (threads waiting for a core another process holds).
            with threadpool_limits(limits=self.threads):
                for idx in groups.values():
                    res = _Solver(self, model, [trials[i] for i in idx], weights, coordinate_tasks, progress).run()
                    for i, r in zip(idx, res, strict=True):
                        out[i] = r
        finally:
            torch.set_num_threads(saved_threads)
        return out


class _Solver:
    """One trial's solve (state shared by the stages)."""

    def __init__(self, opts: BatchedIK, model, markers, weights, coordinate_tasks, progress):
        import torch

        from simspine.biomech.ik import _as_model

        self.torch = torch
        self.o = opts
        self.progress = progress
        # One trial, or several of one model solved together (their frames concatenated; chain
        # c holds frames offsets[c] .. offsets[c] + lengths[c] - 1).
        trials = list(markers) if isinstance(markers, (list, tuple)) else [markers]
        self.markers = trials[0]
        self.trials = trials
        model = _as_model(model)
        self.preps = [_prepare(model, m, weights, coordinate_tasks) for m in trials]
        self.prep = prep = self.preps[0]
        for i, p in enumerate(self.preps[1:], 1):
            if p.names != prep.names:
                raise InputError(None, f"trial {i} has other markers than trial 0 (solve_many groups trials by "
                                       "marker set; this is a bug if reached)")
        self.kin0 = _Kinematic(prep.model, prep.state)  # bounds, default pose (as JacobianIK's)
        cls = opts.kinematics or _kinematics_class()
        self.bk = cls.from_model(prep.model, dtype=torch.float64, device=opts.device)
        free = list(self.kin0.free_names)
        self.free_names = free
        z_state = self.kin0.z_from_state()
        self.z_default = np.where(np.isfinite(z_state), z_state, 0.0)
        self.lo_np, self.hi_np = np.asarray(self.kin0.lo, float), np.asarray(self.kin0.hi, float)
        if list(self.bk.independent_names) != free:
            raise InputError(None, "the batched kinematics' independent coordinates differ from the model's "
                                   "free coordinates")
        self.names = prep.names
        # Trials, and the chains they are solved in: a trial longer than ``chain_frames`` is cut
        # into chains of nearly equal length, each started cold (first-frame restarts).
        self.trial_lengths = np.array([p.x.shape[0] for p in self.preps])
        self.trial_offsets = np.concatenate([[0], np.cumsum(self.trial_lengths)[:-1]])
        chains = []
        for T in self.trial_lengths:
            k = -(-int(T) // opts.chain_frames) if opts.chain_frames else 1
            chains += [len(c) for c in np.array_split(np.arange(T), max(k, 1))]
        self.lengths = np.array(chains)
        self.offsets = np.concatenate([[0], np.cumsum(self.lengths)[:-1]])
        self.chain_of = np.repeat(np.arange(len(chains)), self.lengths)
        self.T, self.M, self.n = int(self.lengths.sum()), len(prep.names), len(free)
        self.dev = torch.device(opts.device)
        dt = dict(dtype=torch.float64, device=self.dev)
        self.dt = dt
        self.x = torch.as_tensor(np.nan_to_num(np.concatenate([p.x for p in self.preps])), **dt)
        self.w = torch.as_tensor(np.concatenate([p.w for p in self.preps]), **dt)
        self.lo = torch.as_tensor(self.kin0.lo, **dt)
        self.hi = torch.as_tensor(self.kin0.hi, **dt)
        # Coordinate tasks on free coordinates: rows sqrt(w) (z_k - v) (constant Jacobian).
        self.task_k = torch.tensor([free.index(c) for c, _, _ in prep.tasks if c in free], dtype=torch.long,
                                   device=opts.device)
        self.task_v = torch.tensor([v for c, v, _ in prep.tasks if c in free], **dt)
        self.task_w = torch.tensor([w for c, _, w in prep.tasks if c in free], **dt)
        self.task_diag = torch.zeros(self.n, **dt)
        self.task_diag.index_add_(0, self.task_k, self.task_w)
        self.floor = self.M * (2e-4) ** 2  # below ~0.2 mm per marker a frame is not "poor"
        self.noise_level = torch.zeros(self.T, **dt)  # typical cost of the recent frames
        self.robust = opts.robust_loss is not None
        self.pelvis = np.array([n.startswith("pelvis") for n in free])
        # Restart draws: one stream per chain, each as JacobianIK's (seed 0), so a trial gets the
        # same candidates alone or in a batch (one shared stream gave the second trial of a batch
        # other candidates, and another first-frame minimum).
        self.rngs: dict[int, np.random.Generator] = {}
        # Coordinates some marker moves at the first frame, per chain (restarts keep the others).
        self.observed = np.ones((len(chains), self.n), dtype=bool)
        self.jump_restarts = 0
        self.first_seconds = 0.0

    # ------------------------------------------------------------------ portable copies

    def portable(self) -> _Solver:
        """A copy without OpenSim objects or trial data (engine on the CPU): what
        :meth:`with_data` needs to solve other markers of the same model where OpenSim is not
        installed (pickle it)."""
        out = object.__new__(_Solver)
        skip = {"torch", "prep", "preps", "kin0", "trials", "markers", "x", "w", "noise_level"}
        out.__dict__.update({k: v for k, v in self.__dict__.items() if k not in skip})
        out.bk = self.bk.to("cpu")
        for k in ("lo", "hi", "task_k", "task_v", "task_w", "task_diag"):
            setattr(out, k, getattr(self, k).cpu())
        out.base_weights = self.w[0].cpu().numpy() if self.T else None
        return out

    def with_data(self, x, w, lengths, device="cpu") -> _Solver:
        """This (portable) solver on new markers: ``x`` (T, M, 3) metres in the model's marker
        order (NaN: missing), ``w`` (T, M) weights x confidences, ``lengths`` the chains'
        frame counts (sum T). Returns a solver whose :meth:`lockstep` solves them on ``device``."""
        import torch

        out = object.__new__(_Solver)
        out.__dict__.update(self.__dict__)
        out.torch = torch
        out.dev = torch.device(device)
        out.dt = dict(dtype=torch.float64, device=out.dev)
        out.bk = self.bk.to(out.dev)
        for k in ("lo", "hi", "task_k", "task_v", "task_w", "task_diag"):
            setattr(out, k, getattr(self, k).to(out.dev))
        x = torch.as_tensor(x, **out.dt)
        out.x = torch.nan_to_num(x)
        out.w = torch.as_tensor(np.array(w, dtype=float), **out.dt) * torch.isfinite(x).all(2)
        out.lengths = np.asarray(lengths, dtype=int)
        out.offsets = np.concatenate([[0], np.cumsum(out.lengths)[:-1]])
        out.chain_of = np.repeat(np.arange(len(out.lengths)), out.lengths)
        out.trial_lengths, out.trial_offsets = out.lengths, out.offsets
        out.T = int(out.lengths.sum())
        out.noise_level = torch.zeros(out.T, **out.dt)
        out.observed = np.ones((len(out.lengths), self.n), dtype=bool)
        out.rngs = {}
        out.jump_restarts = 0
        return out

    # ------------------------------------------------------------------ costs

    def fk(self, z, jac=True):
        if jac:
            return self.bk.markers_and_jacobian(z, self.names)
        return self.bk.markers(z, self.names), None

    def delta_of(self, e, use):
        """Per-frame robust threshold (B,) from distances e (B, M) of the used markers."""
        torch = self.torch
        if not self.robust:
            return torch.full(e.shape[:1], float("inf"), **self.dt)
        s = torch.sort(torch.where(use, e, torch.full_like(e, float("inf"))), dim=1).values
        cnt = use.sum(1)
        lo_i = ((cnt - 1).clamp(min=0) // 2).unsqueeze(1)
        hi_i = (cnt // 2).clamp(max=e.shape[1] - 1).unsqueeze(1)
        med = 0.5 * (s.gather(1, lo_i) + s.gather(1, hi_i)).squeeze(1)
        d = torch.clamp(self.o.robust_k * med / ROBUST_CHI3_MEDIAN, min=self.o.robust_min_delta)
        return torch.where(cnt > 0, d, torch.full_like(d, float("inf")))

    def rho(self, e, delta, kind):
        """Loss per marker (B, M) for loss kinds (B,) (_LS / _HUBER / _LOG)."""
        torch = self.torch
        d = delta.unsqueeze(1).clamp(max=1e150)
        kind = kind.unsqueeze(1)
        big = e > d
        hub = d * (2.0 * e - d)
        lg = d * d * (1.0 + 2.0 * torch.log(torch.maximum(e, d) / d))
        out = torch.where(big & (kind == _HUBER), hub, e * e)
        return torch.where(big & (kind == _LOG), lg, out)

    def irls(self, e, delta, kind):
        """IRLS weight per marker (B, M)."""
        torch = self.torch
        d = delta.unsqueeze(1).clamp(max=1e300)
        r = d / torch.maximum(e, d)
        kind = kind.unsqueeze(1)
        return torch.where(kind == _HUBER, r, torch.where(kind == _LOG, r * r, torch.ones_like(r)))

    def task_cost(self, z):
        if len(self.task_k) == 0:
            return torch_zeros(self.torch, z.shape[0], self.dt)
        r = z[:, self.task_k] - self.task_v
        return (self.task_w * r * r).sum(1)

    def marker_cost(self, fr, X):
        """Weighted marker cost with the robust loss at the threshold of these residuals (JacobianIK's
        ``marker_cost``), (B,)."""
        e = (X - self.x[fr]).norm(dim=2)
        w = self.w[fr]
        kind = torch_full(self.torch, len(fr), _LOG if self.o.robust_loss == "log" else _HUBER, self.dev) \
            if self.robust else torch_full(self.torch, len(fr), _LS, self.dev)
        return (w * self.rho(e, self.delta_of(e, w > 0), kind)).sum(1)

    def beyond(self, fr, X):
        e = (X - self.x[fr]).norm(dim=2)
        use = self.w[fr] > 0
        return ((e > self.delta_of(e, use).unsqueeze(1)) & use).any(1)

    # ------------------------------------------------------------------ batched LM

    def lm(self, z, fr, iterations, lam0, kind_code):
        """Damped Gauss-Newton on frames ``fr`` (B,) from ``z`` (B, n) with one loss phase, all
        frames together (each at most ``iterations`` iterations; the first frames, restarts and
        repairs). Returns z, X (B, M, 3).

        The state holds only the rows still iterating (compacted when rows finish) and their
        normal equations, not their Jacobians: with hundreds of restart candidates, gathering
        and copying (B, M, 3, n) Jacobians every iteration was most of the time."""
        torch = self.torch
        o = self.o
        dev = self.dev
        B, n = z.shape
        z_out = z.clone()
        X_out = torch.zeros((B, self.M, 3), **self.dt)
        if B == 0 or iterations <= 0:
            if B:
                X_out = self.fk(z_out, jac=False)[0]
            return z_out, X_out
        rows = torch.arange(B, device=dev)  # each state row's output row
        x, w = self.x[fr], self.w[fr]
        use = w > 0
        level = self.noise_level[fr]
        kind = torch_full(torch, B, kind_code, dev)
        zc = z.clone()
        X, J = self.fk(zc)
        e = (X - x).norm(dim=2)
        delta = self.delta_of(e, use) if kind_code != _LS else torch.full((B,), float("inf"), **self.dt)
        cost = (w * self.rho(e, delta, kind)).sum(1) + self.task_cost(zc)
        lam = torch.full((B,), float(lam0), **self.dt)
        H, g, dg = self._normal_equations(J, X, x, w, e, delta, kind, zc)
        eye = torch.eye(n, **self.dt)
        for _ in range(iterations):
            A = len(rows)
            if A == 0:
                break
            # Per frame: raise the damping until the step lowers the cost (or give up).
            pend = torch.arange(A, device=dev)
            raised = torch.zeros(A, dtype=torch.bool, device=dev)
            c_old = cost.clone()
            ct = c_old.clone()
            acc_ok = torch.zeros(A, dtype=torch.bool, device=dev)
            stepmax = torch.zeros(A, **self.dt)
            predicted = torch.zeros(A, **self.dt)
            Jacc = None
            while len(pend):
                li = lam[pend]
                Am = H[pend] + (li[:, None, None] * torch.diag_embed(dg[pend])) + 1e-12 * eye
                zp = torch.minimum(torch.maximum(zc[pend] - torch.linalg.solve(Am, g[pend]), self.lo), self.hi)
                Xp, Jp = self.fk(zp)
                ep = (Xp - x[pend]).norm(dim=2)
                cp = (w[pend] * self.rho(ep, delta[pend], kind[pend])).sum(1) + self.task_cost(zp)
                ok = cp <= c_old[pend]
                done = ok | (li > 1e8)
                if ok.any():
                    loc = pend[ok]
                    stepmax[loc] = (zp[ok] - zc[loc]).abs().amax(1)
                    predicted[loc] = _predicted(g[loc], H[loc], zp[ok] - zc[loc])
                    zc[loc], X[loc], e[loc], cost[loc] = zp[ok], Xp[ok], ep[ok], cp[ok]
                    ct[loc] = cp[ok]
                    acc_ok[loc] = True
                    if Jacc is None and len(loc) == A:
                        Jacc = Jp
                    else:
                        if Jacc is None:
                            Jacc = torch.empty((A, self.M, 3, n), **self.dt)
                        Jacc[loc] = Jp[ok]
                keep = ~done
                lam[pend[keep]] *= 10.0
                raised[pend[keep]] = True
                pend = pend[keep]
            # Frames whose best damped step still raised the cost: converged as far as they go.
            ai = acc_ok.nonzero().squeeze(1)
            decrease = c_old[ai] - ct[ai]
            if kind_code != _LS and len(ai):
                # The threshold follows the residuals; the next decrease is measured at it.
                dn = self.delta_of(e[ai], use[ai])
                changed = dn != delta[ai]
                if changed.any():
                    delta[ai] = dn
                    cost[ai] = (w[ai] * self.rho(e[ai], delta[ai], kind[ai])).sum(1) + self.task_cost(zc[ai])
            fac = _damping_factor(torch, decrease, predicted[ai])
            lam[ai] = torch.where(raised[ai], lam[ai], torch.clamp(lam[ai] * fac, min=1e-9))
            mc = (w[ai] * self.rho(e[ai], delta[ai], kind[ai])).sum(1)
            noisy = (mc > self.floor) & (mc < 3.0 * level[ai])
            rel = torch.where(noisy, torch.full_like(mc, o.noisy_relative_decrease),
                              torch.full_like(mc, RELATIVE_DECREASE))
            # Relative to the cost at the step's threshold (before the threshold followed the
            # residuals), as JacobianIK measures it.
            conv = (stepmax[ai] < o.accuracy) | (decrease < torch.clamp(rel * ct[ai], min=1e-14))
            go = ai[~conv]
            if len(go):
                H[go], g[go], dg[go] = self._normal_equations(Jacc[go], X[go], x[go], w[go], e[go], delta[go],
                                                              kind[go], zc[go])
            live = torch.zeros(A, dtype=torch.bool, device=dev)
            live[go] = True
            if not live.all():
                fin = ~live
                z_out[rows[fin]], X_out[rows[fin]] = zc[fin], X[fin]
                rows, x, w, use, level, kind = rows[live], x[live], w[live], use[live], level[live], kind[live]
                zc, X, e, delta, cost, lam = zc[live], X[live], e[live], delta[live], cost[live], lam[live]
                H, g, dg = H[live], g[live], dg[live]
        if len(rows):  # out of iterations
            z_out[rows], X_out[rows] = zc, X
        return z_out, X_out

    def _normal_equations(self, J, X, x, w, e, delta, kind, z):
        """Gauss-Newton system H (B, n, n), g (B, n) and H's diagonal (clamped) at poses ``z``
        with marker positions X, Jacobians J, IRLS weights of the rows' losses."""
        torch = self.torch
        B, n = z.shape
        sw = torch.sqrt(w * self.irls(e, delta, kind))
        r = (sw.unsqueeze(2) * (X - x)).reshape(B, -1, 1)
        Jf = (sw[:, :, None, None] * J).reshape(B, -1, n)
        Jt = Jf.transpose(1, 2)
        H = Jt @ Jf + torch.diag(self.task_diag)
        g = (Jt @ r).squeeze(2)
        if len(self.task_k):
            g[:, self.task_k] += self.task_w * (z[:, self.task_k] - self.task_v)
        # Marquardt scaling (floored); unobserved coordinates (zero column) keep their value.
        return H, g, _marquardt_diagonal(torch.diagonal(H, dim1=1, dim2=2))

    def solve_frames(self, z, fr, iterations, lam0=1e-3, robust_frame=True):
        """JacobianIK's per-frame phases on a batch: least squares; Huber where a marker is then
        beyond the threshold; the log tail where one still is. Returns z, X, merit (B,)."""
        z, X = self.lm(z, fr, iterations, lam0, _LS)
        if self.robust and robust_frame:
            b = self.beyond(fr, X).nonzero().squeeze(1)
            if len(b):
                zb, Xb = self.lm(z[b], fr[b], iterations, lam0, _HUBER)
                z[b], X[b] = zb, Xb
                if self.o.robust_loss == "log":
                    b2 = b[self.beyond(fr[b], Xb).nonzero().squeeze(1)]
                    if len(b2):
                        zb, Xb = self.lm(z[b2], fr[b2], iterations, lam0, _LOG)
                        z[b2], X[b2] = zb, Xb
        return z, X, self.marker_cost(fr, X) + self.task_cost(z)

    # ------------------------------------------------------------------ starts

    def place_pelvis(self, z, fr):
        """JacobianIK's ``_initial_guess`` for a batch: pelvis yaw (about Y) and translation from a
        rigid fit of the used markers of each frame to the model's at z (B, n)."""
        torch = self.torch
        free = self.free_names
        X, _ = self.fk(z, jac=False)
        x, use = self.x[fr], (self.w[fr] > 0)
        ok = use.sum(1) >= 3
        m = use.unsqueeze(2).to(X.dtype)
        cnt = m.sum(1).clamp(min=1)
        ca, cb = (X * m).sum(1) / cnt, (x * m).sum(1) / cnt
        a, b = (X - ca[:, None]) * m, (x - cb[:, None]) * m
        a2, b2 = a[:, :, [0, 2]], b[:, :, [0, 2]]
        H = a2.transpose(1, 2) @ b2
        yaw = torch.atan2(H[:, 0, 1] - H[:, 1, 0], H[:, 0, 0] + H[:, 1, 1])
        z = z.clone()
        if "pelvis_rotation" in free:
            k = free.index("pelvis_rotation")
            z[ok, k] = z[ok, k] - yaw[ok]
        X, _ = self.fk(z, jac=False)
        shift = cb - (X * m).sum(1) / cnt
        for i, ax in enumerate(("pelvis_tx", "pelvis_ty", "pelvis_tz")):
            if ax in free:
                k = free.index(ax)
                z[ok, k] = z[ok, k] + shift[ok, i]
        return z

    def multistart(self, fr, z_base, best, partial):
        """Restarts from random poses within the ranges for frames ``fr`` (all candidates of all
        frames in one batch); pelvis and unobserved coordinates kept at ``z_base``, with
        ``partial`` each other coordinate re-drawn with probability 1/2. ``best``: (z, X, merit)
        of the frames so far; returns the better per frame."""
        torch = self.torch
        R = self.o.restarts
        if R <= 0 or len(fr) == 0:
            return best
        lo, hi = np.nan_to_num(self.lo_np, neginf=0.0), np.nan_to_num(self.hi_np, posinf=0.0)
        zb = z_base.cpu().numpy()
        cand = []
        chains = self.chain_of[fr.cpu().numpy()]
        states = []  # each frame's restart stream before each of its draws
        for i in range(len(fr)):
            rng = self.rngs.setdefault(int(chains[i]), np.random.default_rng(0))
            states.append([])
            for _ in range(R):
                states[-1].append(rng.bit_generator.state)
                keep = self.pelvis | ~self.observed[chains[i]]
                if partial:
                    keep = keep | (rng.random(self.n) < 0.5)
                cand.append(np.where(keep, zb[i], lo + (hi - lo) * rng.uniform(0.25, 0.75, self.n)))
        zc = torch.as_tensor(np.array(cand), **self.dt)
        frc = fr.repeat_interleave(R)
        zc, Xc, mc = self.solve_frames(zc, frc, self.o.first_frame_iterations, robust_frame=False)
        mcm = self.marker_cost(frc, Xc).view(len(fr), R)
        mc = mc.view(len(fr), R)
        # JacobianIK takes the candidates in turn and stops once the best fits below the floor
        # (~0.2 mm per marker): the same choice here, and the streams of the frames that stopped
        # early rewound to where JacobianIK's would be (the next restarts draw the same poses).
        zbst, Xbst, cbst = best
        bz, bm = cbst.clone(), self.marker_cost(fr, Xbst)
        k = torch.full((len(fr),), -1, dtype=torch.long, device=self.dev)
        used = torch.zeros(len(fr), dtype=torch.long, device=self.dev)
        stopped = bm < self.floor
        for r in range(R):
            act = ~stopped
            used += act.long()
            better = act & (mc[:, r] < bz)
            bz, bm = torch.where(better, mc[:, r], bz), torch.where(better, mcm[:, r], bm)
            k = torch.where(better, torch.full_like(k, r), k)
            stopped = stopped | (bm < self.floor)
        for i in (used < R).nonzero().squeeze(1).tolist():
            self.rngs[int(chains[i])].bit_generator.state = states[i][int(used[i])]
        win = k >= 0
        k = k.clamp(min=0)
        sel = torch.arange(len(fr), device=self.dev) * R + k
        if not win.any():
            return best
        wi = win.nonzero().squeeze(1)
        zbst, Xbst, cbst = zbst.clone(), Xbst.clone(), cbst.clone()
        if not partial:
            # First frames: the winner as it is (the caller solves it to full accuracy).
            zbst[wi], Xbst[wi], cbst[wi] = zc[sel[wi]], Xc[sel[wi]], bz[wi]
            return zbst, Xbst, cbst
        # A restart won: the robust phases from it (kept only if still better).
        zr, Xr, cr = self.solve_frames(zc[sel[wi]], fr[wi], self.o.first_frame_iterations)
        better = cr < cbst[wi]
        bi = wi[better]
        zbst[bi], Xbst[bi], cbst[bi] = zr[better], Xr[better], cr[better]
        return zbst, Xbst, cbst

    # ------------------------------------------------------------------ stages

    def smooth(self, zs, first: int = 0, length: int | None = None):
        """Gauss-Newton on the whole objective with the temporal term, in overlapping windows, on
        the trajectory of frames ``first`` .. ``first + length - 1`` (default: all frames)."""
        from scipy.linalg import solveh_banded

        torch = self.torch
        s = float(self.o.smoothness)
        T = self.T - first if length is None else length
        W, overlap = self.o.window, self.o.smoothing_overlap
        if s <= 0 or T < 3:
            return zs
        end = first + T
        zs = zs.clone()
        # Loss kind and threshold per frame, fixed from the per-frame solution (IRLS majoriser).
        kinds, deltas = torch.empty(self.T, dtype=torch.long, device=self.dev), torch.empty(self.T, **self.dt)
        for a in range(first, end, W):
            fr = torch.arange(a, min(end, a + W), device=self.dev)
            Xw = self.fk(zs[fr], jac=False)[0]
            e = (Xw - self.x[fr]).norm(dim=2)
            d = self.delta_of(e, self.w[fr] > 0)
            k = torch_full(torch, len(fr), _LS, self.dev)
            if self.robust:
                k[((e > d[:, None]) & (self.w[fr] > 0)).any(1)] = _LOG if self.o.robust_loss == "log" else _HUBER
            kinds[fr], deltas[fr] = k, torch.where(k == _LS, torch.full_like(d, float("inf")), d)
        a = first
        while True:
            b = min(end, a + W)
            self._smooth_window(zs, a, b, s, kinds, deltas, solveh_banded, first, end)
            if b == end:
                break
            a = b - overlap
        return zs

    def _smooth_window(self, zs, a, b, s, kinds, deltas, solveh_banded, first=0, end=None):
        """Gauss-Newton (LM) on frames [a, b) of the trajectory objective (trajectory: frames
        [first, end)), the other frames held."""
        torch = self.torch
        end = self.T if end is None else end
        n = self.n
        fr = torch.arange(a, b, device=self.dev)
        Wf = b - a
        N = Wf * n
        u = 2 * n  # band: the acceleration couples frames up to 2 apart
        # Acceleration rows a_t = z_t - (z_t-1 + z_t+1) / 2 touching the window.
        acc_t = np.arange(max(first + 1, a - 1), min(end - 2, b) + 1)
        coef = ((-1, -0.5), (0, 1.0), (1, -0.5))
        # Their Hessian (constant): s c_i c_j between window frames, K[i, d] for frames i, i + d.
        K = np.zeros((Wf, 3))
        for t in acc_t:
            for j, cj in coef:
                for jj, cjj in coef:
                    ti, tj = t + j - a, t + jj - a
                    if 0 <= ti < Wf and 0 <= tj < Wf and tj >= ti:
                        K[ti, tj - ti] += s * cj * cjj
        zs_np = zs.cpu().numpy()

        def energy(zw):
            zz = zs_np.copy()
            zz[a:b] = zw.cpu().numpy()
            acc = zz[acc_t] - 0.5 * (zz[acc_t - 1] + zz[acc_t + 1])
            return s * float((acc * acc).sum()), acc

        def frame_cost(zw, X):
            e = (X - self.x[fr]).norm(dim=2)
            return (self.w[fr] * self.rho(e, deltas[fr], kinds[fr])).sum(1) + self.task_cost(zw)

        zw = zs[a:b].clone()
        X, J = self.fk(zw)
        es, acc = energy(zw)
        total = float(frame_cost(zw, X).sum()) + es
        lam = 1e-6
        iu = np.triu_indices(n)
        rows = u + iu[0] - iu[1]
        cols = (np.arange(Wf)[:, None] * n + iu[1][None]).ravel()
        rows_all = np.tile(rows, Wf)
        diag_cols = np.arange(N)
        for _ in range(self.o.smoothing_iterations):
            e = (X - self.x[fr]).norm(dim=2)
            sw = torch.sqrt(self.w[fr] * self.irls(e, deltas[fr], kinds[fr]))
            r = (sw.unsqueeze(2) * (X - self.x[fr])).reshape(Wf, -1, 1)
            Jf = (sw[:, :, None, None] * J).reshape(Wf, -1, n)
            H = Jf.transpose(1, 2) @ Jf + torch.diag(self.task_diag)
            g = (Jf.transpose(1, 2) @ r).squeeze(2)
            if len(self.task_k):
                g[:, self.task_k] += self.task_w * (zw[:, self.task_k] - self.task_v)
            gn = g.cpu().numpy()
            # Temporal rows: gradient s c_j a_t on frame t + j.
            ge = np.zeros((self.T, n))
            for j, cj in coef:
                np.add.at(ge, acc_t + j, s * cj * acc)
            gn = (gn + ge[a:b]).ravel()
            Hn = H.cpu().numpy()
            dgn = marquardt_diagonal(np.diagonal(Hn, axis1=1, axis2=2))
            while True:
                ab = np.zeros((u + 1, N))
                Hd = Hn + (lam * dgn + 1e-12)[:, :, None] * np.eye(n)[None]
                ab[rows_all, cols] = Hd[:, iu[0], iu[1]].ravel()
                ab[u, diag_cols] += np.repeat(K[:, 0], n)
                for d in (1, 2):
                    if Wf > d:
                        ab[u - d * n, d * n:] += np.repeat(K[:Wf - d, d], n)
                step = -solveh_banded(ab, gn, lower=False, check_finite=False).reshape(Wf, n)
                zt = torch.minimum(torch.maximum(zw + torch.as_tensor(step, **self.dt), self.lo), self.hi)
                Xt, Jt = self.fk(zt)
                est, acct = energy(zt)
                tt = float(frame_cost(zt, Xt).sum()) + est
                if tt <= total or lam > 1e8:
                    break
                lam *= 10.0
            if tt > total:
                break
            decrease = total - tt
            stepmax = float((zt - zw).abs().max())
            zw, X, J, acc, total = zt, Xt, Jt, acct, tt
            lam = max(lam / 10.0, 1e-9)
            if stepmax < self.o.accuracy or decrease < max(1e-14, RELATIVE_DECREASE * total):
                break
        zs[a:b] = zw

    # ------------------------------------------------------------------ lockstep (many chains)

    def first_frames(self, fr):
        """JacobianIK's first-frame solve for the first frames ``fr`` (C,) of all chains at once:
        pelvis placed, the default pose solved, restarts where it fits worse than ~0.2 mm per
        marker (candidates to a loose tolerance), the best solved to full accuracy (with the robust
        phases). Returns z, X, merit."""
        torch = self.torch
        C = len(fr)
        z = torch.as_tensor(self.z_default, **self.dt)[None].repeat(C, 1)
        z = self.place_pelvis(z, fr)
        _, J = self.fk(z)
        self.observed = (J.reshape(C, -1, self.n).norm(dim=1) > 1e-9).cpu().numpy()
        # Candidates to the noisy relative decrease (an infinite noise level), the winner to full
        # accuracy: JacobianIK's first frame.
        self.noise_level[fr] = float("inf")
        z0, X0, c0 = self.solve_frames(z, fr, self.o.first_frame_iterations, robust_frame=False)
        need = (self.marker_cost(fr, X0) >= self.floor).nonzero().squeeze(1)
        if len(need):
            zb, Xb, cb = self.multistart(fr[need], z[need], (z0[need], X0[need], c0[need]), partial=False)
            z0, X0, c0 = z0.clone(), X0.clone(), c0.clone()
            z0[need], X0[need], c0[need] = zb, Xb, cb
        self.noise_level[fr] = 0.0
        return self.solve_frames(z0, fr, self.o.first_frame_iterations)

    def lockstep(self):
        """Frame-by-frame IK of every chain, one frame of each chain in flight: JacobianIK's path
        per chain (warm start from the converged previous frame or its constant-velocity
        prediction, whichever fits the frame's markers better; least squares, then Huber / the
        log tail where a marker is beyond the threshold; jump restarts; backward repair).

        Each chain advances on its own: the moment its frame has converged (or a loss phase
        ends) the next phase or frame joins the batch, so one Gauss-Newton iteration of the
        engine serves every chain, and the number of iterations is the longest chain's total,
        not the sum over frames of the slowest frame's (a batch of frame t of every chain
        waited for its slowest member in each of the three phases: ~150 iterations per frame,
        mostly on one or two rows). Returns zs (T, n), X (T, M, 3), marker cost (T,)."""
        torch = self.torch
        o = self.o
        dev = self.dev
        T, C, n, M = self.T, len(self.lengths), self.n, self.M
        off = torch.as_tensor(self.offsets, dtype=torch.long, device=dev)
        end = off + torch.as_tensor(self.lengths, dtype=torch.long, device=dev)
        zs = torch.empty((T, n), **self.dt)
        Xs = torch.empty((T, M, 3), **self.dt)
        cs = torch.zeros(T, **self.dt)
        self.stats = {}
        t0 = _time.perf_counter()
        z0, X0, _ = self.first_frames(off)
        self.first_seconds = _time.perf_counter() - t0
        zs[off], Xs[off] = z0, X0
        cs[off] = self.marker_cost(off, X0)
        back = torch.arange(0, 10, device=dev)
        # Row state: one row per chain (its frame in flight). A row either chooses its frame's
        # start (CHOOSE: previous pose or its constant-velocity prediction) or tries a damped
        # step (TRIAL); every iteration evaluates all rows' points in ONE call of the engine.
        CHOOSE, TRIAL, WAIT, DONE = 0, 1, 2, 3
        fr = off.clone()
        state = torch.full((C,), CHOOSE, dtype=torch.long, device=dev)
        z = z0.clone()
        X = X0.clone()
        J = torch.zeros((C, M, 3, n), **self.dt)
        e = torch.zeros((C, M), **self.dt)
        H = torch.zeros((C, n, n), **self.dt)
        g = torch.zeros((C, n), **self.dt)
        dg = torch.ones((C, n), **self.dt)
        delta = torch.full((C,), float("inf"), **self.dt)
        cost = torch.zeros(C, **self.dt)
        lam = torch.full((C,), 1e-6, **self.dt)
        count = torch.zeros(C, dtype=torch.long, device=dev)
        kind = torch_full(torch, C, _LS, dev)
        raised = torch.zeros(C, dtype=torch.bool, device=dev)
        acc_cost = torch.zeros(C, **self.dt)
        acc_until = torch.full((C,), -1, dtype=torch.long, device=dev)
        loss_code = _LOG if o.robust_loss == "log" else _HUBER
        eye = torch.eye(n, **self.dt)
        pbar = None
        if self.progress and T > C:
            from tqdm import tqdm

            pbar = tqdm(total=T - C, desc="IK (batched)", unit="frame")

        def normal_equations(rows):
            """Gauss-Newton system at the rows' current poses (IRLS weights of their loss)."""
            f = fr[rows]
            H[rows], g[rows], dg[rows] = self._normal_equations(J[rows], X[rows], self.x[f], self.w[f], e[rows],
                                                                delta[rows], kind[rows], z[rows])

        def phase_start(rows, code):
            """A loss phase from the rows' current poses (their X, J are current)."""
            f = fr[rows]
            kind[rows] = code
            self.stats[f"phases_{code}"] = self.stats.get(f"phases_{code}", 0) + len(rows)
            if code == _LS:
                delta[rows] = float("inf")
            else:
                delta[rows] = self.delta_of(e[rows], self.w[f] > 0)
            cost[rows] = (self.w[f] * self.rho(e[rows], delta[rows], kind[rows])).sum(1) + self.task_cost(z[rows])
            lam[rows] = WARM_DAMPING  # warm start (JacobianIK's damping for every phase)
            count[rows] = 1
            raised[rows] = False
            normal_equations(rows)
            state[rows] = TRIAL

        def next_frame(rows):
            """Move rows to their next frame (CHOOSE) or retire them (DONE)."""
            nxt = fr[rows] + 1
            live = nxt < end[rows]
            state[rows[~live]] = DONE
            rows, nxt = rows[live], nxt[live]
            fr[rows] = nxt
            self.noise_level[nxt] = self._recent(cs, nxt - 1, off[rows], back)
            state[rows] = CHOOSE

        def commit(rows):
            f = fr[rows]
            zs[f], Xs[f] = z[rows], X[rows]
            cs[f] = self.marker_cost(f, X[rows])
            if pbar is not None:
                pbar.update(len(rows))
            next_frame(rows)

        def frame_done(rows):
            """JacobianIK's jump check (marker cost above 9x the recent median + floor): those
            frames WAIT for restarts, the others are committed."""
            f = fr[rows]
            recent = self._recent(cs, f - 1, off[rows], back)
            t_in = f - off[rows]
            recent = torch.where(t_in <= acc_until[rows], torch.maximum(recent, acc_cost[rows]), recent)
            jump = self.marker_cost(f, X[rows]) > 9.0 * recent + self.floor
            state[rows[jump]] = WAIT
            if (~jump).any():
                commit(rows[~jump])

        def restart_waiting():
            rows = (state == WAIT).nonzero().squeeze(1)
            f = fr[rows]
            self.jump_restarts += len(rows)
            mcb = self.marker_cost(f, X[rows])
            merit = mcb + self.task_cost(z[rows])
            zj, Xj, cj = self.multistart(f, zs[f - 1], (z[rows], X[rows], merit), partial=True)
            kept = ~(cj < merit)
            acc_cost[rows[kept]] = mcb[kept]
            acc_until[rows[kept]] = (f - off[rows])[kept] + 10
            z[rows], X[rows] = zj, Xj
            commit(rows)

        def phase_end(rows):
            """Least squares -> Huber -> log tail where a marker is beyond the threshold; else the
            frame is done."""
            if self.robust and len(rows):
                bey = self.beyond(fr[rows], X[rows])
                up_h = bey & (kind[rows] == _LS)
                up_l = bey & (kind[rows] == _HUBER) & (loss_code == _LOG)
                if up_h.any():
                    phase_start(rows[up_h], _HUBER)
                if up_l.any():
                    phase_start(rows[up_l], _LOG)
                rows = rows[~(up_h | up_l)]
            if len(rows):
                frame_done(rows)

        next_frame(torch.arange(C, device=dev))
        while True:
            ch = (state == CHOOSE).nonzero().squeeze(1)
            tr = (state == TRIAL).nonzero().squeeze(1)
            if len(ch) == 0 and len(tr) == 0:
                if (state == WAIT).any():
                    restart_waiting()
                    continue
                break
            # Trial steps (Marquardt-scaled, projected on the bounds) and start candidates.
            if len(tr):
                A = H[tr] + lam[tr][:, None, None] * torch.diag_embed(dg[tr]) + 1e-12 * eye
                zp = torch.minimum(torch.maximum(z[tr] - torch.linalg.solve(A, g[tr]), self.lo), self.hi)
            else:
                zp = z[:0]
            fc = fr[ch]
            prev = zs[fc - 1]
            has2 = (fc - 2) >= off[ch]
            pred = torch.where(has2[:, None], torch.minimum(torch.maximum(
                2.0 * prev - zs[torch.where(has2, fc - 2, fc - 1)], self.lo), self.hi), prev)
            Xq, Jq = self.fk(torch.cat([zp, prev, pred]))
            nt, nc = len(tr), len(ch)
            if nc:
                Xa, Xb = Xq[nt:nt + nc], Xq[nt + nc:]
                mc = self.marker_cost(torch.cat([fc, fc]), torch.cat([Xa, Xb])).view(2, -1)
                use_pred = mc[1] < mc[0]
                z[ch] = torch.where(use_pred[:, None], pred, prev)
                X[ch] = torch.where(use_pred[:, None, None], Xb, Xa)
                J[ch] = torch.where(use_pred[:, None, None, None], Jq[nt + nc:], Jq[nt:nt + nc])
                e[ch] = (X[ch] - self.x[fc]).norm(dim=2)
                phase_start(ch, _LS)
            if nt:
                ft = fr[tr]
                Xp, Jp = Xq[:nt], Jq[:nt]
                ep = (Xp - self.x[ft]).norm(dim=2)
                cp = (self.w[ft] * self.rho(ep, delta[tr], kind[tr])).sum(1) + self.task_cost(zp)
                ok = cp <= cost[tr]
                self.stats["trials"] = self.stats.get("trials", 0) + nt
                give_up = ~ok & (lam[tr] > 1e8)
                retry = ~ok & ~give_up
                lam[tr[retry]] *= 10.0
                raised[tr[retry]] = True
                acc = tr[ok]
                finished = tr[give_up]  # the best damped step still raised the cost
                if len(acc):
                    decrease = cost[acc] - cp[ok]
                    stepmax = (zp[ok] - z[acc]).abs().amax(1)
                    zold = z[acc]
                    z[acc], X[acc], J[acc], e[acc], cost[acc] = zp[ok], Xp[ok], Jp[ok], ep[ok], cp[ok]
                    rob = acc[kind[acc] != _LS]
                    if len(rob):
                        dn = self.delta_of(e[rob], self.w[fr[rob]] > 0)
                        chg = dn != delta[rob]
                        if chg.any():
                            rc = rob[chg]
                            delta[rc] = dn[chg]
                            cost[rc] = (self.w[fr[rc]] * self.rho(e[rc], delta[rc], kind[rc])).sum(1) \
                                + self.task_cost(z[rc])
                    fac = _damping_factor(torch, decrease, _predicted(g[acc], H[acc], zp[ok] - zold))
                    lam[acc] = torch.where(raised[acc], lam[acc], torch.clamp(lam[acc] * fac, min=1e-9))
                    raised[acc] = False
                    fa = fr[acc]
                    mcm = (self.w[fa] * self.rho(e[acc], delta[acc], kind[acc])).sum(1)
                    noisy = (mcm > self.floor) & (mcm < 3.0 * self.noise_level[fa])
                    rel = torch.where(noisy, torch.full_like(mcm, o.noisy_relative_decrease),
                                      torch.full_like(mcm, RELATIVE_DECREASE))
                    conv = (stepmax < o.accuracy) | (decrease < torch.clamp(rel * cp[ok], min=1e-14)) \
                        | (count[acc] >= o.max_iterations)
                    go = acc[~conv]
                    if len(go):
                        count[go] += 1
                        normal_equations(go)
                    finished = torch.cat([finished, acc[conv]])
                if len(finished):
                    state[finished] = -1  # in transition
                    phase_end(finished)
            if (state == WAIT).sum() >= max(1, int((state != DONE).sum()) // 8):
                restart_waiting()
        if pbar is not None:
            pbar.close()
        L = int(self.lengths.max())
        lengths = end - off
        # Backward repair: a frame far above its successor (typically a first frame in a poor
        # minimum) is solved again from the successor's solution, the better kept.
        for t in range(L - 2, -1, -1):
            ci = (lengths - 2 >= t).nonzero().squeeze(1)
            fr = off[ci] + t
            bad = (cs[fr] > 4.0 * cs[fr + 1] + self.floor).nonzero().squeeze(1)
            if len(bad) == 0:
                continue
            fb = fr[bad]
            z2, X2, _ = self.solve_frames(zs[fb + 1].clone(), fb, self.o.first_frame_iterations)
            c2 = self.marker_cost(fb, X2)
            better = c2 < cs[fb]
            zs[fb[better]], Xs[fb[better]], cs[fb[better]] = z2[better], X2[better], c2[better]
        return zs, Xs, cs

    def _recent(self, cs, last, first, back):
        """Median marker cost of the 10 frames up to ``last`` (B,) within each chain (starting at
        ``first``), JacobianIK's noise level (numpy's median: the mean of the two middle values
        for an even count; torch's median takes the lower one, which moved the noisy-frame
        test and so the early stop of some frames)."""
        torch = self.torch
        idx = last[:, None] - back[None]
        ok = idx >= first[:, None]
        v = torch.where(ok, cs[idx.clamp(min=0)], torch.full_like(idx, 0, dtype=cs.dtype) + float("inf"))
        v = torch.sort(v, dim=1).values
        cnt = ok.sum(1)
        lo = ((cnt - 1).clamp(min=0) // 2)[:, None]
        hi = (cnt // 2).clamp(max=v.shape[1] - 1)[:, None]
        return 0.5 * (v.gather(1, lo) + v.gather(1, hi)).squeeze(1)

    def run(self) -> list[IKResult]:
        """Solve every chain; one :class:`IKResult` per trial (``seconds``: the solve's time
        shared out by frames)."""
        torch = self.torch
        t0 = _time.perf_counter()
        with torch.no_grad():
            zs, Xs, _ = self.lockstep()
            if self.o.smoothness > 0:
                for a, T in zip(self.trial_offsets, self.trial_lengths, strict=True):
                    zs = self.smooth(zs, int(a), int(T))
                Xs = torch.cat([self.fk(zs[a:a + self.o.window], jac=False)[0]
                                for a in range(0, self.T, self.o.window)])
            q = self.bk.full_coordinates(zs)
        seconds = _time.perf_counter() - t0
        order = [list(self.bk.coordinate_names).index(c) for c in self.kin0.names]
        values = q.cpu().numpy()[:, order]
        pos = Xs.cpu().numpy()
        out = []
        for c, prep in enumerate(self.preps):
            a, T = int(self.trial_offsets[c]), int(self.trial_lengths[c])
            errors = np.linalg.norm(pos[a:a + T] - prep.x, axis=2)
            res = _result(prep, self.trials[c].time, values[a:a + T], errors, self.o.name, seconds * T / self.T)
            res.meta["jump_restarts"] = self.jump_restarts
            res.meta["first_frame_seconds"] = self.first_seconds
            # Engine rows evaluated as trial steps and loss phases started (0 least squares, 1
            # Huber, 2 log tail) after the first frames, all chains of the batch together.
            res.meta["lockstep"] = dict(self.stats)
            res.meta["window"] = self.o.window
            res.meta["smoothness"] = self.o.smoothness
            res.meta["trials_in_batch"] = len(self.trials)
            res.meta["chains_in_batch"] = len(self.lengths)
            res.meta["chain_frames"] = self.o.chain_frames
            if self.robust:
                from simspine.biomech.ik import robust_threshold

                used = prep.w > 0
                e0 = np.nan_to_num(errors)
                w_fn = huber_weight if self.o.robust_loss == "huber" else log_weight
                res.robust_delta = np.array([robust_threshold(e0[t], used[t], self.o.robust_k,
                                                              self.o.robust_min_delta) for t in range(T)])
                res.robust_weights = np.where(used, w_fn(e0, res.robust_delta[:, None]), np.nan)
                res.meta["robust"] = {"loss": self.o.robust_loss, "k": self.o.robust_k,
                                      "min_delta_m": self.o.robust_min_delta,
                                      "downweighted_share": res.downweighted_share()}
            out.append(res)
        return out


def _marquardt_diagonal(d):
    """JacobianIK's :func:`~simspine.biomech.ik.marquardt_diagonal` on a batch (B, n)."""
    return (d.maximum(MARQUARDT_FLOOR * d.amax(1, keepdim=True))).clamp(min=1e-12)


def _predicted(g, H, s):
    """Decrease of the cost predicted by the Gauss-Newton model for steps s (B, n):
    -(2 g.s + s'Hs)."""
    return -(2.0 * (g * s).sum(1) + (s.unsqueeze(1) @ H @ s.unsqueeze(2)).view(-1))


def _damping_factor(torch, decrease, predicted):
    """JacobianIK's :func:`~simspine.biomech.ik.damping_factor` on a batch."""
    rho = torch.clamp(decrease / torch.clamp(predicted, min=1e-300), max=2.0)
    return torch.clamp(1.0 - (2.0 * rho - 1.0) ** 3, min=1.0 / 3.0, max=1.0)


def torch_full(torch, n, value, device=None):
    return torch.full((n,), value, dtype=torch.long, device=device)


def torch_zeros(torch, n, dt):
    return torch.zeros(n, **dt)
