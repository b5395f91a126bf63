"""Launching ``tests/_dist_script.py`` (or the CLI) as 2 gloo processes under torchrun on CPU,
and comparing the tensors those runs save."""

from __future__ import annotations

import multiprocessing
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


def free_port() -> int:
    """A TCP port free on localhost now (for a rendezvous or a process group's store)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


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


PRELOAD = ["torch", "torch._dynamo", "_train_script", "_dist_script"]
"""What the tests' forkserver imports once: torch, what an optimizer step imports
(``torch._dynamo``), and the test scripts its processes run."""


def forkserver() -> multiprocessing.context.ForkServerContext:
    """The multiprocessing forkserver context of the tests. Its server (one per test process,
    started by the first process it forks) has imported :data:`PRELOAD`, so a process forked from
    it does not start an interpreter and import torch anew."""
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(PRELOAD)
    return ctx


def spawn(fn: Callable[..., None], *args: object, nprocs: int = 2, timeout: float = 180) -> None:
    """``torch.multiprocessing.spawn(fn, args, nprocs)``, the processes forked from
    :func:`forkserver`. A process that fails stops the others and raises here; past ``timeout``
    all are killed and the test fails."""
    import time

    import torch.multiprocessing as mp

    forkserver()
    context = mp.start_processes(fn, args=args, nprocs=nprocs, join=False, start_method="forkserver")
    deadline = time.monotonic() + timeout
    while not context.join(timeout=max(0.0, deadline - time.monotonic())):
        if time.monotonic() >= deadline:
            for process in context.processes:
                process.kill()
            raise AssertionError(f"{fn.__name__} on {nprocs} processes still running after {timeout} s")


def _script_rank(rank: int, world: int, port: int, argv: list[str]) -> None:
    os.environ.update({"RANK": str(rank), "LOCAL_RANK": str(rank), "WORLD_SIZE": str(world),
                       "LOCAL_WORLD_SIZE": str(world), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
                       "TORCHELASTIC_RESTART_COUNT": "0", "OMP_NUM_THREADS": "1"})
    import _dist_script

    assert _dist_script.main(argv) == 0


def script_ranks(*argv: str, nprocs: int = 2) -> None:
    """``tests/_dist_script.py ARGV`` as ``nprocs`` ranks with the variables torchrun sets
    (rank, world size, a free port on localhost), forked from :func:`forkserver` rather than
    started by torchrun: for the uninterrupted runs the torchrun launches are compared with."""
    spawn(_script_rank, nprocs, free_port(), list(argv), nprocs=nprocs)
