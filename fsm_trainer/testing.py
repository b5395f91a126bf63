"""Test helpers for users and for this package: trace recording and tiny loaders."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from fsm_trainer.hook import POINTS, Hook
from fsm_trainer.state import TrainState


def record_trace(
    trace: list[tuple[Any, ...]], *, name: str = "trace", priority: int | str = "NORMAL",
    points: tuple[str, ...] = POINTS,
) -> Hook:
    """A hook appending ``(point, mode, epoch, iter, inner_iter)`` at each of ``points``.

    >>> trace = []
    >>> hook = record_trace(trace, points=("after_train_iter",))
    >>> _ = hook.on["after_train_iter"](TrainState(mode="train"))
    >>> trace
    [('after_train_iter', 'train', 0, 0, 0)]
    """

    def at(point: str) -> Any:
        def record(s: TrainState) -> TrainState:
            trace.append((point, s.mode, s.epoch, s.iter, s.inner_iter))
            return s

        return record

    return Hook(name, priority, {p: at(p) for p in points})


class CountingLoader:
    """A loader yielding ``0..n-1``, whose sampler records ``set_epoch`` calls.

    >>> loader = CountingLoader(3)
    >>> list(loader), len(loader)
    ([0, 1, 2], 3)
    """

    class _Sampler:
        def __init__(self) -> None:
            self.epochs: list[int] = []

        def set_epoch(self, epoch: int) -> None:
            self.epochs.append(epoch)

    def __init__(self, n: int) -> None:
        self.n = n
        self.sampler = self._Sampler()

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[int]:
        return iter(range(self.n))


def noop_step(batch: Any) -> dict[str, Any]:
    """A step that does no work: the outputs of an empty batch."""
    return {"log_vars": {}, "num_samples": 1}
