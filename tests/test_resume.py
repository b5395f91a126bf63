"""Exact resume in-process: a run interrupted anywhere and resumed ends bit-identical."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest
import torch

from fsm_trainer import Hook, TrainState, compile_workflow, run
from fsm_trainer import checkpoint as C
from fsm_trainer.hooks import checkpoint_hook
from fsm_trainer.sampler import ResumableSampler, resumable_loader
from fsm_trainer.testing import CountingLoader, noop_step, record_trace

sys.path.insert(0, str(Path(__file__).parent))
from _train_script import build, final_tensors
from _workers import shut_down_loader_workers


class Crash(Exception):
    """Stands for a process dying in the middle of an iteration."""


def crash_at(k: int) -> Hook:
    def before(s: TrainState) -> TrainState:
        if s.iter == k:
            raise Crash
        return s

    return Hook("Crash", "HIGHEST", {"before_train_iter": before})


def train(kind: str, work_dir: Path, *, resume: str | None = None, crash: int | None = None, **kw):
    args = build(kind, **kw)
    if crash is not None:
        args["hooks"].append(crash_at(crash))
    table = args.pop("table")
    try:
        run(TrainState(), table, work_dir=work_dir, resume=resume, **args)
    except Crash:
        return None
    finally:
        shut_down_loader_workers()  # now, not 5 s in the middle of the next run
    return final_tensors(args)


def assert_same(ref: dict, got: dict) -> None:
    assert ref.keys() == got.keys()
    for k in ref:
        assert torch.equal(ref[k], got[k]), k


@pytest.fixture(scope="module", params=["epoch", "iter"])
def reference(request, tmp_path_factory):
    kind = request.param
    return kind, train(kind, tmp_path_factory.mktemp(f"ref-{kind}"))


@pytest.mark.parametrize("crash", [6, 13, 23])
def test_crash_then_resume_is_bit_identical(reference, tmp_path, crash):
    """Killed at train iteration k (mid-epoch, at an epoch or val boundary), resumed from the
    newest checkpoint: weights and momentum buffers equal an uninterrupted run's exactly."""
    kind, ref = reference
    assert train(kind, tmp_path, crash=crash) is None
    assert_same(ref, train(kind, tmp_path, resume="auto"))


@pytest.mark.slow
def test_resume_chain_of_three_interruptions(reference, tmp_path):
    """Several interruptions in a row, each resumed from the last checkpoint, stay exact."""
    kind, ref = reference
    for k in (5, 14, 22):
        assert train(kind, tmp_path, resume="auto", crash=k) is None
    assert_same(ref, train(kind, tmp_path, resume="auto"))


def test_auto_resume_without_checkpoint_starts_fresh(reference, tmp_path):
    """resume='auto' in an empty work_dir is a new run, equal to the reference."""
    kind, ref = reference
    assert_same(ref, train(kind, tmp_path, resume="auto"))


@pytest.mark.parametrize("kind", ["epoch", "iter"])
def test_resumed_trace_is_the_original_suffix(tmp_path, kind):
    """After before_run (and before_epoch), a resumed run calls exactly the hook points, with the
    same counters, that the original run called after the checkpoint it resumed from."""
    if kind == "epoch":
        table = compile_workflow([("train", 2), ("val", 1)], max_epochs=4)
        ckpt = checkpoint_hook(5, by_epoch=False)
    else:
        table = compile_workflow([("train", 4), ("val", 2)], max_iters=17)
        ckpt = checkpoint_hook(5)
    loaders = [CountingLoader(7), CountingLoader(3)] if kind == "epoch" else [CountingLoader(5), CountingLoader(3)]
    full: list = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run(TrainState(), table, data_loaders=loaders, train_step=noop_step, val_step=noop_step,
            hooks=[record_trace(full, priority="LOWEST"), ckpt], work_dir=tmp_path)
        for name in ("iter_10", "iter_15"):
            resumed: list = []
            run(TrainState(), table, data_loaders=loaders, train_step=noop_step, val_step=noop_step,
                hooks=[record_trace(resumed, priority="LOWEST")], resume=tmp_path / name)
            opening = 2 if kind == "iter" else 1  # before_run (+ before_epoch)
            body = resumed[opening:]
            saved_at = next(i for i, e in enumerate(full) if e[0] == "after_train_iter" and e[3] == int(name[5:]) - 1)
            assert body == full[saved_at + 1:], name


@pytest.mark.slow
def test_workers_mid_epoch_resume_is_exact(tmp_path):
    """With 2 DataLoader workers, a mid-epoch resume is still bit-identical."""
    ref = train("epoch", tmp_path / "ref", workers=2)
    assert train("epoch", tmp_path / "run", workers=2, crash=7) is None
    assert_same(ref, train("epoch", tmp_path / "run", workers=2, resume="auto"))


@pytest.mark.slow
@pytest.mark.parametrize("workers", [0, 2])
def test_random_augmentation_resumes_exactly_with_seed_samples(tmp_path, workers):
    """Augmentation drawing from python/NumPy/torch RNGs inside the dataset (in workers or in the
    main process): with seed_samples=True a mid-epoch resume is still bit-identical."""
    ref = train("epoch", tmp_path / "ref", workers=workers, augment=True)
    assert train("epoch", tmp_path / "run", workers=workers, augment=True, crash=7) is None
    assert_same(ref, train("epoch", tmp_path / "run", workers=workers, augment=True, resume="auto"))


