"""Checkpoint save/load time against bare safetensors, and time to first batch after a resume.

Run: ``python benchmarks/bench_checkpoint.py [--mb 200] [--repeat 5] [--samples 200000]``.

1. Save: ``save_checkpoint`` (temp dir, XXH3-128 of every byte, fsync of each file and the
   directory, rename, ``latest`` pointer) against ``safetensors.torch.save_file`` of the same
   tensors, with and without an ``fsync`` of the file. Load: ``load_checkpoint`` (manifest and
   checksum checks, strict parsing) plus copying into the model, against ``load_file`` plus the
   same copy. Medians of ``--repeat`` runs, page cache warm.
2. Time to first batch: ``run(..., resume=...)`` from a checkpoint at 0% and at 90% of a long
   epoch, until the first ``before_train_iter``; the sampler seeks in O(1), so both should match.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from fsm_trainer import Hook, TrainState, compile_workflow, run
from fsm_trainer import checkpoint as C
from fsm_trainer.sampler import resumable_loader


def _median(fn, repeat: int) -> float:
    fn()  # warm-up: first-touch page faults and allocator growth are not what is compared
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_io(mb: int, repeat: int, root: Path) -> None:
    n = max(1, mb // 4)  # 1024 x 1024 float32 = 4 MiB each
    model = torch.nn.Sequential(*[torch.nn.Linear(1024, 1024, bias=False) for _ in range(n)])
    sd = model.state_dict()
    flat = {f"model/{k}": v for k, v in sd.items()}
    table = compile_workflow([("train", 1)], max_epochs=1)
    bare = root / "bare.safetensors"

    def bare_save() -> None:
        save_file(flat, str(bare))

    def bare_save_fsync() -> None:
        save_file(flat, str(bare))
        fd = os.open(bare, os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)

    def ours_save() -> None:
        C.save_checkpoint(root / "ck", "epoch_1", state=TrainState(), table=table, model=sd)

    def bare_load() -> None:
        t = load_file(str(bare))
        model.load_state_dict({k[len("model/"):]: v for k, v in t.items()})

    def ours_load() -> None:
        ck = C.load_checkpoint(root / "ck" / "epoch_1")
        C.load_model_state(model, ck.model)

    def ours_load_unhashed() -> None:
        ck = C.load_checkpoint(root / "ck" / "epoch_1", checksum=False)
        C.load_model_state(model, ck.model)

    size = sum(v.numel() * v.element_size() for v in sd.values()) / 2**20
    print(f"tensors: {len(sd)} x 4 MiB = {size:.0f} MiB, median of {repeat}")
    s0, s1, s2 = _median(bare_save, repeat), _median(bare_save_fsync, repeat), _median(ours_save, repeat)
    l0, l1, l2 = _median(bare_load, repeat), _median(ours_load, repeat), _median(ours_load_unhashed, repeat)
    print(f"  save  safetensors.save_file           {s0 * 1000:8.1f} ms")
    print(f"  save  safetensors.save_file + fsync   {s1 * 1000:8.1f} ms")
    print(f"  save  fsm_trainer save_checkpoint     {s2 * 1000:8.1f} ms  ({s2 / s0:.2f}x bare, {s2 / s1:.2f}x bare+fsync)")
    print(f"  load  load_file + load_state_dict     {l0 * 1000:8.1f} ms")
    print(f"  load  load_checkpoint + load          {l1 * 1000:8.1f} ms  ({l1 / l0:.2f}x)")
    print(f"  load  same, checksum=False            {l2 * 1000:8.1f} ms  ({l2 / l0:.2f}x)")


class _Slow(torch.utils.data.Dataset):
    """A dataset whose items cost something to read, so skipping by reading would show."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> torch.Tensor:
        return torch.full((16,), float(i)).sin()


def bench_first_batch(samples: int, repeat: int, root: Path) -> None:
    bs = 32
    loader = resumable_loader(_Slow(samples), batch_size=bs, seed=0)
    n_batches = len(loader)
    table = compile_workflow([("train", 1)], max_epochs=2)
    model = torch.nn.Linear(16, 1)

    def first_batch(frac: float) -> float:
        k = int(n_batches * frac)
        state = TrainState(epoch=0, iter=k, inner_iter=k, mode="train", phase=0)
        path = C.save_checkpoint(root / f"tfb{frac}", "iter_x", state=state, table=table, model=model.state_dict())
        marks: list[float] = []

        def seen(s: TrainState) -> TrainState:
            marks.append(time.perf_counter())
            return s.request_stop()

        t = time.perf_counter()
        run(TrainState(), table, data_loaders=[loader], model=model,
            train_step=lambda b: {"log_vars": {}, "num_samples": len(b)}, val_step=lambda b: {},
            hooks=[Hook("first", "HIGHEST", {"before_train_iter": seen})], resume=path)
        return marks[0] - t

    first_batch(0.5)  # warm-up: first-call costs (imports, allocator) are not the resume's
    print(f"time to first batch, epoch of {n_batches} batches ({samples} samples), median of {repeat}")
    for frac in (0.0, 0.9):
        dt = statistics.median(first_batch(frac) for _ in range(repeat))
        print(f"  resume at {frac:4.0%}: {dt * 1000:7.2f} ms")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--mb", type=int, default=200)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--samples", type=int, default=200_000)
    args = p.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(dir=".") as d:
        bench_io(args.mb, args.repeat, Path(d))
        bench_first_batch(args.samples, args.repeat, Path(d))


if __name__ == "__main__":
    main()
