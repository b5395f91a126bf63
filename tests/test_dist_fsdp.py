"""Sharded data parallelism (FSDP) on torch.distributed: 2 gloo processes on CPU running
``tests/_dist_script.py --fsdp`` (uninterrupted as forked ranks; killed and restarted under
torchrun) and the CLI under torchrun, 2 spawned processes comparing FSDP with DDP, and the
sharding pieces in this process."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from fsm_trainer import TrainState, run
from fsm_trainer.checkpoint import load_checkpoint
from fsm_trainer.dist import destroy_dist

sys.path.insert(0, str(Path(__file__).parent))
from _torchrun import ROOT, SCRIPT, script_ranks, spawn, tensors_equal, torchrun


@pytest.fixture(scope="module")
def fsdp_reference(tmp_path_factory):
    """One uninterrupted 2-rank FSDP run (with an EMA hook) of the test script, as forked ranks."""
    wd = tmp_path_factory.mktemp("fsdp") / "ref"
    script_ranks(str(wd), "--fsdp")
    return wd


@pytest.mark.slow
def test_fsdp_trains_evaluates_and_saves_full_state(fsdp_reference):
    """FSDP: loss falls, eval over the sharded val set equals every-rank direct eval, the ranks'
    buffers agree, and rank 0 alone writes checkpoints holding full, unsharded state."""
    wd = fsdp_reference
    records = [json.loads(line) for line in next(wd.glob("*.log.json")).read_text().splitlines()]
    losses = [rec["loss"] for rec in records if rec.get("mode") == "train"]
    assert len(losses) == 6 and losses[-1] < 0.7 * losses[0], losses
    assert all("grad_norm" in rec for rec in records if rec.get("mode") == "train")
    result = json.loads((wd / "result.json").read_text())
    assert result["hook"] == result["direct"] and (result["iter"], result["epoch"]) == (15, 3)
    b0, b1 = (load_file(str(wd / f"buffers_rank{r}.safetensors")) for r in (0, 1))
    assert tensors_equal(b0, b1) == []
    assert len(list(wd.glob("*.log"))) == 1
    ck = load_checkpoint(wd / "epoch_3")
    final = load_file(str(wd / "final_full.safetensors"))
    assert set(ck.model) == {k[len("model."):] for k in final if k.startswith("model.")}
    assert ck.model["net.0.weight"].shape == (16, 6)  # full, not a shard
    assert ck.optimizer["param_groups"][0]["params"] == list(range(6))
    assert sorted(ck.optimizer["state"]) == list(range(6))
    assert ck.optimizer["state"][0]["momentum_buffer"].shape == (16, 6)
    assert ck.hooks["EMAHook"]["ema"]["net.0.weight"].shape == (16, 6)


@pytest.mark.slow
def test_fsdp_killed_worker_resumes_bit_identical(fsdp_reference, tmp_path):
    """FSDP, rank 1 SIGKILLed mid-epoch, restarted by torchrun: the gathered final weights,
    momentum buffers and buffers equal the uninterrupted run's."""
    wd = tmp_path / "killed"
    r = torchrun(SCRIPT, str(wd), "--fsdp", "--kill-at", "9", restarts=1)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out[-4000:]
    assert "resumed from" in out and "iter_8" in out
    got, want = (load_file(str(d / "final_full.safetensors")) for d in (wd, fsdp_reference))
    assert len(want) == 15 and tensors_equal(got, want) == []
    ema_got, ema_want = (load_checkpoint(d / "epoch_3").hooks["EMAHook"]["ema"] for d in (wd, fsdp_reference))
    assert tensors_equal(ema_got, ema_want) == []


@pytest.mark.slow
def test_fsdp_checkpoint_resumes_in_one_process(fsdp_reference, tmp_path):
    """The full state dicts of an FSDP checkpoint load into an unsharded model, optimizer and EMA."""
    from _dist_script import build

    kw = build(distributed=False, ema=True)
    table = kw.pop("table")
    shutil.copytree(fsdp_reference / "epoch_2", tmp_path / "from" / "epoch_2")
    final = run(TrainState(), table, work_dir=tmp_path / "wd", resume=tmp_path / "from" / "epoch_2", **kw)
    assert (final.epoch, final.iter) == (3, 10 + 10)
    assert kw["optimizer"].state_dict()["state"][0]["momentum_buffer"].shape == (16, 6)


@pytest.mark.slow
def test_cli_train_with_fsdp_wrapper(tmp_path):
    """``model_wrapper_cfg=dict(type="MMFullyShardedDataParallel")`` under torchrun trains and checkpoints."""
    r = torchrun("-m", "fsm_trainer.cli", "train", str(ROOT / "configs" / "digits_mlp.py"), "--launcher", "pytorch",
                 "--work-dir", str(tmp_path / "wd"), "--progress", "off", "--cfg-options", "runner.max_epochs=1",
                 "data.samples_per_gpu=256", "dist_params.backend=gloo",
                 "model_wrapper_cfg.type=MMFullyShardedDataParallel", "model_wrapper_cfg.shard_modules=[Linear]")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    ck = load_checkpoint(tmp_path / "wd" / "epoch_1")
    assert ck.state.epoch == 1 and all(v.dim() >= 1 for k, v in ck.model.items() if "weight" in k)
    assert r.stdout.count("done: epoch 1") == 1


