"""fsm_trainer.mmcv.dist_utils: mmcv 1.7.2's init_dist, get_dist_info, master_only, allreduce_grads/params.

In this process: the single-process behaviour and the errors. The slow tests start 2 gloo
processes which, for each launcher in turn, take the variables that launcher sets (torchrun's,
slurm's and Open MPI's, the others removed) and check that init_dist joins them and that the
all-reduce helpers average over the ranks.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from _torchrun import free_port

from fsm_trainer.errors import FsmTrainerError
from fsm_trainer.mmcv.dist_utils import (
    DistLaunchError,
    allreduce_grads,
    allreduce_params,
    get_dist_info,
    init_dist,
    master_only,
)

ROOT = Path(__file__).resolve().parent.parent
# What init_dist reads or sets; cleared so that the tests see only what they set.
DIST_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "SLURM_PROCID", "SLURM_NTASKS",
             "SLURM_NODELIST", "SLURM_LOCALID", "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_RANK",
             "TORCHELASTIC_RESTART_COUNT")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in DIST_VARS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_single_process_rank_0_of_1_and_no_op_all_reduce() -> None:
    """Without a process group: (0, 1), master_only runs, the all-reduce helpers change nothing."""
    assert not dist.is_initialized()
    assert get_dist_info() == (0, 1)
    calls: list[int] = []

    @master_only
    def save(x: int) -> int:
        calls.append(x)
        return x * 2

    assert save(3) == 6 and calls == [3]
    assert save.__name__ == "save"
    layer = torch.nn.Linear(3, 2)
    layer.weight.grad = torch.full((2, 3), 4.0)
    before = [p.detach().clone() for p in layer.parameters()]
    allreduce_grads(list(layer.parameters()))
    allreduce_params(list(layer.parameters()), coalesce=False)
    assert torch.equal(layer.weight.grad, torch.full((2, 3), 4.0))
    assert all(torch.equal(a, b) for a, b in zip(before, layer.parameters(), strict=True))


def test_unknown_launcher_and_argument_are_refused_naming_the_allowed_ones(clean_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(DistLaunchError, match="unknown launcher 'torchrun'; allowed: 'pytorch', 'slurm', 'mpi'") as info:
        init_dist("torchrun")
    assert isinstance(info.value, ValueError) and isinstance(info.value, FsmTrainerError)  # mmcv: ValueError
    with pytest.raises(DistLaunchError, match=r"unknown argument\(s\) port; allowed: launcher, backend, timeout"):
        init_dist("pytorch", port=29500)
    with pytest.raises(DistLaunchError, match="timeout=-1 is not allowed"):
        init_dist("slurm", timeout=-1)
    assert not dist.is_initialized()


@pytest.mark.parametrize(("launcher", "names"), [
    ("pytorch", "RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT"),
    ("slurm", "SLURM_PROCID, SLURM_NTASKS, SLURM_NODELIST"),
    ("mpi", "OMPI_COMM_WORLD_LOCAL_RANK, OMPI_COMM_WORLD_SIZE, OMPI_COMM_WORLD_RANK"),
])
def test_missing_launcher_environment_is_named(clean_env: pytest.MonkeyPatch, launcher: str, names: str) -> None:
    with pytest.raises(DistLaunchError, match=f"environment variable\\(s\\) {names},"):
        init_dist(launcher, backend="gloo")
    assert not dist.is_initialized()


def test_mpi_needs_master_addr_and_slurm_without_scontrol_asks_for_it(clean_env: pytest.MonkeyPatch,
                                                                       tmp_path: Path) -> None:
    clean_env.setenv("OMPI_COMM_WORLD_LOCAL_RANK", "0")
    clean_env.setenv("OMPI_COMM_WORLD_SIZE", "1")
    clean_env.setenv("OMPI_COMM_WORLD_RANK", "0")
    with pytest.raises(DistLaunchError, match="needs MASTER_ADDR"):
        init_dist("mpi", backend="gloo")
    clean_env.setenv("SLURM_PROCID", "0")
    clean_env.setenv("SLURM_NTASKS", "1")
    clean_env.setenv("SLURM_NODELIST", "node[1-2]")
    clean_env.setenv("PATH", str(tmp_path))  # no scontrol
    with pytest.raises(DistLaunchError, match=r"SLURM_NODELIST='node\[1-2\]' with scontrol .*set MASTER_ADDR"):
        init_dist("slurm", backend="gloo", port=free_port())
    assert not dist.is_initialized()


def test_pytorch_launcher_in_one_process_starts_a_group_of_one(clean_env: pytest.MonkeyPatch) -> None:
    """torchrun's variables for a world of 1: the group starts (nccl falls back to gloo without CUDA)."""
    for name, value in {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1",
                        "MASTER_PORT": str(free_port())}.items():
        clean_env.setenv(name, value)
    try:
        init_dist("pytorch", backend="gloo")
        assert dist.is_initialized() and get_dist_info() == (0, 1)
        assert dist.get_backend() == "gloo"
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


