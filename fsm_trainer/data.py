"""Loader helpers for the runner: endless cycling with pass counting (mmcv's IterLoader),
placing a loader at a saved data position (epoch, batches already consumed) for exact resume,
and keeping DataLoader workers alive through a preemption signal."""

from __future__ import annotations

import atexit
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from fsm_trainer.errors import DataError


class StopSignalsIgnored:
    """A DataLoader ``worker_init_fn``: the worker ignores SIGINT, and SIGTERM unless its loader's
    process sends it; then the original ``fn`` is called.

    SIGTERM from the process that owns the loader still ends the worker as usual:
    ``multiprocessing`` terminates daemonic workers with it when that process exits (and a
    DataLoader iterator when it shuts down), so ignoring it would make that exit wait for ever.
    SIGTERM is blocked in the worker and a thread waits for it (``sigwaitinfo``) to learn its
    sender. Where ``sigwaitinfo`` is missing, only SIGINT is ignored.

    A top-level class holding ``fn`` (not a closure), so it pickles for the ``spawn`` and
    ``forkserver`` start methods whenever ``fn`` does.
    """

    def __init__(self, fn: Callable[[int], Any] | None = None, owner: int | None = None) -> None:
        self.fn = fn
        self.owner = os.getpid() if owner is None else owner

    def __call__(self, worker_id: int) -> None:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        if hasattr(signal, "sigwaitinfo") and hasattr(signal, "pthread_sigmask"):
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})  # inherited by later threads
            signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not a handler inherited by fork
            owners = frozenset({self.owner, os.getppid()})
            threading.Thread(target=_sigterm_from, args=(owners,), name="fsm_trainer-sigterm", daemon=True).start()
        if self.fn is not None:
            self.fn(worker_id)

    def __repr__(self) -> str:
        return f"StopSignalsIgnored({self.fn!r})"


def _sigterm_from(owners: frozenset[int]) -> None:
    while True:
        info = signal.sigwaitinfo({signal.SIGTERM})
        if info.si_pid in owners:  # die of it, as a worker that does not block it
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
            signal.pthread_kill(threading.get_ident(), signal.SIGTERM)
            return


_exit_quiet: list[bool] = []


def _stop_watching_workers() -> None:
    """At exit: drop torch's SIGCHLD check of DataLoader workers, which ``multiprocessing`` is
    about to terminate; a worker of :class:`StopSignalsIgnored` dies a moment after the signal,
    when the check would report it as a failure."""
    if threading.current_thread() is not threading.main_thread():
        return
    handler = signal.getsignal(signal.SIGCHLD)
    if getattr(handler, "__module__", None) == "torch.utils.data._utils.signal_handling":
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)


def ignore_stop_signals_in_workers(loader: Any) -> bool:
    """Make the worker processes of ``loader`` survive SIGTERM and SIGINT sent to the process group.

    A signal sent to the whole process group (``kill -- -PGID``, Slurm's ``scancel``) reaches the
    workers too; by default they die of it and the main process fails with "DataLoader worker
    exited unexpectedly" instead of finishing its iteration and saving a checkpoint. The
    loader's ``worker_init_fn`` is wrapped (once) in :class:`StopSignalsIgnored`; it applies to
    workers started from now on, so call it before the loader is first iterated (persistent
    workers already running keep their handlers). Workers still end when the DataLoader or
    its process shuts them down, or when that process dies. Only a
    ``torch.utils.data.DataLoader`` with ``num_workers > 0`` is changed; returns whether it was.

    >>> import torch
    >>> loader = torch.utils.data.DataLoader(list(range(4)), num_workers=2)
    >>> ignore_stop_signals_in_workers(loader), ignore_stop_signals_in_workers(loader)
    (True, False)
    >>> loader.worker_init_fn
    StopSignalsIgnored(None)
    """
    from torch.utils.data import DataLoader

    if not isinstance(loader, DataLoader) or loader.num_workers <= 0:
        return False
    if isinstance(loader.worker_init_fn, StopSignalsIgnored):
        return False
    loader.worker_init_fn = StopSignalsIgnored(loader.worker_init_fn)
    if not _exit_quiet:  # runs before multiprocessing's own exit function, registered earlier
        atexit.register(_stop_watching_workers)
        _exit_quiet.append(True)
    return True