def test_seeded_samples_do_not_depend_on_workers_position_or_main_rng():
    """A sample's augmentation is a function of (seed, epoch, index): the same with 0 or 2
    workers and after a seek; loading in the main process leaves the global RNGs as they were."""
    import random

    import numpy as np
    from _train_script import Augmented, dataset

    from fsm_trainer.data import set_data_position

    def batches(workers: int, start: int = 0) -> list[torch.Tensor]:
        loader = resumable_loader(Augmented(dataset(20, 0)), batch_size=4, seed=1, seed_samples=True,
                                  num_workers=workers)
        set_data_position(loader, 3, start)
        return [x for x, _ in loader]

    torch.manual_seed(5)
    random.seed(5)
    np.random.seed(5)
    before = torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy()
    main = batches(0)
    assert torch.equal(torch.get_rng_state(), before[0]) and random.getstate() == before[1]
    assert (np.random.get_state()[1] == before[2]).all()
    assert all(torch.equal(a, b) for a, b in zip(main, batches(2), strict=True))
    assert all(torch.equal(a, b) for a, b in zip(main[2:], batches(0, start=2), strict=True))
    other_epoch = resumable_loader(Augmented(dataset(20, 0)), batch_size=4, seed=1, seed_samples=True, shuffle=False)
    other_epoch.sampler.set_epoch(4)
    plain = {i: x for i, x in enumerate(torch.cat([x for x, _ in other_epoch]))}
    other_epoch.sampler.set_epoch(5)
    again = {i: x for i, x in enumerate(torch.cat([x for x, _ in other_epoch]))}
    assert not torch.equal(plain[0], again[0])  # a new epoch draws new augmentation


def test_sigterm_during_a_val_epoch_stops_there_and_resumes_exactly(reference, tmp_path, caplog):
    """Epoch-based: SIGTERM at the first of two batches of a val epoch stops after that val iteration
    (not at the end of the val epoch), saving the val epoch's starting position; the resumed
    run repeats the val epoch and ends bit-identical. Iter-based: stops at the val iteration."""
    import logging
    import os
    import signal

    kind, ref = reference
    args = build(kind)
    val_iters: list[tuple[int, int]] = []
    sent = []

    def before_val_iter(s: TrainState) -> TrainState:
        val_iters.append((s.epoch, s.inner_iter))
        if s.iter >= 10 and s.inner_iter == 0 and not sent:
            sent.append(s.iter)
            os.kill(os.getpid(), signal.SIGTERM)
        return s

    args["hooks"].append(Hook("SignalInVal", "HIGHEST", {"before_val_iter": before_val_iter}))
    table = args.pop("table")
    with caplog.at_level(logging.WARNING, logger="fsm_trainer"):
        final = run(TrainState(), table, work_dir=tmp_path, **args)
    assert final.stop and "stopped by SIGTERM" in caplog.text
    assert val_iters[-1][1] == 0  # the val epoch (batches 0 and 1) did not run to its end
    assert_same(ref, train(kind, tmp_path, resume="auto"))


def test_workflow_mismatch_is_refused(tmp_path):
    """Resuming with another workflow is an error naming both workflows."""
    train("epoch", tmp_path)
    args = build("iter")
    args.pop("table")
    with pytest.raises(C.CheckpointError, match="workflow"):
        run(TrainState(), compile_workflow([("train", 7), ("val", 3)], max_iters=30), work_dir=tmp_path,
            resume="auto", **args)


class CountingDataset(torch.utils.data.Dataset):
    def __init__(self, n: int) -> None:
        self.n, self.reads = n, []

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> int:
        self.reads.append(i)
        return i


def test_mid_epoch_seek_reads_no_skipped_sample():
    """Resuming at batch k reads only the samples of batches k.. of the same shuffled order."""
    ds = CountingDataset(50)
    loader = resumable_loader(ds, batch_size=5, seed=3)
    loader.sampler.set_epoch(2)
    full = [b.tolist() for b in loader]
    ds.reads.clear()
    from fsm_trainer.data import set_data_position

    assert set_data_position(loader, 2, 8)
    assert [b.tolist() for b in loader] == full[8:]
    assert sorted(ds.reads) == sorted(x for b in full[8:] for x in b)


def test_sampler_orders_are_functions_of_seed_and_epoch():
    """Same (seed, epoch) gives the same order in a new sampler; another epoch gives another."""
    a, b = ResumableSampler(20, seed=5), ResumableSampler(20, seed=5)
    a.set_epoch(3)
    b.set_epoch(3)
    assert list(a) == list(b)
    b.set_epoch(4)
    assert list(a) != list(b)


@pytest.mark.parametrize("point", ["mid_tensors", "before_manifest", "before_rename", "after_rename",
                                   "before_latest", "before_rotate"])
def test_crash_at_every_write_fault_point(reference, tmp_path, monkeypatch, point):
    """Dying at any point of a checkpoint write (the 3rd save) leaves a resumable directory, and
    the resumed run is exact. (The subprocess test does the same with a real SIGKILL.)"""
    kind, ref = reference
    seen = []

    def fault(p: str) -> None:
        if p == point:
            seen.append(p)
            if len(seen) == 3:
                raise Crash

    monkeypatch.setattr(C.FAULTS, "hook", fault)
    assert train(kind, tmp_path) is None
    monkeypatch.undo()
    assert_same(ref, train(kind, tmp_path, resume="auto"))
