"""Capture and restore every global random number generator as plain data and tensors.

:func:`capture` returns a dict whose leaves are ints, strings, lists and ``uint8`` tensors
(python's ``random``, NumPy's legacy global generator, torch CPU and, when CUDA has been
initialised, every CUDA device). Checkpoints store the tensors in safetensors and the rest in
JSON, so restoring an RNG state never unpickles anything.

Saved RNG states are the backstop of exact resume, not its mechanism: data order comes from
:class:`~fsm_trainer.sampler.ResumableSampler` as a function of ``(seed, epoch)``. What the
states cover is the randomness the model and hooks draw from the global generators (dropout,
random augmentation in the main process).

>>> import random
>>> s = capture()
>>> a = random.random()
>>> restore(s)
>>> random.random() == a
True
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from fsm_trainer.errors import RngStateError


def capture() -> dict[str, Any]:
    """The state of the python, NumPy (legacy global), torch CPU and CUDA generators."""
    version, internal, gauss = random.getstate()
    legacy: Any = np.random.get_state(legacy=True)
    kind, keys, pos, has_gauss, cached = legacy
    out: dict[str, Any] = {
        "python": {"version": version, "state": list(internal), "gauss_next": gauss},
        "numpy": {
            "kind": str(kind), "keys": keys.tolist(), "pos": int(pos),
            "has_gauss": int(has_gauss), "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
        "cuda": [],
    }
    # Asking for CUDA states would initialise CUDA in a CPU-only run; only capture what is live.
    initialized: Callable[[], bool] = torch.cuda.is_initialized
    if torch.cuda.is_available() and initialized():
        out["cuda"] = list(torch.cuda.get_rng_state_all())
    return out


_WORDS = 624  # Mersenne Twister state words, in python's random and NumPy's legacy generator


def _is_int(x: Any, low: int, high: int) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and low <= x <= high


def _are_words(xs: list[Any]) -> bool:
    """Whether every item is a 32-bit unsigned int (not a bool), checked in a few passes over a long list."""
    return all(type(x) is int for x in xs) and (not xs or (min(xs) >= 0 and max(xs) <= 2**32 - 1))


def _is_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def check(state: Any) -> None:
    """Check that ``state`` has the layout :func:`capture` gives, touching no generator.

    :func:`restore` of a state that passes sets every generator without error (except for a
    different number of CUDA devices, which it reports itself).

    >>> check(capture())
    >>> check({"python": {}})
    Traceback (most recent call last):
    ...
    fsm_trainer.errors.RngStateError: expected the keys cuda, numpy, python, torch; got python

    Raises:
        RngStateError: naming the first part that is not as :func:`capture` writes it.
    """
    if not isinstance(state, dict) or set(state) != {"python", "numpy", "torch", "cuda"}:
        got = ", ".join(sorted(map(str, state))) if isinstance(state, dict) else type(state).__name__
        msg = f"expected the keys cuda, numpy, python, torch; got {got}"
        raise RngStateError(msg)
    py = state["python"]
    if not isinstance(py, dict) or set(py) != {"version", "state", "gauss_next"}:
        msg = "python: expected the keys version, state, gauss_next"
        raise RngStateError(msg)
    words = py["state"]
    if (py["version"] != random.Random.VERSION or not isinstance(words, list) or len(words) != _WORDS + 1
            or not _are_words(words[:-1]) or not _is_int(words[-1], 0, _WORDS)):
        msg = f"python: not a version {random.Random.VERSION} Mersenne Twister state ({_WORDS} words and a position)"
        raise RngStateError(msg)
    if py["gauss_next"] is not None and not _is_number(py["gauss_next"]):
        msg = "python: gauss_next must be a number or null"
        raise RngStateError(msg)
    n = state["numpy"]
    if not isinstance(n, dict) or set(n) != {"kind", "keys", "pos", "has_gauss", "cached_gaussian"}:
        msg = "numpy: expected the keys kind, keys, pos, has_gauss, cached_gaussian"
        raise RngStateError(msg)
    keys = n["keys"]
    if (n["kind"] != "MT19937" or not isinstance(keys, list) or len(keys) != _WORDS
            or not _are_words(keys) or not _is_int(n["pos"], 0, _WORDS)
            or not _is_int(n["has_gauss"], 0, 1) or not _is_number(n["cached_gaussian"])):
        msg = f"numpy: not an MT19937 state ({_WORDS} 32-bit keys, a position, a cached gaussian)"
        raise RngStateError(msg)
    t = state["torch"]
    size = torch.get_rng_state().numel()
    if not isinstance(t, torch.Tensor) or t.dtype != torch.uint8 or tuple(t.shape) != (size,):
        what = f"{t.dtype} tensor of shape {tuple(t.shape)}" if isinstance(t, torch.Tensor) else type(t).__name__
        msg = f"torch: expected a uint8 tensor of shape ({size},), got a {what}"
        raise RngStateError(msg)
    cuda = state["cuda"]
    if not isinstance(cuda, list) or not all(
        isinstance(c, torch.Tensor) and c.dtype == torch.uint8 and c.dim() == 1 for c in cuda
    ):
        msg = "cuda: expected a list of one-dimensional uint8 tensors"
        raise RngStateError(msg)


def restore(state: dict[str, Any]) -> None:
    """Set every generator :func:`capture` recorded back to its saved state.

    Raises:
        RngStateError: the saved CUDA states are for a different number of devices.
    """
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss_next"]))
    n = state["numpy"]
    np.random.set_state(
        (n["kind"], np.asarray(n["keys"], dtype=np.uint32), n["pos"], n["has_gauss"], n["cached_gaussian"])
    )
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda") or []
    if cuda:
        if not torch.cuda.is_available() or torch.cuda.device_count() != len(cuda):
            have = torch.cuda.device_count() if torch.cuda.is_available() else 0
            msg = f"the checkpoint holds RNG states of {len(cuda)} CUDA devices; this process sees {have}"
            raise RngStateError(msg)
        torch.cuda.set_rng_state_all(cuda)