def set_sampler_epoch(loader: Any, epoch: int) -> None:
    """Call ``set_epoch(epoch)`` on the loader's sampler (or batch sampler's) when it has one."""
    sampler: Any = getattr(loader, "sampler", None)
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)
        return
    batch_sampler = getattr(loader, "batch_sampler", None)
    inner: Any = getattr(batch_sampler, "sampler", None)
    if hasattr(inner, "set_epoch"):
        inner.set_epoch(epoch)


def set_data_position(loader: Any, epoch: int, batches: int) -> bool:
    """Make the loader's next pass epoch ``epoch`` starting after ``batches`` batches, in O(1).

    Works when the loader's sampler (or batch sampler) has ``set_position(epoch, start)``, as
    :class:`~fsm_trainer.sampler.ResumableSampler` does; ``start`` is counted in samples
    (``batches * batch_size``) for a sampler and in batches for a batch sampler. Otherwise it
    only calls ``set_epoch`` and returns ``False``: the caller must skip the batches by reading
    them (see :func:`skip_batches`).
    """
    batch_sampler: Any = getattr(loader, "batch_sampler", None)
    if hasattr(batch_sampler, "set_position"):
        batch_sampler.set_position(epoch, batches)
        return True
    sampler: Any = getattr(loader, "sampler", None)
    if not hasattr(sampler, "set_position"):
        sampler = getattr(batch_sampler, "sampler", None)
    if hasattr(sampler, "set_position"):
        size = getattr(loader, "batch_size", None) or getattr(batch_sampler, "batch_size", None) or 1
        if batch_sampler is None and getattr(loader, "batch_size", None) is None and hasattr(loader, "batch_sampler"):
            size = 1  # DataLoader(batch_size=None): one sample per batch
        sampler.set_position(epoch, batches * size)
        return True
    set_sampler_epoch(loader, epoch)
    return False


def skip_batches(it: Iterator[Any], n: int, loader: Any, logger: logging.Logger | None = None) -> None:
    """Read and drop ``n`` batches of ``it``: the O(n) fallback for a loader that cannot seek."""
    if n <= 0:
        return
    (logger or logging.getLogger("fsm_trainer")).warning(
        "the loader %r has no resumable sampler (fsm_trainer.sampler.ResumableSampler): reading and "
        "dropping %d batches to reach the saved position; this is exact only if its order is "
        "deterministic", type(loader).__name__, n,
    )
    for _ in range(n):
        next(it)


class IterLoader:
    """Cycle over ``loader`` forever, counting completed passes in ``epoch``.

    When a pass ends, ``epoch`` is incremented and the sampler's ``set_epoch(epoch)`` is called
    (if it has one) before the next pass starts, as in mmcv 1.7.2 (without its 2 s sleep).

    >>> it = IterLoader([1, 2])
    >>> [next(it) for _ in range(5)], it.epoch
    ([1, 2, 1, 2, 1], 2)
    """

    __slots__ = ("_it", "epoch", "index", "loader")

    def __init__(self, loader: Iterable[Any], epoch: int = 0) -> None:
        self.loader = loader
        self.epoch = epoch
        self.index = 0  # batches taken in the current pass: with ``epoch``, the data position
        self._it: Iterator[Any] = iter(loader)

    @classmethod
    def at(cls, loader: Iterable[Any], epoch: int, index: int, logger: logging.Logger | None = None) -> IterLoader:
        """An IterLoader whose next batch is batch ``index`` of pass ``epoch`` (a saved position).

        >>> it = IterLoader.at([1, 2, 3], epoch=4, index=2)
        >>> [next(it) for _ in range(3)], it.epoch
        ([3, 1, 2], 5)
        """
        seekable = set_data_position(loader, epoch, index)
        self = cls.__new__(cls)
        self.loader, self.epoch, self.index = loader, epoch, index
        self._it = iter(loader)
        if not seekable:
            skip_batches(self._it, index, loader, logger)
        return self

    def __iter__(self) -> IterLoader:
        return self

    def __next__(self) -> Any:
        try:
            batch = next(self._it)
        except StopIteration:
            self.epoch += 1
            self.index = 0
            set_sampler_epoch(self.loader, self.epoch)
            self._it = iter(self.loader)
            try:
                batch = next(self._it)
            except StopIteration:
                msg = f"loader {self.loader!r} yields no batches"
                raise DataError(msg) from None
        self.index += 1
        return batch
