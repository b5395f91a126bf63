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
from typing import Any

import numpy as np
import torch


def capture() -> dict[str, Any]:
    """The state of the python, NumPy (legacy global), torch CPU and CUDA generators."""
    version, internal, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)  # type: ignore[misc]
    out: dict[str, Any] = {
        "python": {"version": version, "state": list(internal), "gauss_next": gauss},
        "numpy": {
            "kind": str(kind), "keys": [int(k) for k in keys], "pos": int(pos),
            "has_gauss": int(has_gauss), "cached_gaussian": float(cached),
        },
        "torch": torch.get_rng_state(),
        "cuda": [],
    }
    # Asking for CUDA states would initialise CUDA in a CPU-only run; only capture what is live.
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = list(torch.cuda.get_rng_state_all())
    return out


def restore(state: dict[str, Any]) -> None:
    """Set every generator :func:`capture` recorded back to its saved state.

    Raises:
        ValueError: the saved CUDA states are for a different number of devices.
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
            raise ValueError(msg)
        torch.cuda.set_rng_state_all(cuda)
