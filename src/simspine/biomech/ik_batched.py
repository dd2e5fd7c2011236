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

How the frames are solved (``window`` frames at a time, so memory stays bounded for any length):

* first frame: JacobianIK's start (pelvis placed on the data by a yaw + translation fit, then
  the default pose and ``restarts`` random poses within the ranges solved *together* as one
  batch by least squares; the robust phases on the best);
* each window of frames: damped Gauss-Newton (Levenberg-Marquardt, Marquardt scaling, steps
  projected onto the bounds and limited to ``max_step`` per coordinate, per-frame damping and
  convergence) on every frame in flight as one batch: one call of the engine per iteration gives
  the markers and Jacobians of all of them. Frames join in order (``chunk`` frames at a time),
  each once its predecessor has converged or run ``lag`` iterations, starting from the
  predecessor's pose then -- a pipelined version of JacobianIK's warm start, which keeps each
  frame in the basin JacobianIK's frame-by-frame path finds;
* repairs, batched too: a frame whose cost is far above a neighbour's is solved again from the
  neighbour's solution (JacobianIK's backward repair, both ways, repeated until nothing
  improves); a frame far above the recent median gets JacobianIK's partial restarts;
* coordinates that no used marker moves in a frame (a wrist marker missing: elbow flexion)
  take the value JacobianIK's frame-by-frame warm start leaves them: the previous frame's, or
  its constant-velocity prediction when that fits the frame's markers better;
* smoothness > 0: the per-frame solution is refined by Gauss-Newton on the whole objective,
  window by window with overlapping frames (``smoothing_overlap``) held by their current values;
  the normal equations of a window are block-banded (the acceleration couples frames t-2..t+2)
  and solved as a symmetric banded system (``scipy.linalg.solveh_banded``).

