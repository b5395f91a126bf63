"""Averages of logged values over an interval, weighted by ``num_samples`` (mmcv's LogBuffer).

>>> b = LogBuffer()
>>> b.update({"loss": 1.0}, 1)
>>> b.update({"loss": 4.0}, 3)
>>> b.average(2)
>>> b.ready, b.output["loss"]
(True, 3.25)
"""

from __future__ import annotations

from collections.abc import Mapping


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

    __slots__ = ("_keep", "counts", "output", "ready", "values")

    def __init__(self) -> None:
        self.values: dict[str, list[float]] = {}
        self.counts: dict[str, list[float]] = {}
        self.output: dict[str, float] = {}
        self.ready = False
        self._keep = 0  # 0: keep everything since clear()

    def keep(self, n: int) -> None:
        """Keep at least the latest ``n`` entries of every history (a reader averages over ``n``)."""
        if n <= 0:
            msg = f"n must be > 0, got {n}"
            raise ValueError(msg)
        self._keep = max(self._keep, n)

    def clear(self) -> None:
        """Forget the histories and the output."""
        self.values.clear()
        self.counts.clear()
        self.clear_output()

    def clear_output(self) -> None:
        """Forget the output; the next log needs a new :meth:`average`."""
        self.output.clear()
        self.ready = False

    def update(self, values: Mapping[str, float], count: float = 1) -> None:
        """Append each value with weight ``count``."""
        vals = self.values
        for key, v in values.items():
            hist = vals.get(key)
            if hist is None:
                vals[key] = [v]
                self.counts[key] = [count]
            else:
                hist.append(v)
                self.counts[key].append(count)

    def update_one(self, key: str, value: float, count: float = 1) -> None:
        """Append one value (the per-iteration fast path of :meth:`update`)."""
        hist = self.values.get(key)
        if hist is None:
            self.values[key] = [value]
            self.counts[key] = [count]
        else:
            hist.append(value)
            self.counts[key].append(count)

    def average(self, n: int = 0) -> None:
        """Average the latest ``n`` entries of every key (all of them when ``n == 0``)."""
        if n < 0:
            msg = f"n must be >= 0, got {n}"
            raise ValueError(msg)
        keep = max(self._keep, n) if n and self._keep else 0
        for key, hist in self.values.items():
            counts = self.counts[key]
            vs, cs = (hist[-n:], counts[-n:]) if n else (hist, counts)
            total = sum(cs)
            self.output[key] = sum(v * c for v, c in zip(vs, cs, strict=True)) / total if total else float("nan")
            if keep and len(hist) >= 2 * keep:
                del hist[:-keep]
                del counts[:-keep]
        self.ready = True
