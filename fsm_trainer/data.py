"""Loader helpers for the runner: endless cycling with pass counting (mmcv's IterLoader), and
placing a loader at a saved data position (epoch, batches already consumed) for exact resume."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import Any


def set_sampler_epoch(loader: Any, epoch: int) -> None:
    """Call ``set_epoch(epoch)`` on the loader's sampler (or batch sampler's) when it has one."""
    sampler = getattr(loader, "sampler", None)
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)
        return
    batch_sampler = getattr(loader, "batch_sampler", None)
    inner = getattr(batch_sampler, "sampler", None)
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
    batch_sampler = getattr(loader, "batch_sampler", None)
    if hasattr(batch_sampler, "set_position"):
        batch_sampler.set_position(epoch, batches)
        return True
    sampler = getattr(loader, "sampler", None)
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
                raise ValueError(msg) from None
        self.index += 1
        return batch
