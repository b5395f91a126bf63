"""Data-parallel training on torch.distributed: 2 gloo processes under torchrun on CPU.

The slow tests run ``tests/_dist_script.py`` as 2 ranks uninterrupted (forked with torchrun's
variables, ``_torchrun.script_ranks``), launch it with torchrun as two 1-rank "nodes" (killed and
launched again: DDP's kill-and-resume test, compared with the uninterrupted run; torchrun
restarting killed workers itself is tested with FSDP in ``test_dist_fsdp.py``) and launch the CLI
with torchrun; the others check the rank arithmetic (sharding, positions, gathering) in this
process, without a process group.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from fsm_trainer import TrainState, run
from fsm_trainer.checkpoint import _for_rank, load_checkpoint
from fsm_trainer.dist import collect_outputs, collect_results, destroy_dist, interleave_results, rescale_position
from fsm_trainer.sampler import ResumableSampler, epoch_order

sys.path.insert(0, str(Path(__file__).parent))
from _torchrun import ROOT, SCRIPT, TORCHRUN, finish, free_port, script_ranks, start, tensors_equal, torchrun


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """One uninterrupted 2-rank run of the test script (forked ranks), shared by the tests that read its work dir."""
    wd = tmp_path_factory.mktemp("dist") / "ref"
    script_ranks(str(wd))
    return wd


# --------------------------------------------------------------------------- 2 processes


@pytest.mark.slow
def test_two_ranks_learn_stay_in_sync_and_write_once(reference):
    """Loss falls, both ranks end with equal weights, logs and checkpoints exist once (rank 0 wrote them)."""
    wd = reference
    r0, r1 = (load_file(str(wd / f"final_rank{r}.safetensors")) for r in (0, 1))
    assert tensors_equal(r0, r1) == []
    logs, jsons = sorted(wd.glob("*.log")), sorted(wd.glob("*.log.json"))
    assert len(logs) == 1 and len(jsons) == 1, os.listdir(wd)
    records = [json.loads(line) for line in jsons[0].read_text().splitlines()]
    losses = [rec["loss"] for rec in records if rec.get("mode") == "train"]
    assert len(losses) == 6 and losses[-1] < 0.7 * losses[0], losses
    assert sorted(p.name for p in wd.iterdir() if p.is_dir()) == [
        "best_accuracy_epoch_3", "epoch_2", "epoch_3", "iter_12", "iter_15"]
    assert not [p for p in wd.iterdir() if ".tmp-" in p.name]
    ck = load_checkpoint(wd / "iter_12")
    assert ck.data == {"kind": "epoch", "epoch": 2, "batches": 2, "world_size": 2}
    assert len(ck.rng["ranks"]) == 2 and len(ck.log_buffer["ranks"]) == 2


@pytest.mark.slow
def test_eval_gathers_all_ranks_in_dataset_order(reference):
    """15 val samples on 2 ranks (one padded): the gathered metrics equal a one-process evaluation."""
    result = json.loads((reference / "result.json").read_text())
    assert result["hook"] == result["direct"]
    assert (result["iter"], result["epoch"], result["world"]) == (15, 3, 2)


@pytest.mark.slow
def test_resume_two_rank_checkpoint_on_one_process(reference, tmp_path, caplog):
    """A mid-epoch checkpoint of 2 ranks resumes in one process: position rescaled, run completes."""
    from _dist_script import build

    kw = build(distributed=False)
    table = kw.pop("table")
    shutil.copytree(reference / "iter_12", tmp_path / "from" / "iter_12")
    with caplog.at_level(logging.WARNING, logger="fsm_trainer"):
        final = run(TrainState(), table, work_dir=tmp_path / "wd", resume=tmp_path / "from" / "iter_12", **kw)
    assert "saved by 2 ranks mid-epoch after 2 batches per rank" in caplog.text
    # 12 iterations done; the third epoch (index 2) continues at batch 4 of its 10 in one process.
    assert (final.epoch, final.iter) == (3, 12 + 6)


@pytest.mark.slow
def test_cli_train_with_pytorch_launcher(tmp_path):
    """``torchrun -m fsm_trainer.cli train CONFIG --launcher pytorch`` trains; rank 0 alone writes."""
    r = torchrun("-m", "fsm_trainer.cli", "train", str(ROOT / "configs" / "digits_mlp.py"), "--launcher", "pytorch",
                 "--work-dir", str(tmp_path / "wd"), "--progress", "off", "--cfg-options", "runner.max_epochs=1",
                 "data.samples_per_gpu=256", "log_config.interval=1", "dist_params.backend=gloo")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    wd = tmp_path / "wd"
    assert len(list(wd.glob("*.log.json"))) == 1
    assert (wd / "epoch_1").is_dir() and (wd / "config.json").is_file()
    assert r.stdout.count("done: epoch 1") == 1  # rank 1 logs errors only


# --------------------------------------------------------------------------- rank arithmetic


@pytest.mark.parametrize(("n", "world"), [(10, 2), (11, 2), (7, 3), (2, 4), (0, 2)])
def test_ranks_partition_the_padded_epoch_order(n, world):
    """Interleaving the ranks' slices gives the epoch's global order, padded by its head."""
    parts = [list(ResumableSampler(n, seed=3, num_replicas=world, rank=r)) for r in range(world)]
    assert len({len(p) for p in parts}) == 1 and len(parts[0]) == -(-n // world)
    order = epoch_order(n, 3, 0).tolist()
    merged = [i for group in zip(*parts, strict=True) for i in group]
    assert merged[:n] == order and set(merged) == set(order)
    assert interleave_results(parts, n) == order


def test_rank_position_is_a_suffix_of_the_rank_slice():
    """set_position(epoch, k) on a rank continues its own slice after k samples."""
    for rank in (0, 1):
        s = ResumableSampler(11, seed=5, num_replicas=2, rank=rank)
        s.set_epoch(4)
        full = list(s)
        s.set_position(4, 3)
        assert list(s) == full[3:]


def test_one_rank_sampler_is_the_single_process_sampler():
    """num_replicas=1 keeps the single-process order and generator seeds (old checkpoints resume)."""
    g1, g2 = torch.Generator(), torch.Generator()
    a = ResumableSampler(9, seed=2, loader_generator=g1)
    b = ResumableSampler(9, seed=2, loader_generator=g2, num_replicas=1, rank=0)
    a.set_position(1, 4)
    b.set_position(1, 4)
    assert list(a) == list(b) and g1.initial_seed() == g2.initial_seed()


def test_bad_rank_arguments_are_refused():
    """A rank outside [0, num_replicas) or num_replicas < 1 raises."""
    with pytest.raises(ValueError, match="rank must be"):
        ResumableSampler(4, num_replicas=2, rank=2)
    with pytest.raises(ValueError, match="num_replicas"):
        ResumableSampler(4, num_replicas=0)


def test_rescaled_position_never_repeats_a_sample():
    """Resumed on another world size, the skipped global prefix covers what was consumed, by < one round."""
    for k in range(8):
        for old in (1, 2, 3, 4):
            for new in (1, 2, 3, 4):
                k2 = rescale_position(k, old, new)
                assert k2 * new >= k * old > (k2 - 1) * new or k == k2 == 0


def test_destroy_dist_frees_what_holds_the_group_then_leaves_it(tmp_path):
    """Objects in reference cycles that hold the group are freed before the group is destroyed;
    without a group it does nothing."""
    import gc
    import weakref

    import torch.distributed as dist

    destroy_dist()
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'init'}", rank=0, world_size=1)
    try:
        class Holder:
            pass

        holder = Holder()
        holder.cycle, holder.group = holder, dist.group.WORLD  # type: ignore[attr-defined]
        gone = weakref.ref(holder)
        del holder
        gc.disable()  # only destroy_dist's own collection may free it
        try:
            destroy_dist()
        finally:
            gc.enable()
        assert gone() is None
        assert not dist.is_initialized()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def test_collect_in_one_process():
    """Without a process group, collecting keeps the first ``size`` results."""
    assert collect_results([1, 2, 3], 2) == [1, 2]
    assert collect_outputs(torch.arange(6).reshape(3, 2), 2).tolist() == [[0, 1], [2, 3]]
    assert collect_outputs([5, 6, 7], 3) == [5, 6, 7]


def test_per_rank_entries_fall_back_to_rank_zero():
    """Saved per-rank states: this rank's on the same world size, rank 0's on another."""
    saved = {"torch": "r0", "ranks": ["a", "b"]}
    assert _for_rank(saved, 1, 2) == "b"
    assert _for_rank(saved, 1, 3) == {"torch": "r0"}
    assert _for_rank({"torch": "x"}, 0, 1) == {"torch": "x"}


# --------------------------------------------------------------------------- two "nodes"


def _two_nodes(wd: Path, *extra: str, timeout: float = 180) -> list[subprocess.CompletedProcess[str]]:
    """Two torchrun launches, ``--nnodes 2 --node-rank 0|1``, one process each, c10d rendezvous on localhost."""
    port = free_port()
    procs = [start([TORCHRUN, "--nnodes", "2", "--nproc-per-node", "1", "--node-rank", str(n), "--rdzv-backend", "c10d",
                    "--rdzv-endpoint", f"127.0.0.1:{port}", "--rdzv-id", "fsm", SCRIPT, str(wd), *extra])
             for n in (0, 1)]
    try:
        return [finish(p, timeout) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:  # the other launch failed: stop this one as finish stops a launch
                with contextlib.suppress(AssertionError):
                    finish(p, 0)


@pytest.mark.slow
def test_two_nodes_train_are_killed_and_resume_bit_identical(reference, tmp_path):
    """Two launches as two nodes (c10d rendezvous on localhost, gloo), killed mid-epoch (a worker
    SIGKILLed, the job fails on both nodes) and launched again on both nodes: the job resumes from
    the last checkpoint and ends bit-identical to one uninterrupted 2-rank launch (so the two nodes
    also train as that launch does)."""
    killed = tmp_path / "nodes-killed"
    assert any(r.returncode != 0 for r in _two_nodes(killed, "--kill-at", "9"))
    runs = _two_nodes(killed)
    out = "".join(r.stdout + r.stderr for r in runs)
    assert all(r.returncode == 0 for r in runs), out[-4000:]
    assert "resumed from" in out and "iter_8" in out
    for rank in (0, 1):
        want = load_file(str(reference / f"final_rank{rank}.safetensors"))
        assert tensors_equal(load_file(str(killed / f"final_rank{rank}.safetensors")), want) == [], rank
