"""Dask clusters for simspine's batch work (``build-dataset``, ``annotate --batch``, ``bench build``).

:func:`dask_client` opens a ``dask.distributed`` client on either a local cluster with one
single-threaded worker process per core (``workers``; default: the machine's core count) or a
running scheduler (``scheduler="tcp://host:8786"``; its workers must see the same file system),
and closes what it opened. :func:`add_cluster_arguments` gives a command the matching
``--workers N | --scheduler ADDRESS`` options; :func:`completed` walks the tasks' futures as they
finish behind a progress bar; :func:`error_text` is the one-line text recorded for a task that
failed and :func:`failure_details` its traceback.
"""

from __future__ import annotations

import contextlib
import os

from simspine.errors import InputError


def open_client(workers: int | None = None, scheduler: str | None = None):
    """``(client, cluster)``: a client of ``scheduler``, or of a new local cluster with ``workers``
    single-threaded worker processes (default: one per core); ``cluster`` is None for a scheduler.
    The caller closes both."""
    from dask.distributed import Client, LocalCluster

    if scheduler:
        return Client(scheduler), None
    n = workers or os.cpu_count() or 1
    cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None)
    return Client(cluster), cluster


@contextlib.contextmanager
def dask_client(workers: int | None = None, scheduler: str | None = None):
    """Context manager around :func:`open_client`: yields the client, closes client and cluster."""
    client, cluster = open_client(workers, scheduler)
    try:
        yield client
    finally:
        client.close()
        if cluster is not None:
            cluster.close()


def worker_count(client) -> int:
    """Workers the scheduler knows now."""
    return len(client.scheduler_info().get("workers", {}))


def completed(futures: dict, progress: bool = True, desc: str = "tasks", unit: str = "task", label=None):
    """Yield ``(future, item)`` for ``futures`` (future → item) in the order they finish, with a
    progress bar over them (``label(item)``, when given, is shown beside it once the caller is done
    with the item)."""
    from dask.distributed import as_completed
    from tqdm import tqdm

    bar = tqdm(total=len(futures), desc=desc, unit=unit, disable=not progress)
    try:
        for fut in as_completed(list(futures)):
            bar.update(1)
            yield fut, futures[fut]
            if label is not None:
                bar.set_postfix_str(label(futures[fut]))
    finally:
        bar.close()


def failure_details(future) -> str:
    """The traceback of a failed ``future``'s exception, as text."""
    import traceback

    exc = future.exception()
    return "".join(traceback.format_exception(type(exc), exc, future.traceback()))


def error_text(exc: BaseException) -> str:
    """A failed task's error in one line: an :class:`InputError`'s own text, else ``Type: message``."""
    if isinstance(exc, InputError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def add_cluster_arguments(p, what: str = "tasks") -> None:
    """``--workers N | --scheduler ADDRESS`` (mutually exclusive) on parser ``p``."""
    from simspine.commands._args import positive_int

    g = p.add_mutually_exclusive_group()
    g.add_argument("--workers", type=positive_int, default=None,
                   help=f"local Dask workers running the {what}, one single-threaded process each "
                        "(default: one per core)")
    g.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="address of a running Dask scheduler (e.g. tcp://node:8786; workers must share the file system)")
