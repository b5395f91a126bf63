"""Loader helpers for the runner: endless cycling with pass counting (mmcv's IterLoader)."""

from __future__ import annotations

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


class IterLoader:
    """Cycle over ``loader`` forever, counting completed passes in ``epoch``.

    When a pass ends, ``epoch`` is incremented and the sampler's ``set_epoch(epoch)`` is called
    (if it has one) before the next pass starts, as in mmcv 1.7.2 (without its 2 s sleep).

    >>> it = IterLoader([1, 2])
    >>> [next(it) for _ in range(5)], it.epoch
    ([1, 2, 1, 2, 1], 2)
    """

    __slots__ = ("_it", "epoch", "loader")

    def __init__(self, loader: Iterable[Any], epoch: int = 0) -> None:
        self.loader = loader
        self.epoch = epoch
        self._it: Iterator[Any] = iter(loader)

    def __iter__(self) -> IterLoader:
        return self

    def __next__(self) -> Any:
        try:
            return next(self._it)
        except StopIteration:
            self.epoch += 1
            set_sampler_epoch(self.loader, self.epoch)
            self._it = iter(self.loader)
            try:
                return next(self._it)
            except StopIteration:
                msg = f"loader {self.loader!r} yields no batches"
                raise ValueError(msg) from None
