"""``annotate`` over a folder of sessions on Dask (``simspine annotate --batch DIR``).

Like Pose2Sim's batch mode: every sub-folder of ``DIR`` that looks like a session -- it has a
``pose``/``pose-sync``/``pose-associated`` folder or a ``*calib*`` folder -- is one task, run by
:func:`simspine.annotate.annotate` into ``OUT/<session name>/``. A session without its own
calibration folder uses ``DIR``'s, and one without its own ``Config.toml`` takes its frame rate from
``DIR/Config.toml`` (Pose2Sim keeps both at the session level above its trials); ``calibration=``
and ``fps=`` override them. Other sub-folders are listed as ignored.

* Cluster: :func:`simspine.scheduling.dask_client` -- the dataset build's: a local cluster with one
  single-threaded worker per core (``workers``) or a running scheduler (``scheduler``).
* Resumable: a finished session gets ``OUT/<name>/.batch.done.json`` holding the key of its input
  files (names, sizes, times), its options and the trusted-marker file; a re-run skips every
  session whose key matches without touching its folder (no Dask cluster is started when all are
  done). A session that does run goes through ``annotate`` with ``resume=True``, so its own
  up-to-date stages (``stages.json``) are skipped too.
* Failures: a session whose ``annotate`` raises is recorded with its error (traceback too for
  anything but an :class:`~simspine.errors.InputError`) and the others go on.
  ``OUT/<name>/annotate.log`` holds the stage lines of each run, failed ones included.
* Summary (:class:`BatchSummary`, also ``OUT/batch_summary.json``): per session frames, status,
  spine observed share (mean over the lumbar, thoracic and cervical regions of the share of
  frames in which the region was observed, :mod:`simspine.observation`; per region in the JSON)
  and seconds.
"""

from __future__ import annotations

import hashlib
import json
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path

from simspine.errors import InputError, SimspineError

BATCH_VERSION = 1
DONE_FILE = ".batch.done.json"
LOG_FILE = "annotate.log"
SUMMARY_FILE = "batch_summary.json"
POSE_DIRS = ("pose", "pose-sync", "pose-associated")


@dataclass
class SessionOutcome:
    """One session of a batch. ``status``: ``done`` (annotated in this run), ``up to date``
    (finished before, skipped) or ``failed`` (``error`` says why)."""

    name: str
    session: str
    out: str
    status: str = "pending"
    frames: int | None = None
    spine_observed: float | None = None
    regions_observed: dict = field(default_factory=dict)
    seconds: float = 0.0
    error: str = ""
    details: str = ""


@dataclass
class BatchSummary:
    """What a batch did: one :class:`SessionOutcome` per session, in name order."""

    root: str
    out: str
    sessions: list[SessionOutcome] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)
    workers: int = 0
    scheduler: str = ""
    seconds: float = 0.0

    @property
    def failed(self) -> list[SessionOutcome]:
        return [s for s in self.sessions if s.status == "failed"]

    def as_dict(self) -> dict:
        return asdict(self)

    def text(self) -> str:
        from simspine.bench.table import format_table

        rows = [[s.name, "-" if s.frames is None else s.frames, s.status.upper() if s.status == "failed" else s.status,
                 "-" if s.spine_observed is None else f"{100 * s.spine_observed:.1f}%", f"{s.seconds:.1f}"]
                for s in self.sessions]
        n = {k: sum(s.status == k for s in self.sessions) for k in ("done", "up to date", "failed")}
        lines = [f"simspine annotate --batch {self.root} -> {self.out}",
                 format_table(["session", "frames", "status", "spine observed", "time s"], rows), "",
                 f"{len(self.sessions)} sessions: {n['done']} annotated, {n['up to date']} up to date (skipped), "
                 f"{n['failed']} failed; {self.seconds:.1f} s"
                 + (f" on {self.workers} Dask workers ({self.scheduler})" if self.workers else "")]
        for s in self.failed:
            lines.append(f"  FAILED {s.name}: {s.error}")
        if self.ignored:
            lines.append(f"  not sessions (no pose/ or calibration folder), ignored: {', '.join(self.ignored)}")
        lines.append("spine observed: mean over the lumbar, thoracic and cervical regions of the share of frames in "
                     f"which the region was observed (triangulated); per region in {SUMMARY_FILE}")
        return "\n".join(lines)