# --------------------------------------------------------------------------- in one process


def test_distributed_values_are_checked_before_any_work():
    from fsm_trainer import compile_workflow
    from fsm_trainer.dist import check_strategy

    assert [check_strategy(v) for v in (False, None, True, "ddp", "FSDP")] == [None, None, "ddp", "ddp", "fsdp"]
    with pytest.raises(ValueError, match=r"distributed='zero3'; allowed: False, True \(= 'ddp'\), 'ddp', 'fsdp'"):
        run(TrainState(), compile_workflow([("train", 1)], max_epochs=1), data_loaders=[[1]],
            train_step=lambda b: {}, val_step=lambda b: {}, distributed="zero3")
    with pytest.raises(RuntimeError, match="needs a process group"):
        run(TrainState(), compile_workflow([("train", 1)], max_epochs=1), data_loaders=[[1]],
            model=torch.nn.Linear(2, 2), train_step=lambda b: {}, val_step=lambda b: {}, distributed="fsdp")


def test_rebuilt_optimizer_keeps_groups_and_hyperparameters():
    """The optimizer rebuilt on replaced parameters (as FSDP makes) keeps its class, groups and values."""
    import copy

    from fsm_trainer.dist import rebuild_optimizer

    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    opt = torch.optim.SGD([{"params": model[0].parameters(), "lr": 0.5},
                           {"params": model[1].parameters(), "weight_decay": 0.1}], lr=0.1, momentum=0.9)
    names = {id(p): n for n, p in model.named_parameters()}
    replaced = copy.deepcopy(model)
    new = rebuild_optimizer(opt, names, replaced)
    assert type(new) is torch.optim.SGD and new.defaults == opt.defaults
    assert [g["params"] for g in new.param_groups] == [list(replaced[0].parameters()), list(replaced[1].parameters())]
    for g_new, g_old in zip(new.param_groups, opt.param_groups, strict=True):
        assert {k: v for k, v in g_new.items() if k != "params"} == {k: v for k, v in g_old.items() if k != "params"}
    with pytest.raises(ValueError, match="not a parameter of the model"):
        rebuild_optimizer(torch.optim.SGD([torch.nn.Parameter(torch.ones(7))], lr=1), names, replaced)
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    with pytest.raises(ValueError, match="already has state"):
        rebuild_optimizer(opt, names, replaced)


def test_model_wrapper_cfg_is_validated():
    from fsm_trainer.config import ConfigError
    from fsm_trainer.config.validate import _check_wrapper, wrapper_kwargs

    assert _check_wrapper(None) == [] and _check_wrapper({"type": "FSDP", "shard_modules": ["Linear"]}) == []
    assert _check_wrapper({"type": "ZeRO"}) == [
        "model_wrapper_cfg.type: 'ZeRO' is not one of MMDistributedDataParallel, DistributedDataParallel, DDP, "
        "MMFullyShardedDataParallel, FullyShardedDataParallel, FSDP"]
    assert _check_wrapper({"type": "DDP", "shard_modules": []}) == [
        "model_wrapper_cfg.shard_modules: unknown key for DDP; allowed: type"]
    cfg = type("Cfg", (), {"model_wrapper_cfg": {"type": "FSDP", "shard_modules": ["Linear", "Block"]}})()
    with pytest.raises(ConfigError, match="'Block' is not the class of a submodule of the model; present: Linear, Sequential"):
        wrapper_kwargs(cfg, torch.nn.Sequential(torch.nn.Linear(2, 2)))
    cfg.model_wrapper_cfg = {"type": "MMFullyShardedDataParallel", "shard_modules": ["Linear"]}
    assert wrapper_kwargs(cfg, torch.nn.Sequential(torch.nn.Linear(2, 2))) == {
        "strategy": "fsdp", "shard_modules": (torch.nn.Linear,)}


