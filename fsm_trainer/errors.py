"""Exceptions raised by fsm_trainer.

Every exception fsm_trainer raises on purpose is a :class:`FsmTrainerError`, so
``except FsmTrainerError`` catches all of them, and each one also derives from the builtin
exception that callers would otherwise expect, so ``except ValueError`` (``TypeError``,
``KeyError``, ``RuntimeError``, ``OSError``) keeps working. Messages name the offending
argument or key, its value and what is allowed.

The rule, checked over the whole package by ``tests/test_errors.py``:

* a bad value raises its area's class below, a :class:`ValueError`;
* a value of the wrong Python type (an argument, or what a user function returned), or a
  keyword argument a call does not take, raises :class:`ArgumentTypeError`, a
  :class:`TypeError`, whatever the area;
* a mapping that lacks a needed key, holds keys that cannot be used or would get a key twice
  raises :class:`MappingKeyError`, a :class:`KeyError`;
* a distributed call made without a process group raises :class:`ProcessGroupError`, a
  :class:`RuntimeError`;
* fsm_trainer itself never raises a bare ``ValueError``, ``TypeError``, ``KeyError`` or
  ``RuntimeError``. The only exceptions are :mod:`fsm_trainer.mmcv`, which reproduces the
  exception types of mmcv 1.7.2's API (``KeyError`` from a registry, ``NotImplementedError``...),
  and signals raised to a third-party library that turns them into one of ours before they
  leave fsm_trainer (a cattrs structure hook's error becomes a :class:`ConfigError` naming
  the key path).

When an error is raised because of another one that carries detail (an ``OSError``, a JSON,
YAML, torch or safetensors decode error), that error is its ``__cause__``.

The hierarchy. Defined here:

* :class:`FsmTrainerError` (``Exception``): the base of all.
* :class:`WorkflowError`: the workflow, its maxima or its loaders.
* :class:`HookError`: a hook, a shipped hook's argument, or a resource a hook needs.
* :class:`NoTransition`: no transition for a position and an event.
* :class:`ScheduleConfigError` (also :mod:`fsm_trainer.schedules`): an LR or momentum schedule.
* :class:`RngStateError`: a saved random generator state (:mod:`fsm_trainer.rng`).
* :class:`DataError`: a sampler, a loader or a dataset argument (:mod:`fsm_trainer.sampler`,
  :mod:`fsm_trainer.data`).
* :class:`MetricError`: a metric's name or inputs (:mod:`fsm_trainer.metrics`).
* :class:`DistError`: a distributed-training argument (:mod:`fsm_trainer.dist`).
* :class:`ProcessGroupError` (``RuntimeError``): no process group for a distributed call.
* :class:`ArgumentTypeError` (``TypeError``): a value of the wrong Python type.
* :class:`MappingKeyError` (``KeyError``): a missing, unexpected or duplicate key.

Defined next to their area, all deriving from :class:`FsmTrainerError`:

* ``ConfigError`` (:mod:`fsm_trainer.config`): a config file or dict.
* ``CheckpointError``, with ``CheckpointNotFoundError`` (also ``FileNotFoundError``),
  ``NotACheckpointError``, ``CorruptCheckpointError``, ``CheckpointMismatchError``; and
  ``CheckpointWriteError`` (``OSError``) (:mod:`fsm_trainer.checkpoint`).
* ``OptimizerConfigError`` (:mod:`fsm_trainer.optim`): an optimizer config.
* ``StateFormatError`` (:mod:`fsm_trainer.serialize`): data that is not a state or a table.
* ``RegistryError`` (:mod:`fsm_trainer.registry`): a registry name or import path.
* ``DeviceError`` (:mod:`fsm_trainer.device`): a device or precision setting.
* ``LogValueError`` (:mod:`fsm_trainer.logbuffer`): a logged value or a log buffer argument.
* ``LogFileError`` (:mod:`fsm_trainer.logs`): a log file to read or a plot to write.
* ``NonFiniteLossError`` (``FloatingPointError``) (:mod:`fsm_trainer.hooks.nan_guard`).
* ``UsageError`` (:mod:`fsm_trainer.cli`): a command-line argument.
* ``MmcvCompatError``, ``RunnerAttributeError`` (also ``AttributeError``) and the other
  errors of :mod:`fsm_trainer.mmcv`, each keeping the builtin type mmcv 1.7.2 raises there.

>>> from fsm_trainer.schedules import build_lr_schedule
>>> try:
...     build_lr_schedule(policy="step", step=[8, 11], gama=0.1)
... except ValueError as exc:
...     print(type(exc).__name__, isinstance(exc, FsmTrainerError))
ScheduleConfigError True
"""

from __future__ import annotations


class FsmTrainerError(Exception):
    """Base class of every fsm_trainer error."""


class WorkflowError(FsmTrainerError, ValueError):
    """The workflow, its maxima or the loaders given with it are invalid."""


class HookError(FsmTrainerError, ValueError):
    """A hook is invalid: unknown point, bad priority, unreachable point under ``strict``, an
    argument of a shipped hook out of range, or a resource the hook needs missing from the run."""


class NoTransition(FsmTrainerError, ValueError):
    """No row of the transition table matches the given position and event."""


class ScheduleConfigError(FsmTrainerError, ValueError):
    """An ``lr_config``/``momentum_config`` (or the run it is used with) is invalid."""


class RngStateError(FsmTrainerError, ValueError):
    """A random generator state is not of the layout :func:`fsm_trainer.rng.capture` writes, or
    is for another number of CUDA devices."""


class DataError(FsmTrainerError, ValueError):
    """A sampler, loader or dataset argument is invalid, or a loader yields no batches."""


class MetricError(FsmTrainerError, ValueError):
    """A metric name is unknown, or its inputs do not have the shapes it needs."""


class DistError(FsmTrainerError, ValueError):
    """An argument for distributed training is invalid (launcher, strategy, model or optimizer to shard)."""


class ProcessGroupError(FsmTrainerError, RuntimeError):
    """A distributed call needs a process group and none is initialised (start under torchrun, call ``init_dist``)."""


class ArgumentTypeError(FsmTrainerError, TypeError):
    """A value has the wrong Python type (an argument, or what a user-supplied function returned),
    or a call got a keyword argument it does not take."""


class MappingKeyError(FsmTrainerError, KeyError):
    """A mapping lacks a key that is needed, holds keys that cannot be used, or would get a key twice.

    Unlike a plain :class:`KeyError`, the message prints as it is, not quoted.

    >>> str(MappingKeyError("no 'loss' in the outputs"))
    "no 'loss' in the outputs"
    """

    def __str__(self) -> str:
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()