# ---- discovery and keys ----------------------------------------------------------------------------
def _is_calib_dir(d: Path) -> bool:
    return d.is_dir() and "calib" in d.name.lower()


def is_session(folder: Path) -> bool:
    """A folder is a session when it has a pose folder or a calibration folder."""
    return folder.is_dir() and (any((folder / n).is_dir() for n in POSE_DIRS)
                                or any(_is_calib_dir(d) for d in folder.iterdir()))


def find_sessions(root, exclude=()) -> tuple[list[Path], list[str]]:
    """(sessions, names of the other sub-folders) of ``root``, in name order; ``exclude``: folders
    left out silently (the output folder when it lies inside ``root``)."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(root, "batch folder not found")
    skip = {Path(e).resolve() for e in exclude}
    sessions, ignored = [], []
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if d.resolve() in skip or (_is_calib_dir(d) and not is_session(d)):  # DIR's own calibration
            continue
        (sessions if is_session(d) else ignored).append(d if is_session(d) else d.name)
    return sessions, ignored


def session_calibration(session: Path, root: Path, calibration=None):
    """The calibration to pass to ``annotate``: ``calibration`` when given; None when the session
    has its own calibration folder (annotate finds it); else ``root``'s, when it has one."""
    if calibration is not None:
        return str(calibration)
    if any(_is_calib_dir(d) for d in session.iterdir()):
        return None
    from simspine.io.session import find_calibration

    try:
        return str(find_calibration(root))
    except InputError:
        return None  # annotate says there is no calibration


def root_frame_rate(session: Path, root: Path, fps=None):
    """The frame rate to pass to ``annotate``: ``fps`` when given; else, for a session without its
    own ``Config.toml``, ``[project] frame_rate`` of ``root/Config.toml`` when it is a number
    (Pose2Sim's session-level config); else None (annotate finds it)."""
    if fps is not None or (session / "Config.toml").is_file():
        return fps
    from simspine.io.session import _config

    try:
        fr = _config(root).get("project", {}).get("frame_rate")
    except InputError:
        return None
    return float(fr) if isinstance(fr, (int, float)) and not isinstance(fr, bool) and fr > 0 else None


def session_key(session: Path, calibration, options: dict) -> str:
    """Key of a session's inputs (stat only) and options; a session whose recorded key matches is done."""
    from simspine.annotate import _fingerprint
    from simspine.io.session import session_inputs

    try:
        inputs = _fingerprint(session_inputs(session, calibration))
    except InputError as e:  # no calibration, no keypoint folders: never done
        inputs = ["unreadable", str(e)]
    trusted = options.get("trusted")
    extra = _fingerprint([trusted]) if trusted else []
    return hashlib.sha256(json.dumps([BATCH_VERSION, inputs, extra, options], sort_keys=True, default=repr)
                          .encode()).hexdigest()[:20]


def read_done(out: Path, key: str) -> dict | None:
    try:
        d = json.loads((out / DONE_FILE).read_text())
    except (OSError, ValueError):
        return None
    return d if d.get("key") == key and (out / "summary.json").is_file() else None


def _outcome_numbers(summary: dict) -> dict:
    ob = summary.get("observation") or {}
    regions = {r: float(v["observed"]) for r, v in (ob.get("regions") or {}).items()}
    return {"frames": ob.get("frames", (summary.get("stages", {}).get("triangulate") or {}).get("frames")),
            "regions_observed": regions,
            "spine_observed": sum(regions.values()) / len(regions) if regions else None}


