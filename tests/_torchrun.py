"""Launching ``tests/_dist_script.py`` (or the CLI) as 2 gloo processes under torchrun on CPU,
and comparing the tensors those runs save."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import torch

HERE = Path(__file__).parent
ROOT = HERE.parent
SCRIPT = str(HERE / "_dist_script.py")
TORCHRUN = str(Path(sys.executable).with_name("torchrun"))


def launch_env() -> dict[str, str]:
    """The environment of a launch: one thread per rank, fixed hashing, this checkout importable."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0",
            "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}


def torchrun(*args: str, restarts: int = 0, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``torchrun --standalone --nproc-per-node 2 ARGS``, run to the end."""
    cmd = [TORCHRUN, "--standalone", "--nproc-per-node", "2", "--max-restarts", str(restarts), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=launch_env(), check=False)


def tensors_equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> list[str]:
    """Names whose tensors differ (or exist on one side only)."""
    return sorted(k for k in a.keys() | b.keys() if k not in a or k not in b or not torch.equal(a[k], b[k]))


def spawn(fn: Callable[..., None], *args: object, nprocs: int = 2, preload: tuple[str, ...] = ("torch",)) -> None:
    """``torch.multiprocessing.spawn(fn, args, nprocs)``, the processes forked from a
    multiprocessing forkserver that imports ``preload`` once (not a new interpreter each;
    ``torch._dynamo`` is what an optimizer step imports)."""
    import multiprocessing

    import torch.multiprocessing as mp

    multiprocessing.set_forkserver_preload(list(preload))
    mp.start_processes(fn, args=args, nprocs=nprocs, join=True, start_method="forkserver")
