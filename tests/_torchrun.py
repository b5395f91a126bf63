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


def start(cmd: list[str]) -> subprocess.Popen[str]:
    """``cmd`` (a torchrun launch), started."""
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=launch_env())


def finish(proc: subprocess.Popen[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Wait for a launch. Past ``timeout``, fail after stopping it: SIGTERM makes torchrun stop
    its workers (they run in sessions of their own), SIGKILL if it has not ended a minute later."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.terminate()
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            out, err = "", ""
        raise AssertionError(f"{proc.args} still running after {timeout} s\n{out[-2000:]}{err[-2000:]}") from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def torchrun(*args: str, restarts: int = 0, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``torchrun --standalone --nproc-per-node 2 ARGS``, run to the end."""
    cmd = [TORCHRUN, "--standalone", "--nproc-per-node", "2", "--max-restarts", str(restarts), *args]
    return finish(start(cmd), timeout)


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
