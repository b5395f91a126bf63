"""The training state: a frozen record of plain data.

A :class:`TrainState` says where a run is (counters, mode, position in the transition table),
what the last step produced (``outputs``) and what hooks chose to keep (``hook_states``).
Torch objects never live here: the model, optimizer and loaders are resources of the run,
reached by effect hooks through their closures.

Counter conventions are mmcv 1.7.2's (all 0-based):

* ``epoch``: in an epoch-based run, the index of the running epoch, i.e. the number of train
  epochs completed; in an iter-based run, the number of passes the train loader had completed
  when the current iteration started.
* ``iter``: the index of the current train iteration, i.e. the number completed before it.
* ``inner_iter``: the batch index inside the current epoch (epoch-based) or inside the current
  workflow segment (iter-based).
* ``mode``: ``"train"`` or ``"val"`` while a phase runs, ``None`` before the first phase.
* ``phase``, ``phase_done``: the workflow entry being run (``-1`` before the first) and how
  many of its units (epochs or iterations) are complete in this visit.

The constructor is positional-friendly and unvalidated because the loop builds one record per
iteration; types are checked where data enters from outside (``fsm_trainer.serialize``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any

import attrs

_EMPTY: Mapping[str, Any] = MappingProxyType({})


@attrs.frozen(slots=True)
class TrainState:
    """Immutable progress of a run; every transition returns a new record.

    >>> s = TrainState()
    >>> s.epoch, s.iter, s.inner_iter, s.mode
    (0, 0, 0, None)
    >>> s.with_outputs({"loss": 1.0}).outputs
    {'loss': 1.0}
    """

    epoch: int = 0
    iter: int = 0
    inner_iter: int = 0
    mode: str | None = None
    outputs: Mapping[str, Any] = attrs.field(default=_EMPTY)
    phase: int = -1
    phase_done: int = 0
    stop: bool = False
    hook_states: Mapping[str, Any] = attrs.field(default=_EMPTY)

    def with_outputs(self, outputs: Mapping[str, Any]) -> TrainState:
        """Return a copy whose ``outputs`` is ``outputs``."""
        return TrainState(
            self.epoch, self.iter, self.inner_iter, self.mode, outputs,
            self.phase, self.phase_done, self.stop, self.hook_states,
        )

    def with_hook_state(self, name: str, value: Any) -> TrainState:
        """Return a copy with ``hook_states[name] = value`` (the mapping is copied)."""
        states = dict(self.hook_states)
        states[name] = value
        return attrs.evolve(self, hook_states=states)

    def plain(self) -> TrainState:
        """This state as plain data: ``outputs`` reduced by :func:`plain_outputs`, ``stop`` kept.

        What a run returns and a checkpoint stores: no tensor (and no autograd graph) survives.
        """
        return attrs.evolve(self, outputs=plain_outputs(self.outputs))

    def request_stop(self) -> TrainState:
        """Return a copy asking the run to stop after the current hook point."""
        return attrs.evolve(self, stop=True)


def _number(v: Any) -> Any:
    item = getattr(v, "item", None)
    if item is not None and getattr(v, "numel", lambda: 0)() == 1:
        return item()
    return v


def plain_outputs(outputs: Mapping[str, Any]) -> Mapping[str, Any]:
    """The part of a step's outputs a saved or returned state keeps: ``log_vars`` and ``num_samples``.

    One-element tensors become Python numbers (one host sync each, at a save or at the end of a
    run, never per iteration); the loss tensor and predictions are dropped.

    >>> plain_outputs({"loss": object(), "log_vars": {"loss": 0.5}, "num_samples": 4})
    {'log_vars': {'loss': 0.5}, 'num_samples': 4}
    """
    out: dict[str, Any] = {}
    if "log_vars" in outputs:
        lv = outputs["log_vars"]
        out["log_vars"] = {k: _number(v) for k, v in lv.items()} if isinstance(lv, Mapping) else lv
    if "num_samples" in outputs:
        out["num_samples"] = _number(outputs["num_samples"])
    return out


def _make_positional_constructor() -> Callable[
    [int, int, int, str | None, Mapping[str, Any], int, int, bool, Mapping[str, Any]], TrainState
]:
    # The loop builds one or two records per iteration. attrs' frozen __init__ goes through
    # object.__setattr__ per field (~1.9 us for 9 fields here); writing the slots through their
    # descriptors builds the same record in ~0.7 us. Fields and order come from attrs itself,
    # and a test checks equality with the regular constructor.
    names = [a.name for a in attrs.fields(TrainState)]
    env: dict[str, Any] = {"_new": object.__new__, "_cls": TrainState}
    env.update({f"_set_{n}": TrainState.__dict__[n].__set__ for n in names})
    body = "".join(f"    _set_{n}(s, {n})\n" for n in names)
    src = f"def make_state({', '.join(names)}):\n    s = _new(_cls)\n{body}    return s\n"
    from fsm_trainer._codegen import define

    constructor: Callable[
        [int, int, int, str | None, Mapping[str, Any], int, int, bool, Mapping[str, Any]], TrainState
    ] = define("make_state", src, env, what="make_state")
    return constructor


make_state = _make_positional_constructor()
"""``make_state(epoch, iter, inner_iter, mode, outputs, phase, phase_done, stop, hook_states)``:
the positional constructor the runner's hot path uses; equal to ``TrainState(...)``."""
