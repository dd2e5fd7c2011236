"""Build the SimSpine dataset from Human3.6M on Dask: subjects scaled, sequences as tasks, one store.

:func:`build_dataset` lists the sequences (:func:`simspine.dataset.h36m.find_sequences`), scales
each subject's model once over its sequences, processes every sequence as a Dask task
(:func:`simspine.dataset.sequence.process_sequence`) and assembles the HDF5 store
(:mod:`simspine.dataset.store`).

* Cluster: a ``dask.distributed`` ``LocalCluster`` with one single-threaded worker process per
  core by default (``workers``), or an existing scheduler (``scheduler="tcp://host:8786"``; the
  workers must see the same file system: they read Human3.6M and write the work folder).
* Resumable: every task writes its result into the work folder (``<out>.work/`` by default)
  atomically, with a ``.done.json`` holding the key of its inputs and options; a re-run skips
  sequences whose key matches and recomputes the rest. The subject's model is scaled again only
  when its list of sequences or the options change. The store is written at the end, atomically.
* 2D spine detections (``spine_2d``): a folder of OpenPose JSON per sequence and camera or one
  ``data_2d_*.npz``-style file (:func:`simspine.dataset.sequence.spine_2d_session`).
* IK: ``options.ik_backend`` (:func:`simspine.biomech.ik.make_backend`), recorded in the store's
  provenance (``ik_backend`` and ``options``) and in each sequence's ``meta_json``.
* Failures: a sequence that fails (truncated CDF, 2D of another length than 3D, ...) or a subject
  whose folder is missing is recorded with its error; the others go on. The summary
  (:class:`BuildSummary`, also ``<work>/summary.json``) lists built, skipped and failed sequences.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from simspine.dataset.h36m import SequenceSpec, find_sequences
from simspine.dataset.sequence import SequenceOptions
from simspine.errors import InputError
from simspine.scheduling import dask_client, worker_count
from simspine.scheduling import error_text as _error_text

WORK_VERSION = 1


@dataclass
class BuildSummary:
    """What a build did. ``failed``: uid (``S1/Directions_1``, or a subject) → error text."""

    out: str
    built: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    frames: int = 0
    seconds: float = 0.0
    workers: int = 0
    scheduler: str = ""

    def as_dict(self) -> dict:
        return asdict(self)

    def text(self) -> str:
        lines = [f"dataset: {self.out}",
                 f"sequences: {len(self.built)} built, {len(self.skipped)} already done (skipped), "
                 f"{len(self.failed)} failed; {self.frames} frames in the store; {self.seconds:.1f} s"
                 + (f" on {self.workers} workers" if self.workers else "")]
        for uid, err in sorted(self.failed.items()):
            lines.append(f"  FAILED {uid}: {err}")
        for w in self.warnings:
            lines.append(f"  warning: {w}")
        return "\n".join(lines)


def _hash(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _fingerprint(path: str) -> list:
    try:
        st = os.stat(path)
        return [path, st.st_size, st.st_mtime_ns]
    except OSError:
        return [path, None]


def _spine_fingerprint(root, spec: SequenceSpec) -> list:
    """Size and time of the 2D detection folders of ``spec``, or of the npz file (so new detections
    rebuild it)."""
    if not root:
        return []
    from simspine.calibration import h36m_cameras
    from simspine.dataset.sequence import spine_2d_folders
    from simspine.dataset.spine2d_npz import is_npz

    if is_npz(root):
        return _fingerprint(str(root))

    try:
        names = [c.name for c in h36m_cameras(spec.subject)]
    except InputError:
        return []
    folders = spine_2d_folders(root, spec, names) or {}
    out = []
    for cam, d in sorted(folders.items()):
        files = sorted(d.glob("*.json"))
        out.append([cam, len(files), max((f.stat().st_mtime_ns for f in files), default=0)])
    return out


def scale_key(subject: str, specs: list[SequenceSpec], options: SequenceOptions) -> str:
    return _hash(WORK_VERSION, subject, sorted(s.uid for s in specs), options.mass, options.scaling_frames,
                 options.scaling_refine)


def sequence_key(spec: SequenceSpec, model_key: str, options: SequenceOptions) -> str:
    return _hash(WORK_VERSION, asdict(spec), _fingerprint(spec.path), model_key, options.as_dict(),
                 _spine_fingerprint(options.spine_2d, spec))


def _done(path: Path, key: str) -> bool:
    try:
        return json.loads(path.read_text()).get("key") == key
    except (OSError, ValueError):
        return False


# ---- tasks (run on the workers) -----------------------------------------------------------
def scale_task(subject: str, specs: list[SequenceSpec], work: str, options: SequenceOptions, key: str) -> dict:
    """Scale ``subject``'s model into ``work/<subject>/model`` unless already done with ``key``."""
    from simspine.dataset.sequence import scale_subject_model
    from simspine.fileio import write_text_atomic

    d = Path(work) / subject / "model"
    done = d / "model.done.json"
    if _done(done, key) and (d / "model_scaled.osim").is_file():
        return {"model": str(d / "model_scaled.osim"), "key": key, "reused": True}
    scale_subject_model(subject, specs, d, options)
    write_text_atomic(done, json.dumps({"key": key}))
    return {"model": str(d / "model_scaled.osim"), "key": key, "reused": False}