WORKER = r'''
import json, os, sys
from datetime import timedelta
import torch
from fsm_trainer.mmcv.dist_utils import allreduce_grads, allreduce_params, get_dist_info, init_dist, master_only

# For each launcher in turn: its variables for this process (the others' removed), then a group of 2.
plan, cleared, out = json.loads(sys.argv[1]), sys.argv[2].split(","), sys.argv[3]
for launcher, variables, port in plan:
    for name in cleared:
        os.environ.pop(name, None)
    os.environ.update(variables)
    kwargs = {"port": port} if launcher == "slurm" else {"timeout": timedelta(seconds=60)}
    init_dist(launcher, backend="gloo", **kwargs)
    rank, world = get_dist_info()
    env = {k: os.environ[k] for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT")}
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    for i, p in enumerate(model.parameters()):
        p.grad = torch.full_like(p, float(10 * rank + i))
        with torch.no_grad():
            p.fill_(float(rank + 1))
    model[0].bias.grad = None  # no gradient: left out on every rank
    model[1].bias.requires_grad_(False)
    grads = {}
    for coalesce, bucket in ((True, -1), (False, -1), (True, 0.000001)):
        allreduce_grads(list(model.parameters()), coalesce=coalesce, bucket_size_mb=bucket if bucket > 0 else -1)
        grads[f"{coalesce},{bucket}"] = [p.grad.tolist() if p.grad is not None else None for p in model.parameters()]
    model[1].num_batches_tracked.fill_(3 + rank)  # 3 and 4: the floor of the mean is 3
    allreduce_params(list(model.parameters()) + list(model.buffers()), bucket_size_mb=1)
    params = [p.tolist() for p in model.parameters()]
    buffers = [b.tolist() for b in model.buffers()]
    first = master_only(lambda: rank)()
    json.dump(dict(rank=rank, world=world, env=env, port=str(port), grads=grads, params=params, buffers=buffers,
                   first=first), open(f"{out}/{launcher}-rank{rank}.json", "w"))
    torch.distributed.destroy_process_group()
'''
LAUNCHERS = ("pytorch", "slurm", "mpi")


def variables(launcher: str, rank: int, port: int) -> dict[str, str]:
    """What ``launcher`` sets for process ``rank`` of 2 (slurm: the port is init_dist's argument)."""
    if launcher == "pytorch":
        return dict(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                    MASTER_PORT=str(port))
    if launcher == "mpi":
        return dict(OMPI_COMM_WORLD_RANK=str(rank), OMPI_COMM_WORLD_SIZE="2", OMPI_COMM_WORLD_LOCAL_RANK=str(rank),
                    MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    return dict(SLURM_PROCID=str(rank), SLURM_NTASKS="2", SLURM_NODELIST="localhost", SLURM_LOCALID=str(rank),
                MASTER_ADDR="127.0.0.1")


@pytest.fixture(scope="module")
def launched(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, object]]]:
    """WORKER as 2 processes, which join a group with each launcher's variables in turn (the
    variables of one launcher only, on a port of its own); their JSON results by launcher."""
    tmp_path = tmp_path_factory.mktemp("launchers")
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    ports = {launcher: free_port() for launcher in LAUNCHERS}
    env = {k: v for k, v in os.environ.items() if k not in DIST_VARS}
    env.update(PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}", OMP_NUM_THREADS="1",
               CUDA_VISIBLE_DEVICES="")
    procs = []
    for rank in range(2):
        plan = [(launcher, variables(launcher, rank, port), port) for launcher, port in ports.items()]
        procs.append(subprocess.Popen([sys.executable, str(script), json.dumps(plan), ",".join(DIST_VARS), str(tmp_path)],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outputs = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        outputs.append((p.returncode, err))
    assert all(code == 0 for code, _ in outputs), [err[-2000:] for _, err in outputs]
    return {launcher: [json.loads((tmp_path / f"{launcher}-rank{r}.json").read_text()) for r in range(2)]
            for launcher in LAUNCHERS}


@pytest.mark.slow
@pytest.mark.parametrize("launcher", LAUNCHERS)
def test_two_ranks_join_and_all_reduce_averages(launched: dict[str, list[dict[str, object]]], launcher: str) -> None:
    """Each launcher's variables give ranks 0 and 1 of 2; gradients and parameters become the mean of the ranks'
    (the same with coalescing, without, and with tiny buckets); master_only runs on rank 0 only."""
    results: list[dict] = launched[launcher]
    for rank, r in enumerate(results):
        assert (r["rank"], r["world"]) == (rank, 2)
        assert r["env"]["RANK"] == str(rank) and r["env"]["WORLD_SIZE"] == "2"
        assert r["env"]["LOCAL_RANK"] == str(rank)
        assert r["first"] == (0 if rank == 0 else None)
    # Gradient i is 10 * rank + i: the mean is 5 + i (reduced three times, the mean stays the mean). Bias 0 has
    # none; the BatchNorm bias does not require a gradient, so each rank keeps its own.
    for key in ("True,-1", "False,-1", "True,1e-06"):
        for rank, r in enumerate(results):
            weight, bias, bn_weight, bn_bias = r["grads"][key]
            assert weight == [[5.0] * 3] * 2 and bias is None and bn_weight == [7.0] * 2
            assert bn_bias == [10.0 * rank + 3] * 2
    for r in results:
        assert r["params"] == [[[1.5] * 3] * 2, [1.5] * 2, [1.5] * 2, [1.5] * 2]  # the mean of 1 and 2
        running_mean, running_var, tracked = r["buffers"]
        assert running_mean == [0.0, 0.0] and running_var == [1.0, 1.0] and tracked == 3
    assert all(r["env"]["MASTER_PORT"] == r["port"] for r in results)  # slurm: from init_dist's port argument