# ---- the task (runs on a worker) ----------------------------------------------------------------
def annotate_task(session: str, out: str, calibration, options: dict, key: str) -> dict:
    """``annotate`` one session into ``out``; writes ``annotate.log`` and, when it succeeds,
    ``.batch.done.json``. Returns ``{"status", "seconds", "error", "details", frames...}``."""
    from simspine.annotate import annotate
    from simspine.fileio import write_text_atomic

    out_p = Path(out)
    out_p.mkdir(parents=True, exist_ok=True)
    lines: list[str] = []
    t0 = time.perf_counter()
    try:
        res = annotate(session, out_p, calibration=calibration, progress=False, log=lines.append, resume=True,
                       **options)
    except Exception as e:  # noqa: BLE001 -- recorded, the batch goes on
        from simspine.scheduling import error_text

        details = "" if isinstance(e, SimspineError) else "".join(traceback.format_exception(e))
        lines += [f"FAILED: {error_text(e)}", details]
        write_text_atomic(out_p / LOG_FILE, "\n".join(lines) + "\n")
        (out_p / DONE_FILE).unlink(missing_ok=True)
        return {"status": "failed", "seconds": time.perf_counter() - t0, "error": error_text(e), "details": details}
    dt = time.perf_counter() - t0
    write_text_atomic(out_p / LOG_FILE, "\n".join(lines) + "\n")
    nums = _outcome_numbers(res.summary)
    write_text_atomic(out_p / DONE_FILE, json.dumps({"key": key, "seconds": dt, **nums}, indent=1) + "\n")
    return {"status": "done", "seconds": dt, "error": "", "details": "", **nums}


# ---- orchestration ------------------------------------------------------------------------------
def annotate_batch(root, out, *, workers: int | None = None, scheduler: str | None = None, calibration=None,
                   progress: bool = True, log=print, **options) -> BatchSummary:
    """Run ``annotate`` on every session of ``root`` into ``out/<session name>/`` (see the module
    docstring). ``options``: keyword options of :func:`simspine.annotate.annotate` (not
    ``calibration``, ``resume``, ``progress``, ``log``). Writes ``out/batch_summary.json``.
    Raises :class:`InputError` when ``root`` holds no session."""
    from simspine.fileio import write_text_atomic

    t0 = time.perf_counter()
    root, out = Path(root).resolve(), Path(out).resolve()  # workers may run elsewhere
    sessions, ignored = find_sessions(root, exclude=[out])
    if not sessions:
        raise InputError(root, "no sessions found (sub-folders with pose/<camera>_json/ or a calibration folder)"
                         + (f"; ignored: {', '.join(ignored)}" if ignored else ""))
    out.mkdir(parents=True, exist_ok=True)
    summary = BatchSummary(str(root), str(out), ignored=ignored, scheduler=scheduler or "local cluster")
    todo = []
    for s in sessions:
        o = SessionOutcome(s.name, str(s), str(out / s.name))
        summary.sessions.append(o)
        calib = session_calibration(s, root, calibration)
        opts = {**options, "fps": root_frame_rate(s, root, options.get("fps"))}
        key = session_key(s, calib, opts)
        done = read_done(out / s.name, key)
        if done is not None:
            o.status = "up to date"
            o.frames, o.spine_observed = done.get("frames"), done.get("spine_observed")
            o.regions_observed = done.get("regions_observed") or {}
        else:
            todo.append((o, calib, opts, key))
    log(f"simspine annotate --batch: {len(sessions)} sessions in {root} -> {out}; "
        f"{len(sessions) - len(todo)} up to date (skipped), {len(todo)} to run"
        + (f"; ignored (not sessions): {', '.join(ignored)}" if ignored else ""))
    if todo:
        from simspine.scheduling import dask_client, worker_count

        with dask_client(workers, scheduler) as client:
            summary.workers = worker_count(client)
            log(f"  Dask: {summary.workers} workers ({summary.scheduler})")
            futs = {client.submit(annotate_task, o.session, o.out, calib, opts, key,
                                  key=f"annotate-{o.name}-{key}", pure=False): o for o, calib, opts, key in todo}
            _collect(futs, progress)
    summary.seconds = time.perf_counter() - t0
    write_text_atomic(out / SUMMARY_FILE, json.dumps(summary.as_dict(), indent=1, default=str) + "\n")
    return summary


def _collect(futs: dict, progress: bool) -> None:
    """Wait for the session futures (a progress bar over sessions), filling in each outcome."""
    from simspine.scheduling import completed, error_text, failure_details

    for fut, o in completed(futs, progress, "sessions", "session", label=lambda o: f"{o.name}: {o.status}"):
        if fut.status == "finished":
            r = fut.result()
            for k in ("status", "seconds", "error", "details", "frames", "spine_observed", "regions_observed"):
                if k in r:
                    setattr(o, k, r[k])
        else:  # the worker itself died, or the task could not run
            o.status, o.error = "failed", error_text(fut.exception())
            o.details = failure_details(fut)
