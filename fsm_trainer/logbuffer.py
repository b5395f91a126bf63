"""Averages of logged values over an interval, weighted by ``num_samples`` (mmcv's LogBuffer).

>>> b = LogBuffer()
>>> b.update({"loss": 1.0}, 1)
>>> b.update({"loss": 4.0}, 3)
>>> b.average(2)
>>> b.ready, b.output["loss"]
(True, 3.25)

Values may be one-element tensors, also on an accelerator: they are kept as they are (no
host sync per iteration) and read back to Python numbers together, in one transfer per device
and dtype, when :meth:`LogBuffer.average` needs them or :attr:`LogBuffer.values` is read (at a
logging point or a checkpoint):

>>> import torch
>>> b = LogBuffer()
>>> b.update({"loss": torch.tensor(0.5)}, 2)
>>> b.update({"loss": torch.tensor(2.0)}, 2)
>>> b.average()
>>> b.output["loss"], b.values["loss"]
(1.25, [0.5, 2.0])
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from fsm_trainer.errors import FsmTrainerError

if TYPE_CHECKING:
    import torch


def _is_tensor(v: Any) -> bool:
    # Duck-typed so that this module (and the pure core importing it) does not import torch.
    return hasattr(v, "numel") and hasattr(v, "detach")


class LogValueError(FsmTrainerError, ValueError):
    """A logged tensor is not a single number, or a log buffer got an invalid argument."""


def materialize(pending: list[tuple[list[Any], int, str]]) -> None:
    """Replace each tensor ``hist[i]`` named by ``(hist, i, key)`` in ``pending`` by a Python number, in place.

    The tensors are stacked per ``(device, dtype)`` and read back with one ``tolist()`` each,
    so a logging point costs one host sync per device, not one per value.

    Raises:
        LogValueError: a tensor with other than one element (naming its key).
    """
    import torch

    groups: dict[tuple[torch.device, torch.dtype], list[tuple[list[Any], int, torch.Tensor]]] = {}
    for hist, i, key in pending:
        v = hist[i]
        if _is_tensor(v):
            if v.numel() != 1:
                msg = f"logged value {key!r} must be a number or a one-element tensor, got shape {tuple(v.shape)}"
                raise LogValueError(msg)
            groups.setdefault((v.device, v.dtype), []).append((hist, i, v))
    for entries in groups.values():
        numbers = torch.stack([t.detach().reshape(()) for _, _, t in entries]).tolist()
        for (hist, i, _), x in zip(entries, numbers, strict=True):
            hist[i] = x


def _tensors_in(histories: Mapping[str, list[Any]]) -> list[tuple[list[Any], int, str]]:
    return [(h, i, k) for k, h in histories.items() for i, v in enumerate(h) if _is_tensor(v)]


class LogBuffer:
    """Histories of scalars since the last :meth:`clear`, and their latest averages.

    The averages are mmcv 1.7.2's: ``average(n)`` sets each key's output to the mean of the
    last ``n`` entries of *that key's* history (all of them for ``n == 0``), weighted by their
    counts; ``clear_output`` forgets the averages only, ``clear`` the histories too.

    mmcv's histories grow from one ``clear`` to the next (a whole epoch, or from one
    iter-based evaluation to the next). Here every reader of interval averages says how many
    entries it reads (:meth:`keep`), and ``average(n)`` with ``n > 0`` trims each history to
    the largest of those, so memory stays bounded and every later ``average(m)`` with ``m`` up
    to that size sees exactly what mmcv's history would give. ``average(0)`` (a val epoch)
    reads the whole history since the last ``clear``, which no ``average(n)`` trims in
    between. Without any :meth:`keep`, nothing is trimmed.

    Values and counts may be Python numbers or one-element tensors (on any device). Tensors
    stay tensors until :meth:`average` or a read of :attr:`values`/:attr:`counts` turns
    every pending one into a Python number (one host sync per device and dtype); the averages
    are then computed on Python floats, so they equal those of the same values logged with
    ``.item()``. ``output`` always holds Python numbers.

    >>> b = LogBuffer()
    >>> b.keep(2)
    >>> b.keep(3)
    >>> for v in range(1, 10):
    ...     b.update({"loss": float(v)})
    ...     b.average(2)
    >>> b.average(3)
    >>> b.output["loss"], b.values["loss"][-3:]
    (8.0, [7.0, 8.0, 9.0])
    """

    __slots__ = ("_counts", "_keep", "_pending", "_values", "output", "ready")

    def __init__(self) -> None:
        self._values: dict[str, list[Any]] = {}
        self._counts: dict[str, list[Any]] = {}
        self._pending: list[tuple[list[Any], int, str]] = []  # the tensors not read back yet
        self.output: dict[str, Any] = {}
        self.ready = False
        self._keep = 0  # 0: keep everything since clear()

    @property
    def values(self) -> dict[str, list[Any]]:
        """Each key's history, as Python numbers (pending tensors are read back first)."""
        self._materialize()
        return self._values

    @values.setter
    def values(self, values: dict[str, list[Any]]) -> None:
        self._values = values
        self._pending = _tensors_in(values) + _tensors_in(self._counts)

    @property
    def counts(self) -> dict[str, list[Any]]:
        """Each key's weights, as Python numbers (pending tensors are read back first)."""
        self._materialize()
        return self._counts

    @counts.setter
    def counts(self, counts: dict[str, list[Any]]) -> None:
        self._counts = counts
        self._pending = _tensors_in(self._values) + _tensors_in(counts)

    @property
    def empty(self) -> bool:
        """Whether no value was added since the last :meth:`clear` (never reads a tensor)."""
        return not self._values

    def _materialize(self) -> None:
        if self._pending:
            materialize(self._pending)
            self._pending = []

    def keep(self, n: int) -> None:
        """Keep at least the latest ``n`` entries of every history (a reader averages over ``n``)."""
        if n <= 0:
            msg = f"n must be > 0, got {n}"
            raise LogValueError(msg)
        self._keep = max(self._keep, n)

    def clear(self) -> None:
        """Forget the histories and the output."""
        self._values.clear()
        self._counts.clear()
        self._pending = []
        self.clear_output()

    def clear_output(self) -> None:
        """Forget the output; the next log needs a new :meth:`average`."""
        self.output.clear()
        self.ready = False

    def update(self, values: Mapping[str, Any], count: Any = 1) -> None:
        """Append each value (a number or a one-element tensor) with weight ``count``."""
        vals = self._values
        for key, v in values.items():
            hist = vals.get(key)
            if hist is None:
                vals[key] = hist = [v]
                self._counts[key] = [count]
            else:
                hist.append(v)
                self._counts[key].append(count)
            if v.__class__ is not float and _is_tensor(v):
                self._pending.append((hist, len(hist) - 1, key))
            if count.__class__ is not int and _is_tensor(count):
                cs = self._counts[key]
                self._pending.append((cs, len(cs) - 1, key))

    def update_one(self, key: str, value: Any, count: Any = 1) -> None:
        """Append one value (the per-iteration fast path of :meth:`update`)."""
        if value.__class__ is not float or count.__class__ is not int:
            self.update({key: value}, count)
            return
        hist = self._values.get(key)
        if hist is None:
            self._values[key] = [value]
            self._counts[key] = [count]
        else:
            hist.append(value)
            self._counts[key].append(count)

    def average(self, n: int = 0) -> None:
        """Average the latest ``n`` entries of every key (all of them when ``n == 0``)."""
        if n < 0:
            msg = f"n must be >= 0, got {n}"
            raise LogValueError(msg)
        self._materialize()  # before trimming: the pending entries' indices stay valid until then
        keep = max(self._keep, n) if n and self._keep else 0
        for key, hist in self._values.items():
            counts = self._counts[key]
            vs, cs = (hist[-n:], counts[-n:]) if n else (hist, counts)
            total = sum(cs)
            self.output[key] = sum(v * c for v, c in zip(vs, cs, strict=True)) / total if total else float("nan")
            if keep and len(hist) >= 2 * keep:
                del hist[:-keep]
                del counts[:-keep]
        self.ready = True
