"""Exceptions raised by fsm_trainer.

Every error about bad input is a :class:`ValueError` subclass, raised before any data is
touched, with a message naming the offending entry and what is allowed.
"""

from __future__ import annotations


class FsmTrainerError(Exception):
    """Base class of every fsm_trainer error."""


class WorkflowError(FsmTrainerError, ValueError):
    """The workflow, its maxima or the loaders given with it are invalid."""


class HookError(FsmTrainerError, ValueError):
    """A hook is invalid: unknown point, bad priority, unreachable point under ``strict``."""


class NoTransition(FsmTrainerError, ValueError):
    """No row of the transition table matches the given position and event."""
