"""Batches beyond one process: the same tasks in this process, on a local Dask cluster, or on a Dask scheduler.

A batch command splits its work into *tasks*, each a pure function of its arguments (seed, index, input paths),
so that the outputs do not depend on where or in which order the tasks run. :func:`run_tasks` runs them:

* ``Workers()`` (one worker, no scheduler): in this process, one after the other; Dask is not imported.
* ``Workers(n=4)``: on a local Dask cluster of 4 worker processes (one thread each, numerical libraries held to
  one thread), listening on loopback only (no dashboard; Dask's health page on a random loopback port); the cluster
  is closed when the batch ends.
* ``Workers(scheduler="tcp://host:8786")``: on an existing Dask scheduler and its workers (``dask scheduler``,
  ``dask worker ADDRESS --nthreads 1`` on each machine). Every machine must see the input and output paths under the
  same names (a shared file system) and have the same MedSynth installed; see README "Large batches".

Outputs of a batch are written item by item (:class:`ItemFolder`): each item's files appear together when the item
is done, a failed item leaves none of its files, and an interrupted batch leaves only whole items (plus the
command's index of them, written by the command itself).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Sequence, Set, Tuple

from .errors import InputError, Stopped
from .params import Param, validate
from .progress import CancelToken, ProgressCallback, Reporter

WORKER_PARAMS = (
    Param("workers", int, 1, "Workers", 1, 256, 1,
          help="worker processes of a local Dask cluster (1: run in this process)"),
    Param("scheduler", str, "", "Scheduler",
          help="address of a running Dask scheduler (tcp://HOST:PORT) whose workers run the batch instead; "
          "input and output paths must be the same on every machine"),
)
"""The options of every batch command (``--workers N``, ``--scheduler ADDRESS``)."""

THREAD_ENV = {name: "1" for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MEDSYNTH_THREADS")}
"""Environment of local worker processes: one thread each, so N workers use N cores."""

WORKER_CONFIG = {
    "distributed.worker.profile.enabled": False,
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": 256 * 2**20,
    "distributed.nanny.pre-spawn-environ.MALLOC_MMAP_THRESHOLD_": 64 * 2**20,
}
"""Dask settings of local workers. The sampling profiler (the task's stack every 10 ms) off. glibc's malloc left to
keep freed memory (Dask sets ``MALLOC_TRIM_THRESHOLD_=65536``, which hands every freed image back to the system:
each image-sized array then costs fresh page faults; nodule-batch took about 35 % more CPU per image in a worker
than in a plain process). For ``dask worker`` processes started by hand, the same through the environment:
``DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=False MALLOC_TRIM_THRESHOLD_=268435456 MALLOC_MMAP_THRESHOLD_=67108864``
(README "Large batches")."""


@dataclass(frozen=True)
class Workers:
    """Where the tasks of a batch run (see the module doc)."""

    n: int = 1
    scheduler: str = ""

    def __post_init__(self) -> None:
        v = validate(WORKER_PARAMS, {"workers": self.n, "scheduler": self.scheduler or ""})
        object.__setattr__(self, "n", v["workers"])
        object.__setattr__(self, "scheduler", v["scheduler"].strip())

    @classmethod
    def from_values(cls, values: Dict[str, Any]) -> "Workers":
        """From validated parameter values (``workers``, ``scheduler``)."""
        return cls(int(values.get("workers", 1)), str(values.get("scheduler") or ""))

    @property
    def in_process(self) -> bool:
        return self.n == 1 and not self.scheduler

    def describe(self) -> str:
        if self.scheduler:
            return f"Dask scheduler {self.scheduler}"
        return "this process" if self.n == 1 else f"a local Dask cluster of {self.n} worker processes"


# --------------------------------------------------------------------------- running tasks
def _runtime_state() -> Dict[str, Any]:
    from . import runtime

    return {"device": runtime.get_device(), "model_dirs": [str(p) for p in runtime.model_dirs()[1:]]}


def _apply_runtime_state(state: Dict[str, Any]) -> None:
    from . import runtime

    if runtime.get_device() != state["device"]:
        runtime.set_device(state["device"])
    if [str(p) for p in runtime.model_dirs()[1:]] != state["model_dirs"]:
        runtime.set_user_model_dirs(state["model_dirs"])


_STOP_EVENT: Optional[str] = None  # in a worker on a remote scheduler: the Dask Event set when the batch is stopped


def _call(fn: Callable[[Any], Any], task: Any, state: Dict[str, Any], stop_event: Optional[str] = None) -> Any:
    """What a Dask worker runs: the task under the caller's device and model folders."""
    global _STOP_EVENT
    _apply_runtime_state(state)
    _STOP_EVENT = stop_event
    try:
        return fn(task)
    finally:
        _STOP_EVENT = None


def stop_requested() -> bool:
    """In a task on a remote scheduler's worker: whether the command that submitted it was stopped (Ctrl-C, a
    cancel, an error). Its workers keep running tasks that already started; they check this before each item's
    files appear, so a stopped batch gets no new items."""
    if not _STOP_EVENT:
        return False
    try:
        from distributed import Event

        return bool(Event(_STOP_EVENT).is_set())
    except Exception:  # the scheduler has gone: the batch is over
        return True


@contextlib.contextmanager
def _starting_workers() -> Iterator[None]:
    """While local worker processes are started:

    * SIGINT is ignored: the workers inherit that, so a Ctrl-C reaches only this process, which then closes the
      cluster (the workers would otherwise each print an interrupted traceback);
    * the caller's main script is hidden: a spawned worker would run it again (a script calling MedSynth without an
      ``if __name__ == "__main__":`` guard would start a cluster in every worker). The tasks are MedSynth functions;
      a function of the script itself still reaches the workers, by value (cloudpickle)."""
    main = sys.modules.get("__main__")
    saved = {k: main.__dict__[k] for k in ("__spec__", "__file__") if main is not None and k in main.__dict__}
    if main is not None and getattr(main, "__file__", None) and getattr(main, "__spec__", None) is None:
        del main.__file__  # only a script run by path; ``python -m`` and console entry points are imported safely
    old = None
    if threading.current_thread() is threading.main_thread():
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        if old is not None:
            signal.signal(signal.SIGINT, old)
        if main is not None:
            main.__dict__.update(saved)


@contextlib.contextmanager
def deferred_interrupt() -> Iterator[None]:
    """A Ctrl-C during the block is raised (as KeyboardInterrupt) when the block ends, not in its middle: for the
    bookkeeping of finished items (which files are kept, the batch's index), which must not stop half-way."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    hit: List[int] = []
    old = signal.signal(signal.SIGINT, lambda signum, frame: hit.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)
    if hit:
        raise KeyboardInterrupt


def _dask_client(workers: Workers):
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise InputError("--workers above 1 and --scheduler need Dask: pip install 'dask[distributed]'") from None
    for name in ("distributed", "distributed.worker", "distributed.scheduler", "distributed.nanny",
                 "distributed.core", "distributed.comm", "distributed.batched", "tornado"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if workers.scheduler:
        try:
            return Client(workers.scheduler, timeout="20s"), None
        except (OSError, TimeoutError) as exc:
            raise InputError(f"cannot reach the Dask scheduler at {workers.scheduler}: {exc}") from None
    import dask

    with _starting_workers(), dask.config.set(WORKER_CONFIG):
        cluster = LocalCluster(n_workers=workers.n, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address="127.0.0.1:0", silence_logs=logging.ERROR, env=dict(THREAD_ENV),
                               scheduler_kwargs={"dashboard": False})  # only Dask's health/metrics pages, loopback
    try:
        client = Client(cluster)
        cluster.medsynth_pids = sorted(client.run(os.getpid).values())  # to be sure they are gone at the end
    except BaseException:
        cluster.close()
        raise
    return client, cluster


def _stop_local_workers(cluster, graceful: bool) -> None:
    """Close a local cluster; its worker processes are killed if they are still there (a worker busy in a long C
    call may not answer the close, and an interrupted command ends without waiting for its children)."""
    pids = getattr(cluster, "medsynth_pids", [])

    def kill() -> None:
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(pid, getattr(signal, "SIGKILL", signal.SIGTERM))

    if not graceful:
        kill()  # stopped: what the workers were writing is discarded by the command anyway
    with contextlib.suppress(Exception):
        cluster.close(timeout=10)
    kill()


def run_tasks(
    fn: Callable[[Any], Any],
    tasks: Sequence[Any],
    workers: Workers = Workers(),
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
    sizes: Optional[Sequence[int]] = None,
    what: str = "items",
    on_result: Optional[Callable[[int, Any], None]] = None,
) -> List[Any]:
    """``[fn(t) for t in tasks]``, run where ``workers`` says; results in task order.

    ``fn`` must be a module-level function (or a :func:`functools.partial` of one) whose arguments pickle; a task
    that raises stops the batch (the exception reaches the caller). ``sizes``: items per task, for the progress
    line ("12/200 items"). ``on_result(task index, result)`` is called in this process as each task finishes
    (in finishing order). A cancel (``cancel``) or Ctrl-C stops the batch: running local workers are stopped, tasks
    not started are dropped."""
    tasks = list(tasks)
    sizes = list(sizes) if sizes is not None else [1] * len(tasks)
    total = max(1, sum(sizes))
    rep = Reporter(progress, cancel)
    results: List[Any] = [None] * len(tasks)
    done = 0
    rep.step(0.0, f"0/{sum(sizes)} {what} ({workers.describe()})")
    if workers.in_process:
        for i, task in enumerate(tasks):
            rep.step(done / total, f"{done}/{sum(sizes)} {what}")
            results[i] = fn(task)
            with deferred_interrupt():
                done += sizes[i]
                if on_result:
                    on_result(i, results[i])
        rep.step(1.0, f"{done}/{sum(sizes)} {what}")
        return results

    client, cluster = _dask_client(workers)
    from distributed import wait

    state = _runtime_state()
    tag = uuid.uuid4().hex[:12]
    stop = None
    futures: List[Any] = []
    finished_well = False
    try:
        if workers.scheduler:  # remote workers outlive this process: they are told to stop through an Event
            from distributed import Event

            stop = Event(f"medsynth-stop-{tag}", client=client)
        futures = [client.submit(_call, fn, t, state, stop.name if stop else None, key=f"medsynth-{tag}-{i}",
                                 pure=False) for i, t in enumerate(tasks)]
        index = {f.key: i for i, f in enumerate(futures)}
        pending = set(futures)
        shown = -1
        while pending:
            if done != shown:
                rep.step(done / total, f"{done}/{sum(sizes)} {what}")
                shown = done
            elif cancel is not None:
                cancel.raise_if_cancelled()
            try:
                finished, _ = wait(list(pending), timeout=0.5, return_when="FIRST_COMPLETED")
            except TimeoutError:
                continue
            with deferred_interrupt():
                for f in finished:
                    pending.discard(f)
                    i = index[f.key]
                    results[i] = f.result()  # re-raises the task's exception here
                    done += sizes[i]
                    if on_result:
                        on_result(i, results[i])
        rep.step(1.0, f"{done}/{sum(sizes)} {what}")
        finished_well = True
        return results
    except BaseException:
        with contextlib.suppress(Exception):
            if stop is not None:
                stop.set()  # running tasks make no new item
            client.cancel(futures)  # tasks not started are dropped
            if stop is not None:
                time.sleep(1.0)  # an item that passed its check a moment ago finishes its renames
        raise
    finally:
        with contextlib.suppress(Exception):
            client.close()
        if cluster is not None:
            _stop_local_workers(cluster, graceful=finished_well)


def chunks(indices: Sequence[int], size: int) -> List[List[int]]:
    """``indices`` in runs of at most ``size``."""
    size = max(1, int(size))
    return [list(indices[i : i + size]) for i in range(0, len(indices), size)]


def chunk_size(count: int, workers: Workers, cap: int = 16) -> int:
    """Items per task: at most ``cap`` (a fine progress line, little lost on a cancel), and enough tasks to keep
    every worker busy (four per worker)."""
    slots = 4 * (workers.n if not workers.scheduler else 16)
    return max(1, min(cap, -(-int(count) // slots)))


def batch_failed(failed: Sequence[Tuple[int, str, str]], count: int, what: str, kept: str = "") -> None:
    """Raise :class:`InputError` (exit status 2) when items of a batch failed: how many, the first reason, and where
    the others are (``kept``, e.g. "listed in OUT/annotations.json"; empty when none was made). ``failed``: (item
    index, its input, why)."""
    if not failed:
        return
    n, source, why = sorted(failed)[0]
    done = count - len(failed)
    tail = f"the other {done} are written, {kept}" if kept and done else "nothing was written"
    raise InputError(f"{len(failed)} of {count} {what} failed (first: #{n} from {source}: {why}); {tail}")


def stopped(exc: BaseException, kept: int, what: str, where: os.PathLike) -> Stopped:
    """The :class:`Stopped` to raise after a batch was cancelled (``Cancelled``) or interrupted (Ctrl-C)."""
    how = "interrupted" if isinstance(exc, KeyboardInterrupt) else "cancelled"
    if not kept:
        return Stopped(f"{how}; no output written")
    return Stopped(f"{how}; the {kept} whole {what} made before are kept in {where}")


# --------------------------------------------------------------------------- item-wise outputs
class ItemFolder:
    """An output folder filled item by item.

    ``with ItemFolder(out) as folder:`` remembers what ``out`` held before. Inside a task,
    ``with item_files(out):`` makes the files one item writes (through :func:`medsynth.io.atomic_output`) appear
    together when the block ends, and none of them when it fails. The command calls :meth:`keep` with the files of
    every item that finished; when the ``with`` block ends (done, failed, cancelled or interrupted) everything the
    run added that no finished item owns is removed: leftovers of items cut short (a worker stopped mid-item, an item
    whose rename was interrupted), and the folder itself when the run created it and kept nothing."""

    def __init__(self, out: os.PathLike) -> None:
        self.out = Path(os.fspath(out))
        self._before: Optional[Set[str]] = None
        self._created: List[Path] = []
        self._kept: Set[str] = set()

    def __enter__(self) -> "ItemFolder":
        if self.out.is_dir():
            self._before = _files_under(self.out)
        else:
            from .outputs import _nearest_existing

            _top, self._created = _nearest_existing(self.out)
            self.out.mkdir(parents=True)
            self._before = set()
        return self

    def keep(self, paths: Iterable[os.PathLike]) -> None:
        """Files (absolute or relative to the folder) that belong to finished items or the command's index."""
        from .outputs import detached_data_names

        for p in paths:
            q = Path(os.fspath(p))
            rel = Path(os.path.relpath(q, self.out) if q.is_absolute() else os.fspath(q))
            for name in [rel.name] + detached_data_names(rel):  # a .mhd / .nhdr header keeps its data file
                self._kept.add(os.path.normpath(rel.parent / name))

    def __exit__(self, exc_type, exc, tb) -> None:
        if not self.out.is_dir():
            return
        stray = sorted(_files_under(self.out) - (self._before or set()) - self._kept)
        for rel in stray:
            with contextlib.suppress(OSError):
                (self.out / rel).unlink()
        _remove_empty_dirs(self.out, keep_root=not (self._created and not self._kept))
        if not self._kept:
            for folder in reversed(self._created):  # folders this run made, deepest first, when left empty
                with contextlib.suppress(OSError):
                    folder.rmdir()


def _files_under(folder: Path) -> Set[str]:
    found = set()
    for root, _dirs, files in os.walk(folder):
        rel = os.path.relpath(root, folder)
        for name in files:
            found.add(os.path.normpath(os.path.join(rel, name)))
    return found


def _remove_empty_dirs(folder: Path, keep_root: bool) -> None:
    for root, _dirs, _files in sorted(os.walk(folder), key=lambda t: -t[0].count(os.sep)):
        p = Path(root)
        if p == folder and keep_root:
            continue
        with contextlib.suppress(OSError):
            p.rmdir()  # only empty folders go


def fill_folder(
    out: os.PathLike,
    fn: Callable[[Any], Any],
    tasks: Sequence[Any],
    collect: Callable[[int, Any], Iterable[os.PathLike]],
    kept: Callable[[], int],
    what: str,
    workers: Workers = Workers(),
    progress: Optional[ProgressCallback] = None,
    cancel: Optional[CancelToken] = None,
    sizes: Optional[Sequence[int]] = None,
    write_index: Optional[Callable[[], Optional[os.PathLike]]] = None,
) -> None:
    """A batch into the folder ``out`` (:class:`ItemFolder`): :func:`run_tasks` of ``fn`` over ``tasks``;
    ``collect(task index, result)`` returns the files of the finished items of a task (they are kept);
    ``write_index()``, called at the end also after a stop (a Ctrl-C in it waits for it), writes the batch's index
    and returns its path (or None). A cancel or Ctrl-C raises :class:`Stopped` saying that ``kept()`` whole
    ``what`` are kept."""
    from .errors import Cancelled

    stop: Optional[BaseException] = None
    with ItemFolder(out) as folder:
        try:
            run_tasks(fn, tasks, workers, progress, cancel, sizes=sizes, what=what,
                      on_result=lambda i, result: folder.keep(collect(i, result)))
        except (KeyboardInterrupt, Cancelled) as exc:
            stop = exc
        finally:
            if write_index is not None:
                with deferred_interrupt():
                    index = write_index()
                    if index is not None:
                        folder.keep([index])
    if stop is not None:
        raise stopped(stop, kept(), what, out) from None


@contextlib.contextmanager
def item_files(out: os.PathLike) -> Iterator[None]:
    """The files one item writes under ``out`` appear together at the end of the block, or none of them."""
    from .outputs import OutputPlan

    plan = OutputPlan()
    plan.folder(out, "item")
    with plan:
        yield
        if stop_requested():
            from .errors import Cancelled

            raise Cancelled("the batch was stopped")  # the item's files are discarded


__all__ = [
    "ItemFolder",
    "THREAD_ENV",
    "WORKER_PARAMS",
    "Workers",
    "batch_failed",
    "chunk_size",
    "chunks",
    "deferred_interrupt",
    "fill_folder",
    "item_files",
    "run_tasks",
    "stop_requested",
    "stopped",
]
