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

    Unlike mmcv's buffer, which grows for a whole epoch (or a whole iter-based run), the
    histories are trimmed to the window the next interval average can read, so memory stays
    bounded; the averages are the same.
    """

    __slots__ = ("_keep", "counts", "output", "ready", "values")

    def __init__(self) -> None:
        self.values: dict[str, list[float]] = {}
        self.counts: dict[str, list[float]] = {}
        self.output: dict[str, float] = {}
        self.ready = False
        self._keep = 0  # 0: keep everything since clear()

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
        for key, hist in self.values.items():
            counts = self.counts[key]
            vs, cs = (hist[-n:], counts[-n:]) if n else (hist, counts)
            total = sum(cs)
            self.output[key] = sum(v * c for v, c in zip(vs, cs, strict=True)) / total if total else float("nan")
            if n and len(hist) > 4 * n:  # later averages read at most the last n entries
                del hist[:-n]
                del counts[:-n]
        self.ready = True