def sequence_task(spec: SequenceSpec, model: dict, work: str, options: SequenceOptions, key: str) -> dict:
    """Process one sequence and write ``work/<subject>/<sequence>.npz`` (+ ``.done.json``)."""
    from simspine.dataset.sequence import process_sequence, save_result
    from simspine.fileio import write_text_atomic

    d = Path(work) / spec.subject
    res = process_sequence(spec, model["model"], options)
    save_result(d / f"{spec.name}.npz", res)
    write_text_atomic(d / f"{spec.name}.done.json", json.dumps({"key": key, "frames": res["meta"]["n_frames"],
                                                               "seconds": res["meta"]["seconds"]}))
    return {"uid": spec.uid, "frames": res["meta"]["n_frames"], "warnings": res["meta"]["warnings"]}


# ---- orchestration --------------------------------------------------------------------------
def versions() -> dict:
    """Versions of simspine and the libraries that shape the store's numbers."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for p in ("simspine", "numpy", "scipy", "opensim", "pose2sim", "dask", "distributed", "h5py", "cdflib"):
        try:
            out[p] = version(p)
        except PackageNotFoundError:
            out[p] = None
    return out


def build_dataset(h36m, out, *, spine_2d=None, subjects=None, actions=None, workers: int | None = None,
                  scheduler: str | None = None, work_dir=None, options: SequenceOptions | None = None,
                  progress: bool = True, log=print) -> BuildSummary:
    """Build the store ``out`` (``.h5``) from the Human3.6M tree (or ``data_3d_h36m.npz``) ``h36m``;
    see the module docstring. Returns the :class:`BuildSummary` (also written to the work folder).
    Raises :class:`InputError` when nothing at all could be built."""
    from simspine.calibration import h36m_cameras
    from simspine.dataset.sequence import load_result
    from simspine.dataset.store import write_store
    from simspine.fileio import write_text_atomic

    t0 = time.perf_counter()
    o = dataclasses.replace(options) if options is not None else SequenceOptions()  # the caller's stays as given
    if spine_2d is not None:
        from simspine.dataset.spine2d_npz import is_npz, read_detections

        o.spine_2d = str(spine_2d)
        if is_npz(spine_2d):
            read_detections(spine_2d)  # an unreadable file stops the build here, not in every task
        elif not Path(spine_2d).is_dir():
            raise InputError(spine_2d, "2D detections folder (or .npz file) not found")
    from simspine.biomech.ik import BACKENDS

    if o.ik_backend not in BACKENDS:
        raise InputError(None, f"unknown IK backend {o.ik_backend!r} (known: {', '.join(BACKENDS)})")
    out = Path(out)
    work = Path(work_dir) if work_dir else out.with_name(out.name + ".work")
    work.mkdir(parents=True, exist_ok=True)
    listing = find_sequences(h36m, subjects, actions)
    summary = BuildSummary(str(out), failed=dict(listing.problems), scheduler=scheduler or "local")
    by_subject: dict[str, list[SequenceSpec]] = {}
    for s in listing.sequences:
        by_subject.setdefault(s.subject, []).append(s)
    for s in list(by_subject):
        try:
            h36m_cameras(s)
        except InputError as e:
            summary.failed[s] = f"{e.problem} (no cameras for this subject)"
            del by_subject[s]
    log(f"simspine build-dataset: {sum(map(len, by_subject.values()))} sequences of {len(by_subject)} subjects "
        f"-> {out}" + (f" ({len(listing.problems)} problems while listing)" if listing.problems else ""))

    # what is already done
    skeys = {s: scale_key(s, specs, o) for s, specs in by_subject.items()}
    todo: list[tuple[SequenceSpec, str]] = []
    done_specs: list[SequenceSpec] = []
    for s, specs in by_subject.items():
        for q in specs:
            k = sequence_key(q, skeys[s], o)
            if _done(work / s / f"{q.name}.done.json", k) and (work / s / f"{q.name}.npz").is_file():
                summary.skipped.append(q.uid)
                done_specs.append(q)
            else:
                todo.append((q, k))
    if summary.skipped:
        log(f"  {len(summary.skipped)} sequences already done in {work}: skipped")

    if todo:
        with dask_client(workers, scheduler) as client:
            summary.workers = worker_count(client)
            log(f"  Dask: {summary.workers} workers ({scheduler or 'local cluster'}); {len(todo)} sequences to build")
            need = sorted({q.subject for q, _ in todo})
            scaled = {s: client.submit(scale_task, s, by_subject[s], str(work), o, skeys[s],
                                       key=f"scale-{s}-{skeys[s]}", pure=False) for s in need}
            futs = {client.submit(sequence_task, q, scaled[q.subject], str(work), o, k,
                                  key=f"seq-{q.subject}-{q.name}-{k}", pure=False): q for q, k in todo}
            _collect(futs, scaled, summary, done_specs, progress)

    # assemble the store from every finished sequence
    done_specs.sort(key=lambda q: (int(q.subject[1:]) if q.subject[1:].isdigit() else 0, q.subject, q.name))
    if not done_specs:
        write_text_atomic(work / "summary.json", json.dumps(summary.as_dict(), indent=1))
        raise InputError(h36m, "no sequence could be built:\n" + "\n".join(f"  {k}: {v}" for k, v in
                                                                          sorted(summary.failed.items())))
    results = [load_result(work / q.subject / f"{q.name}.npz") for q in done_specs]
    for r in results:
        summary.warnings.extend(r["meta"].get("warnings", []))
    summary.frames = int(sum(r["meta"]["n_frames"] for r in results))
    subj_info = {}
    for s in sorted({q.subject for q in done_specs}, key=lambda n: int(n[1:]) if n[1:].isdigit() else 0):
        mdir = work / s / "model"
        subj_info[s] = {"cameras": h36m_cameras(s),
                        "model_xml": (mdir / "model_scaled.osim").read_text() if (mdir / "model_scaled.osim").is_file()
                        else None,
                        "scaling": json.loads((mdir / "scaling.json").read_text())
                        if (mdir / "scaling.json").is_file() else None}
    summary.seconds = time.perf_counter() - t0
    provenance = {"versions": versions(), "options": o.as_dict(), "ik_backend": o.ik_backend, "h36m": str(h36m),
                  "subjects": subjects, "actions": actions, "built_with": "simspine build-dataset",
                  "summary": {"sequences": len(done_specs), "failed": summary.failed, "frames": summary.frames}}
    write_store(out, subj_info, results, provenance)
    write_text_atomic(work / "summary.json", json.dumps(summary.as_dict(), indent=1))
    return summary


def _collect(futs: dict, scaled: dict, summary: BuildSummary, done_specs: list, progress: bool) -> None:
    """Wait for the sequence futures (a progress bar over sequences), recording each outcome."""
    from simspine.scheduling import completed, failure_details

    for fut, q in completed(futs, progress, "sequences", "seq"):
        if fut.status == "finished":
            summary.built.append(q.uid)
            done_specs.append(q)
            continue
        exc = fut.exception()
        sfut = scaled[q.subject]
        if sfut.status == "error":
            summary.failed[q.uid] = f"scaling subject {q.subject} failed: {_error_text(sfut.exception())}"
        else:
            summary.failed[q.uid] = _error_text(exc)
            if not isinstance(exc, InputError):
                summary.failed[q.uid] += f"\n{failure_details(fut)}"