def _accumulate_worker(rank: int, world: int, init_file: str, out_file: str) -> None:
    """DDP and FSDP runs with and without cumulative_iters=2 on the same data."""
    import torch.distributed as dist
    from torch.distributed.algorithms.ddp_comm_hooks.default_hooks import allreduce_hook

    from fsm_trainer import Hook, compile_workflow
    from fsm_trainer.dist import fsdp_state_dicts
    from fsm_trainer.hooks import optimizer_hook
    from fsm_trainer.sampler import resumable_loader

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    g = torch.Generator().manual_seed(0)
    data = torch.utils.data.TensorDataset(torch.randn(48, 5, generator=g), torch.randint(0, 3, (48,), generator=g))
    results, reduces = {}, {}
    for strategy in ("ddp", "fsdp"):
        for k in (1, 2):
            torch.manual_seed(rank)  # different on each rank: prepare() must broadcast rank 0's
            model = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
            opt = torch.optim.SGD(model.parameters(), lr=0.1)
            seen: list = []

            def count(ctx, seen=seen):
                seen.append(ctx)
                if ctx.parallel_model is not None:
                    def hook(state, bucket):
                        state.append(1)
                        return allreduce_hook(None, bucket)
                    ctx.parallel_model.register_comm_hook(reduces.setdefault((strategy, k), []), hook)
                return Hook("Count", "LOWEST", {})

            run(TrainState(), compile_workflow([("train", 1)], max_epochs=1), model=model, optimizer=opt,
                data_loaders=[resumable_loader(data, 4, distributed=True)], loss_fn=torch.nn.functional.cross_entropy,
                hooks=[optimizer_hook(cumulative_iters=k), count], distributed=strategy)
            if strategy == "fsdp":
                sd = fsdp_state_dicts(model, seen[0].optimizer)[0]
            else:
                sd = {n: v.detach().clone() for n, v in model.state_dict().items()}
            results[(strategy, k)] = sd
    # A single-process checkpoint (SGD with momentum) loads into a sharded model and optimizer.
    from fsm_trainer import checkpoint as C
    from fsm_trainer.dist import shard_model

    torch.manual_seed(0)
    plain = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Linear(8, 3))
    plain_opt = torch.optim.SGD(plain.parameters(), lr=0.1, momentum=0.9)
    plain(torch.ones(2, 5)).sum().backward()
    plain_opt.step()
    ck_dir = Path(out_file).parent / "single"
    if rank == 0:
        C.save_checkpoint(ck_dir, "epoch_1", state=TrainState(epoch=1), table=compile_workflow([("train", 1)], max_epochs=2),
                          model=plain.state_dict(), optimizer=plain_opt.state_dict())
    dist.barrier()
    torch.manual_seed(1)
    sharded = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Linear(8, 3))
    sharded_opt = shard_model(sharded, torch.optim.SGD(sharded.parameters(), lr=0.1, momentum=0.9))
    ck = C.load_checkpoint(ck_dir / "epoch_1")
    C.load_model_state(sharded, ck.model)
    C.load_optimizer_state(sharded, sharded_opt, ck.optimizer)
    loaded = fsdp_state_dicts(sharded, sharded_opt)
    refused = ""
    lin = torch.nn.Linear(5, 3)
    try:
        run(TrainState(), compile_workflow([("train", 1)], max_epochs=1), model=lin,
            optimizer=torch.optim.SGD(lin.parameters(), lr=1), data_loaders=[resumable_loader(data, 4, distributed=True)],
            loss_fn=torch.nn.functional.cross_entropy, hooks=[optimizer_hook(detect_anomalous_params=True)],
            distributed="fsdp")
    except ValueError as exc:
        refused = str(exc)
    if rank == 0:
        torch.save({"results": {f"{a}/{b}": v for (a, b), v in results.items()}, "refused": refused,
                    "single": (plain.state_dict(), plain_opt.state_dict()), "loaded": loaded,
                    "reduces": {f"{a}/{b}": len(v) for (a, b), v in reduces.items()}}, out_file)
    destroy_dist()


@pytest.mark.slow
def test_ddp_and_fsdp_agree_and_accumulation_reduces_once_per_group(tmp_path):
    """FSDP ends where DDP ends (to rounding), with and without gradient accumulation, from
    different per-rank initialisations (rank 0's is broadcast); with cumulative_iters=2 DDP
    all-reduces in every second backward only; a single-process checkpoint loads into a sharded
    model and optimizer exactly."""
    out = tmp_path / "out.pt"
    spawn(_accumulate_worker, 2, str(tmp_path / "init"), str(out))
    got = torch.load(out, weights_only=True)
    r = got["results"]
    for k in (1, 2):
        assert r[f"ddp/{k}"].keys() == r[f"fsdp/{k}"].keys()
        for n in r[f"ddp/{k}"]:
            torch.testing.assert_close(r[f"fsdp/{k}"][n], r[f"ddp/{k}"][n], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(r["ddp/1"]["0.weight"], r["ddp/2"]["0.weight"])
    assert got["reduces"] == {"ddp/1": 6, "ddp/2": 3}  # 48 samples / (4 x 2 ranks) = 6 iterations
    assert "detect_anomalous_params cannot check a model sharded by FSDP" in got["refused"]
    (msd, osd), (lmsd, losd) = got["single"], got["loaded"]
    assert tensors_equal(msd, lmsd) == []
    assert losd["param_groups"] == osd["param_groups"]
    assert all(torch.equal(losd["state"][i]["momentum_buffer"], osd["state"][i]["momentum_buffer"]) for i in range(4))