Status (tests/test_ik_batched.py; 24 frames at 50 Hz of ``random_motion``): exact markers agree
with JacobianIK to 0.0005 deg RMS (0.007 deg at most), same marker RMS. With 10 mm noise the
batched solver fits the markers slightly better (15.0 vs 15.3 mm mean RMS) but weakly observed
coordinates -- forearm pronation, arm rotation -- settle in other points of their near-flat
minima (tens of degrees apart): JacobianIK's are set by its frame-to-frame path and its early
stop on noisy frames (``NOISY_RELATIVE_DECREASE``), and even with both converged tightly the two
paths end in different minima there. So the 0.1 deg agreement holds on exact markers only, and
JacobianIK stays the default. Speed: ``simspine bench ik``.
"""

from __future__ import annotations

import time as _time

import numpy as np

from simspine.biomech.ik import (
    NOISY_RELATIVE_DECREASE,
    RELATIVE_DECREASE,
    ROBUST_CHI3_MEDIAN,
    ROBUST_K,
    ROBUST_LOSS,
    ROBUST_LOSSES,
    ROBUST_MIN_DELTA,
    IKResult,
    _Kinematic,
    _prepare,
    _progress,
    _result,
    huber_weight,
    log_weight,
)
from simspine.errors import InputError
from simspine.trajectories import Trajectories

#: Frames solved together (one batch of the engine per Gauss-Newton iteration).
DEFAULT_WINDOW = 128
#: Frames shared by consecutive windows of the smoothing stage (held at their current values by
#: the window that does not own them).
DEFAULT_SMOOTHING_OVERLAP = 16

#: Frames of a window that start together (a group); group g starts once every frame of group g-1
#: has converged or run ``lag`` (default 5) iterations, from that group's last pose. Starting
#: every frame of a window from the previous window's pose left weakly observed coordinates
#: (forearm pronation) at their range limits in some frames (35 deg off, exact markers); groups
#: of 2 frames with lag 3 still left a stretch of 20 frames in a 2 mm worse minimum (100 exact
#: frames); 1 frame with lag 5: 0.00015 deg RMS from JacobianIK there, no slower (the later
#: starts converge in fewer iterations); extrapolating the predecessors' velocity ran away on
#: noisy markers (100 mm RMS).
DEFAULT_CHUNK = 1

_LS, _HUBER, _LOG = 0, 1, 2


def _kinematics_class():
    from simspine.biomech.batched_fk import BatchedKinematics

    return BatchedKinematics


class BatchedIK:
    """Batched Gauss-Newton / Levenberg-Marquardt trajectory IK (see the module docstring).

    ``accuracy``: convergence threshold on the step (rad or m); ``smoothness``: weight of the
    temporal term per frame (0 = frame-by-frame IK); ``window``: frames per batch;
    ``robust``: as :class:`~simspine.biomech.ik.JacobianIK`'s; ``threads``: torch threads for
    the solve (None: leave torch's setting); ``kinematics``: the engine class (default
    :class:`simspine.biomech.batched_fk.BatchedKinematics`).
    """

    name = "batched"

    def __init__(self, accuracy: float = 1e-6, max_iterations: int = 50, first_frame_iterations: int = 200,
                 restarts: int = 8, smoothness: float = 0.0, window: int = DEFAULT_WINDOW,
                 smoothing_overlap: int = DEFAULT_SMOOTHING_OVERLAP, smoothing_iterations: int = 30,
                 chunk: int = DEFAULT_CHUNK, max_step: float = 0.2, lag: int = 5, extrapolate: float = 0.0,
                 robust: bool | str = True, robust_k: float = ROBUST_K,
                 robust_min_delta: float = ROBUST_MIN_DELTA, noisy_relative_decrease: float = NOISY_RELATIVE_DECREASE,
                 threads: int | None = 1, device: str = "cpu", kinematics=None):
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
        self.robust_loss = robust or None
        self.robust_k, self.robust_min_delta = robust_k, robust_min_delta
        self.accuracy = accuracy
        self.max_iterations, self.first_frame_iterations = max_iterations, first_frame_iterations
        self.restarts = restarts
        self.smoothness = smoothness
        self.window, self.smoothing_overlap = window, min(smoothing_overlap, window // 4)
        self.chunk = max(1, min(chunk, window))
        self.max_step = max_step
        self.lag, self.extrapolate = max(1, lag), extrapolate
        self.smoothing_iterations = smoothing_iterations
        self.noisy_relative_decrease = noisy_relative_decrease
        self.threads, self.device = threads, device
        self.kinematics = kinematics

    def solve(self, model, markers: Trajectories, weights=None, coordinate_tasks=None, progress=False) -> IKResult:
        import torch

        saved_threads = torch.get_num_threads()
        if self.threads:
            torch.set_num_threads(self.threads)
        try:
            return _Solver(self, model, markers, weights, coordinate_tasks, progress).run()
        finally:
            torch.set_num_threads(saved_threads)


class _Solver:
    """One trial's solve (state shared by the stages)."""

    def __init__(self, opts: BatchedIK, model, markers, weights, coordinate_tasks, progress):
        import torch

        self.torch = torch
        self.o = opts
        self.progress = progress
        self.markers = markers
        self.prep = prep = _prepare(model, markers, weights, coordinate_tasks)
        self.kin0 = _Kinematic(prep.model, prep.state)  # bounds, default pose (as JacobianIK's)
        cls = opts.kinematics or _kinematics_class()
        self.bk = cls.from_model(prep.model, dtype=torch.float64, device=opts.device)
        free = list(self.kin0.free_names)
        if list(self.bk.independent_names) != free:
            raise InputError(None, "the batched kinematics' independent coordinates differ from the model's "
                                   "free coordinates")
        self.names = prep.names
        self.T, self.M, self.n = markers.n_frames, len(prep.names), len(free)
        dt = dict(dtype=torch.float64, device=opts.device)
        self.dt = dt
        self.x = torch.as_tensor(np.nan_to_num(prep.x), **dt)
        self.w = torch.as_tensor(prep.w, **dt)
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
        self.rng = np.random.default_rng(0)
        self.observed = np.ones(self.n, dtype=bool)
        self.jump_restarts = 0

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
        kind = torch_full(self.torch, len(fr), _LOG if self.o.robust_loss == "log" else _HUBER) if self.robust \
            else torch_full(self.torch, len(fr), _LS)
        return (w * self.rho(e, self.delta_of(e, w > 0), kind)).sum(1)

    def beyond(self, fr, X):
        e = (X - self.x[fr]).norm(dim=2)
        use = self.w[fr] > 0
        return ((e > self.delta_of(e, use).unsqueeze(1)) & use).any(1)

    # ------------------------------------------------------------------ batched LM

    def lm(self, z, fr, iterations, lam0, kind_code, start=None, seed=None, max_step=None):
        """Damped Gauss-Newton on frames ``fr`` (B,) from ``z`` (B, n) with one loss phase.

        ``start`` (B,): each frame's group (default: one group). Group g joins once every frame of
        group g - 1 has converged or run ``self.o.lag`` iterations, its starting pose from
        ``seed(z, rows)`` (z: the current iterates of all frames), so it starts from its
        predecessors' (nearly) converged poses. Each frame runs at most ``iterations``
        iterations. Returns z, X (B, M, 3), J (B, M, 3, n)."""
        torch = self.torch
        o = self.o
        B, n = z.shape
        z = z.clone()
        if start is None:
            start = torch.zeros(B, dtype=torch.long)
        x, w = self.x[fr], self.w[fr]
        use = w > 0
        kind = torch_full(torch, B, kind_code)
        X = torch.zeros((B, self.M, 3), **self.dt)
        J = torch.zeros((B, self.M, 3, n), **self.dt)
        e = torch.zeros((B, self.M), **self.dt)
        delta = torch.full((B,), float("inf"), **self.dt)
        cost = torch.zeros(B, **self.dt)
        lam = torch.full((B,), float(lam0), **self.dt)
        count = torch.zeros(B, dtype=torch.long)
        level = self.noise_level[fr]
        active = torch.zeros(B, dtype=torch.bool, device=z.device)
        eye = torch.eye(n, **self.dt)
        n_groups = int(start.max()) + 1 if B else 0
        started = 0  # groups started so far
        lag = self.o.lag
        for k in range(n_groups * iterations + iterations + 1):
            joining = torch.zeros(0, dtype=torch.long)
            if started < n_groups:
                prev = start == started - 1
                if started == 0 or bool(((count[prev] >= lag) | ~active[prev]).all()):
                    joining = (start == started).nonzero().squeeze(1)
                    started += 1
            if len(joining):
                if seed is not None and k > 0:
                    z[joining] = seed(z, joining)
                Xj, Jj = self.fk(z[joining])
                X[joining], J[joining] = Xj, Jj
                e[joining] = (Xj - x[joining]).norm(dim=2)
                if kind_code != _LS:
                    delta[joining] = self.delta_of(e[joining], use[joining])
                cost[joining] = (w[joining] * self.rho(e[joining], delta[joining], kind[joining])).sum(1) \
                    + self.task_cost(z[joining])
                active[joining] = True
            active &= count < iterations
            ia = active.nonzero().squeeze(1)
            if len(ia) == 0:
                if started >= n_groups:
                    break
                continue
            count[ia] += 1
            sw = torch.sqrt(w[ia] * self.irls(e[ia], delta[ia], kind[ia]))
            r = sw.unsqueeze(2) * (X[ia] - x[ia])  # (A, M, 3)
            Jw = sw[:, :, None, None] * J[ia]  # (A, M, 3, n)
            Jf = Jw.reshape(len(ia), -1, n)
            H = Jf.transpose(1, 2) @ Jf + torch.diag(self.task_diag)
            g = (Jf.transpose(1, 2) @ r.reshape(len(ia), -1, 1)).squeeze(2)
            if len(self.task_k):
                g[:, self.task_k] += self.task_w * (z[ia][:, self.task_k] - self.task_v)
            # Marquardt scaling; unobserved coordinates (zero column) keep their value.
            dg = torch.clamp(torch.diagonal(H, dim1=1, dim2=2), min=1e-12)
            zi = z[ia]
            # Per frame: raise the damping until the step lowers the cost (or give up).
            pend = torch.arange(len(ia), device=z.device)
            raised = torch.zeros(len(ia), dtype=torch.bool, device=z.device)
            zt, Xt, Jt = zi.clone(), X[ia].clone(), J[ia].clone()
            et, ct = e[ia].clone(), cost[ia].clone()
            acc_ok = torch.zeros(len(ia), dtype=torch.bool, device=z.device)
            while len(pend):
                li = lam[ia[pend]]
                A = H[pend] + (li[:, None, None] * torch.diag_embed(dg[pend])) + 1e-12 * eye
                step = -torch.linalg.solve(A, g[pend])
                if max_step:
                    # No coordinate moves more than max_step (rad, m) per iteration (per coordinate:
                    # scaling the whole step let a weak coordinate's large step stall the others).
                    step = step.clamp(-max_step, max_step)
                zp = torch.minimum(torch.maximum(zi[pend] + step, self.lo), self.hi)
                Xp, Jp = self.fk(zp)
                frp = ia[pend]
                ep = (Xp - x[frp]).norm(dim=2)
                cp = (w[frp] * self.rho(ep, delta[frp], kind[frp])).sum(1) + self.task_cost(zp)
                ok = cp <= cost[frp]
                done = ok | (li > 1e8)
                dn = pend[done]
                zt[dn], Xt[dn], Jt[dn], et[dn], ct[dn], acc_ok[dn] = (zp[done], Xp[done], Jp[done], ep[done],
                                                                      cp[done], ok[done])
                keep = ~done
                lam[frp[keep]] *= 10.0
                raised[pend[keep]] = True
                pend = pend[keep]
            # Frames whose best damped step still raised the cost: converged as far as they go.
            stop = ~acc_ok
            ai = ia[acc_ok]
            decrease = cost[ai] - ct[acc_ok]
            stepmax = (zt[acc_ok] - zi[acc_ok]).abs().amax(1) if acc_ok.any() else ct[:0]
            z[ai], X[ai], J[ai], e[ai], cost[ai] = zt[acc_ok], Xt[acc_ok], Jt[acc_ok], et[acc_ok], ct[acc_ok]
            if kind_code != _LS and len(ai):
                # The threshold follows the residuals; the next decrease is measured at it.
                dn = self.delta_of(e[ai], use[ai])
                changed = dn != delta[ai]
                if changed.any():
                    delta[ai] = dn
                    cost[ai] = (w[ai] * self.rho(e[ai], delta[ai], kind[ai])).sum(1) + self.task_cost(z[ai])
            lam[ai] = torch.where(raised[acc_ok], lam[ai], torch.clamp(lam[ai] / 10.0, min=1e-9))
            mc = (w[ai] * self.rho(e[ai], delta[ai], kind[ai])).sum(1)
            noisy = (mc > self.floor) & (mc < 3.0 * level[ai])
            rel = torch.where(noisy, torch.full_like(mc, o.noisy_relative_decrease),
                              torch.full_like(mc, RELATIVE_DECREASE))
            conv = (stepmax < o.accuracy) | (decrease < torch.clamp(rel * cost[ai], min=1e-14))
            active[ia[stop]] = False
            active[ai[conv]] = False
        return z, X, J

    def solve_frames(self, z, fr, iterations, lam0=1e-3, robust_frame=True, start=None, seed=None,
                     max_step=None):
        """JacobianIK's per-frame phases on a batch: least squares (``start``/``seed``: see
        :meth:`lm`); Huber where a marker is then beyond the threshold; the log tail where one
        still is. Returns z, X, J, merit (B,)."""
        z, X, J = self.lm(z, fr, iterations, lam0, _LS, start, seed, max_step)
        if self.robust and robust_frame:
            b = self.beyond(fr, X).nonzero().squeeze(1)
            if len(b):
                zb, Xb, Jb = self.lm(z[b], fr[b], iterations, lam0, _HUBER, max_step=max_step)
                z[b], X[b], J[b] = zb, Xb, Jb
                if self.o.robust_loss == "log":
                    b2 = b[self.beyond(fr[b], Xb).nonzero().squeeze(1)]
                    if len(b2):
                        zb, Xb, Jb = self.lm(z[b2], fr[b2], iterations, lam0, _LOG, max_step=max_step)
                        z[b2], X[b2], J[b2] = zb, Xb, Jb
        return z, X, J, self.marker_cost(fr, X) + self.task_cost(z)

    # ------------------------------------------------------------------ starts

    def place_pelvis(self, z, fr):
        """JacobianIK's ``_initial_guess`` for a batch: pelvis yaw (about Y) and translation from a
        rigid fit of the used markers of each frame to the model's at z (B, n)."""
        torch = self.torch
        free = self.kin0.free_names
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
        lo, hi = np.nan_to_num(self.kin0.lo, neginf=0.0), np.nan_to_num(self.kin0.hi, posinf=0.0)
        zb = z_base.cpu().numpy()
        cand = []
        for i in range(len(fr)):
            for _ in range(R):
                keep = self.pelvis | ~self.observed
                if partial:
                    keep = keep | (self.rng.random(self.n) < 0.5)
                cand.append(np.where(keep, zb[i], lo + (hi - lo) * self.rng.uniform(0.25, 0.75, self.n)))
        zc = torch.as_tensor(np.array(cand), **self.dt)
        frc = fr.repeat_interleave(R)
        zc, Xc, _, mc = self.solve_frames(zc, frc, self.o.first_frame_iterations, robust_frame=False)
        mc = mc.view(len(fr), R)
        k = mc.argmin(1)
        sel = torch.arange(len(fr)) * R + k
        zbst, Xbst, cbst = best
        win = mc.gather(1, k[:, None]).squeeze(1) < cbst
        if not win.any():
            return best
        wi = win.nonzero().squeeze(1)
        # A restart won: the robust phases from it (kept only if still better).
        zr, Xr, _, cr = self.solve_frames(zc[sel[wi]], fr[wi], self.o.first_frame_iterations)
        better = cr < cbst[wi]
        zbst, Xbst, cbst = zbst.clone(), Xbst.clone(), cbst.clone()
        bi = wi[better]
        zbst[bi], Xbst[bi], cbst[bi] = zr[better], Xr[better], cr[better]
        return zbst, Xbst, cbst

    # ------------------------------------------------------------------ stages

    def first_frame(self):
        torch = self.torch
        fr = torch.zeros(1, dtype=torch.long)
        z = torch.as_tensor(np.where(np.isfinite(self.kin0.z_from_state()), self.kin0.z_from_state(), 0.0),
                            **self.dt)[None]
        if int((self.w[0] > 0).sum()) >= 3:
            z = self.place_pelvis(z, fr)
        _, J = self.fk(z)
        self.observed = (J[0].reshape(-1, self.n).norm(dim=0) > 1e-9).cpu().numpy()
        sw = torch.sqrt(self.w[0])
        self.ever_observed = ((sw[:, None, None] * J[0]).reshape(-1, self.n).norm(dim=0) > 1e-12).cpu().numpy()
        z0, X0, _, c0 = self.solve_frames(z, fr, self.o.first_frame_iterations, robust_frame=False)
        best = (z0, X0, c0)
        if float(self.marker_cost(fr, X0)[0]) >= self.floor:
            # Candidates one by one in JacobianIK (its early stop at a ~0.2 mm fit): here all at once.
            best = self.multistart(fr, z, best, partial=False)
        zb = best[0]
        if self.robust:
            zb, Xb, _, cb = self.solve_frames(zb, fr, self.o.first_frame_iterations)
            best = (zb, Xb, cb)
        return best

    def repair(self, z, X, cost, fr, z_left=None, c_left=None):
        """Frames whose cost is above 4x a neighbour's (+ floor) are solved again from that
        neighbour's solution, the better kept; repeated while anything improves."""
        torch = self.torch
        W = len(fr)
        for _ in range(W + 1):
            cl = torch.cat([c_left.view(1), cost[:-1]]) if c_left is not None else torch.cat([cost[:1] * np.inf, cost[:-1]])
            cr = torch.cat([cost[1:], cost[-1:] * np.inf])
            zl = torch.cat([z_left.view(1, -1), z[:-1]]) if z_left is not None else torch.cat([z[:1], z[:-1]])
            zr = torch.cat([z[1:], z[-1:]])
            from_l = cost > 4.0 * cl + self.floor
            from_r = cost > 4.0 * cr + self.floor
            bad = (from_l | from_r).nonzero().squeeze(1)
            if len(bad) == 0:
                break
            use_r = from_r[bad] & (~from_l[bad] | (cr[bad] < cl[bad]))
            zs = torch.where(use_r[:, None], zr[bad], zl[bad])
            z2, X2, _, c2 = self.solve_frames(zs, fr[bad], self.o.first_frame_iterations)
            better = c2 < cost[bad]
            if not better.any():
                break
            bi = bad[better]
            z[bi], X[bi], cost[bi] = z2[better], X2[better], c2[better]
        return z, X, cost

    def jumps(self, z, X, cost, fr, hist):
        """JacobianIK's jump check: a frame whose cost exceeds 9x the median of the previous 10
        frames' (+ floor) gets partial restarts around its solution."""
        torch = self.torch
        allc = np.concatenate([hist.cpu().numpy(), cost.cpu().numpy()])
        h = len(hist)
        flag = [i for i in range(len(fr)) if h + i > 0
                and allc[h + i] > 9.0 * np.median(allc[max(0, h + i - 10):h + i]) + self.floor]
        if not flag:
            return z, X, cost
        self.jump_restarts += len(flag)
        fi = torch.tensor(flag, dtype=torch.long)
        zb, Xb, cb = self.multistart(fr[fi], z[fi], (z[fi], X[fi], cost[fi]), partial=True)
        z[fi], X[fi], cost[fi] = zb, Xb, cb
        return z, X, cost

    def hold_unobserved(self, z, fr, J, zs, a):
        """Coordinates that no used marker moves in a frame take JacobianIK's warm-start value:
        the previous frame's, or its constant-velocity prediction (clipped to the ranges) when
        that fits the frame's markers better. ``zs``: the solutions so far (frames before ``a``,
        the window's first frame)."""
        torch = self.torch
        W = len(fr)
        sw = torch.sqrt(self.w[fr])
        col = (sw[:, :, None, None] * J).reshape(W, -1, self.n).norm(dim=1)  # (W, n)
        held = col <= 1e-12
        if len(self.task_k):
            held[:, self.task_k] = False
        # A coordinate not observed in any frame so far keeps its first-frame value anyway.
        seen = torch.as_tensor(self.ever_observed)[None] | torch.cumsum(~held, 0).bool()
        self.ever_observed = seen[-1].cpu().numpy()
        held &= seen
        rows = held.any(1).nonzero().squeeze(1).tolist()
        if not rows:
            return z
        solved = z
        use_pred = torch.zeros(W, dtype=torch.bool)
        zz = solved.clone()
        for _ in range(6):
            # Sequential pass over the frames with held coordinates (array rows, cheap)...
            zz = solved.clone()

            def get(t, zz=zz):
                return zz[t - a] if t >= a else zs[t]
            for i in rows:
                t = a + i
                start = get(t - 1)
                if t >= 2 and use_pred[i]:
                    start = torch.minimum(torch.maximum(2.0 * get(t - 1) - get(t - 2), self.lo), self.hi)
                zz[i] = torch.where(held[i], start, solved[i])
            # ...then each such frame's choice from its markers, batched: prediction or previous.
            idx = [i for i in rows if a + i >= 2]
            if not idx:
                break
            q1 = torch.stack([get(a + i - 1) for i in idx])
            q2 = torch.stack([get(a + i - 2) for i in idx])
            pred = torch.minimum(torch.maximum(2.0 * q1 - q2, self.lo), self.hi)
            Xc, _ = self.fk(torch.cat([q1, pred]), jac=False)
            it = torch.tensor(idx, dtype=torch.long)
            mc = self.marker_cost(torch.cat([fr[it], fr[it]]), Xc).view(2, -1)
            new = torch.zeros(W, dtype=torch.bool)
            new[it] = mc[1] < mc[0]
            if torch.equal(new, use_pred):
                break
            use_pred = new
        return zz

    def per_frame(self):
        """Frame-by-frame IK of the whole trial in windows; returns zs (T, n), X (T, M, 3), cost (T,)."""
        torch = self.torch
        T, W = self.T, self.o.window
        zs = torch.empty((T, self.n), **self.dt)
        Xs = torch.empty((T, self.M, 3), **self.dt)
        cs = torch.empty(T, **self.dt)
        t0 = _time.perf_counter()
        z0, X0, c0 = self.first_frame()
        self.first_seconds = _time.perf_counter() - t0
        zs[0], Xs[0], cs[0] = z0[0], X0[0], c0[0]
        self.noise_level[:] = float(self.marker_cost(torch.zeros(1, dtype=torch.long), X0)[0])
        bar = _progress(range(1, T, W), self.progress, "IK (batched)")
        for a in bar:
            b = min(T, a + W)
            fr = torch.arange(a, b)
            # Pipelined warm start: chunk c of the window joins at iteration c, starting from the
            # constant-velocity extrapolation of the two frames before it (their iterates then).
            S = self.o.chunk
            start = torch.arange(b - a) // S
            zprev = zs[:a]

            def seed(z, rows, a=a, zprev=zprev, S=S):
                rel = rows - rows % S - 1  # frame before the chunk (window index; -1: before window)

                def at(i):
                    out = torch.empty((len(i), self.n), **self.dt)
                    inside = i >= 0
                    out[inside] = z[i[inside]]
                    out[~inside] = zprev[(a + i[~inside]).clamp(min=0)]
                    return out
                p1, p2 = at(rel), at(rel - 1)
                if a + int(rel.min()) - 1 < 0:
                    p2 = torch.where(((a + rel - 1) < 0)[:, None], p1, p2)
                steps = (rows - rel).to(z.dtype)[:, None] * self.o.extrapolate
                return torch.minimum(torch.maximum(p1 + steps * (p1 - p2), self.lo), self.hi)
            z_init = zs[a - 1].expand(b - a, -1).clone()
            z_init[:S] = seed(z_init, torch.arange(min(S, b - a)))
            # Damping 1e-3 at the start (JacobianIK: 1e-6 from the previous frame): from a few frames
            # away an undamped first step threw forearm pronation to its range limit, where it stayed.
            z, X, J, c = self.solve_frames(z_init, fr, self.o.max_iterations, lam0=1e-3, start=start, seed=seed,
                                           max_step=self.o.max_step)
            z, X, c = self.repair(z, X, c, fr, zs[a - 1], cs[a - 1])
            z, X, c = self.jumps(z, X, c, fr, cs[max(0, a - 10):a])
            # Unobserved coordinates as JacobianIK's warm start leaves them.
            _, J = self.fk(z)
            z = self.hold_unobserved(z, fr, J, zs, a)
            X, _ = self.fk(z, jac=False)
            zs[a:b], Xs[a:b] = z, X
            cs[a:b] = self.marker_cost(fr, X) + self.task_cost(z)
            self.noise_level[b:] = float(cs[max(0, b - 10):b].median())
        return zs, Xs, cs

    def smooth(self, zs):
        """Gauss-Newton on the whole objective with the temporal term, in overlapping windows."""
        from scipy.linalg import solveh_banded

        torch = self.torch
        s = float(self.o.smoothness)
        T, W, overlap = self.T, self.o.window, self.o.smoothing_overlap
        if s <= 0 or T < 3:
            return zs
        zs = zs.clone()
        # Loss kind and threshold per frame, fixed from the per-frame solution (IRLS majoriser).
        X, _ = self.fk(zs, jac=False) if T <= W else (None, None)
        kinds, deltas = torch.empty(T, dtype=torch.long), torch.empty(T, **self.dt)
        for a in range(0, T, W):
            fr = torch.arange(a, min(T, a + W))
            Xw = X[fr] if X is not None else self.fk(zs[fr], jac=False)[0]
            e = (Xw - self.x[fr]).norm(dim=2)
            d = self.delta_of(e, self.w[fr] > 0)
            k = torch_full(torch, len(fr), _LS)
            if self.robust:
                k[((e > d[:, None]) & (self.w[fr] > 0)).any(1)] = _LOG if self.o.robust_loss == "log" else _HUBER
            kinds[fr], deltas[fr] = k, torch.where(k == _LS, torch.full_like(d, float("inf")), d)
        a = 0
        while True:
            b = min(T, a + W)
            self._smooth_window(zs, a, b, s, kinds, deltas, solveh_banded)
            if b == T:
                break
            a = b - overlap
        return zs

    def _smooth_window(self, zs, a, b, s, kinds, deltas, solveh_banded):
        """Gauss-Newton (LM) on frames [a, b) of the trajectory objective, the other frames held."""
        torch = self.torch
        T, n = self.T, self.n
        fr = torch.arange(a, b)
        Wf = b - a
        N = Wf * n
        u = 2 * n  # band: the acceleration couples frames up to 2 apart
        # Acceleration rows a_t = z_t - (z_t-1 + z_t+1) / 2 touching the window.
        acc_t = np.arange(max(1, a - 1), min(T - 2, b) + 1)
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
            ge = np.zeros((T, n))
            for j, cj in coef:
                np.add.at(ge, acc_t + j, s * cj * acc)
            gn = (gn + ge[a:b]).ravel()
            Hn = H.cpu().numpy()
            dgn = np.maximum(np.diagonal(Hn, axis1=1, axis2=2), 1e-12)
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

    def run(self) -> IKResult:
        torch = self.torch
        t0 = _time.perf_counter()
        with torch.no_grad():
            zs, Xs, _ = self.per_frame()
            if self.o.smoothness > 0 and self.T >= 3:
                zs = self.smooth(zs)
                Xs = torch.cat([self.fk(zs[a:a + self.o.window], jac=False)[0]
                                for a in range(0, self.T, self.o.window)])
            q = self.bk.full_coordinates(zs)
        seconds = _time.perf_counter() - t0
        prep = self.prep
        order = [list(self.bk.coordinate_names).index(c) for c in self.kin0.names]
        values = q.cpu().numpy()[:, order]
        pos = Xs.cpu().numpy()
        errors = np.linalg.norm(pos - prep.x, axis=2)
        res = _result(prep, self.markers.time, values, errors, self.o.name, seconds)
        res.meta["jump_restarts"] = self.jump_restarts
        res.meta["first_frame_seconds"] = self.first_seconds
        res.meta["window"] = self.o.window
        res.meta["smoothness"] = self.o.smoothness
        if self.robust:
            from simspine.biomech.ik import robust_threshold

            used = prep.w > 0
            e0 = np.nan_to_num(errors)
            w_fn = huber_weight if self.o.robust_loss == "huber" else log_weight
            res.robust_delta = np.array([robust_threshold(e0[t], used[t], self.o.robust_k, self.o.robust_min_delta)
                                         for t in range(self.T)])
            res.robust_weights = np.where(used, w_fn(e0, res.robust_delta[:, None]), np.nan)
            res.meta["robust"] = {"loss": self.o.robust_loss, "k": self.o.robust_k,
                                  "min_delta_m": self.o.robust_min_delta,
                                  "downweighted_share": res.downweighted_share()}
        return res


def torch_full(torch, n, value):
    return torch.full((n,), value, dtype=torch.long)


def torch_zeros(torch, n, dt):
    return torch.zeros(n, **dt)
