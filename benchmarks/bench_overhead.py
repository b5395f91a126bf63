"""Per-iteration overhead of fsm_trainer's runner against a hand-written loop (and Ignite).

Run: ``python benchmarks/bench_overhead.py [--iters 2000] [--rounds 7] [--device cpu|cuda|cuda:N]``.

Each round runs every variant once, interleaved, on the same data; the figure per variant
is the median over rounds of (time / iterations), and its overhead the median over rounds of
the difference to the raw loop of the same round, with the interquartile range.

* ``noop``: a step that does no torch work (its ``loss.backward()`` and the optimizer are
  no-ops), so the difference to the raw loop is pure machinery: state records, hook dispatch,
  the shipped optimizer hook, iteration timer and text logger (interval 50).
* ``mlp``: a tiny MLP (64-32-10, batch 16) trained with SGD: forward, loss, ``loss.item()``,
  backward, step in every variant.
Ignite's ``Engine`` runs the same process function with no handlers attached (its bare loop).

``--device`` (default ``cpu``): where the MLP and the batches live, for every variant; the
batches are put there before timing, and fsm_trainer runs with ``device=`` that device, so its
figure includes the per-batch device handling (a no-op move of batches already there).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from fsm_trainer import TrainState, compile_workflow, run
from fsm_trainer.hooks import default_hooks


class _NoLoss:
    def backward(self) -> None:
        pass


class _NoOptimizer:
    def __init__(self) -> None:
        self.param_groups = [{"lr": 0.1}]

    def zero_grad(self) -> None:
        pass

    def step(self) -> None:
        pass


def _mlp(device: torch.device) -> tuple[nn.Module, torch.optim.Optimizer, list[tuple[torch.Tensor, torch.Tensor]]]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    data = [(torch.randn(16, 64, device=device), torch.randint(0, 10, (16,), device=device)) for _ in range(100)]
    return model, opt, data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:<index>")
    args = parser.parse_args()
    device = torch.device(args.device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    torch.set_num_threads(1)
    logging.getLogger("fsm_trainer").setLevel(logging.WARNING)
    logging.getLogger("ignite").setLevel(logging.WARNING)
    n = args.iters

    model, opt, data = _mlp(device)
    loss_fn = nn.CrossEntropyLoss()
    batches = [data[i % len(data)] for i in range(n)]
    noop_opt = _NoOptimizer()
    no_loss = _NoLoss()
    noop_out = {"loss": no_loss, "log_vars": {"loss": 0.5}, "num_samples": 16}

    def noop_step(batch: Any) -> dict[str, Any]:
        return noop_out

    def mlp_step(batch: Any) -> dict[str, Any]:
        x, y = batch
        loss = loss_fn(model(x), y)
        return {"loss": loss, "log_vars": {"loss": loss.item()}, "num_samples": len(x)}

    def raw(step: Callable[[Any], dict[str, Any]], optimizer: Any) -> None:
        model.train()
        for b in batches:
            out = step(b)
            optimizer.zero_grad()
            out["loss"].backward()
            optimizer.step()

    table = compile_workflow([("train", 1)], max_epochs=1)

    def fsm(step: Callable[[Any], dict[str, Any]], optimizer: Any) -> None:
        run(TrainState(), table, model=model, optimizer=optimizer, data_loaders=[batches],
            hooks=default_hooks(log_interval=50), train_step=step, val_step=step, device=device)

    variants: dict[str, Callable[[Callable[[Any], dict[str, Any]], Any], None]] = {"raw": raw, "fsm_trainer": fsm}
    try:
        from ignite.engine import Engine

        def ignite(step: Callable[[Any], dict[str, Any]], optimizer: Any) -> None:
            def process(engine: Any, b: Any) -> float:
                out = step(b)
                optimizer.zero_grad()
                out["loss"].backward()
                optimizer.step()
                return out["log_vars"]["loss"]

            model.train()
            Engine(process).run(batches, max_epochs=1)

        variants["ignite"] = ignite
    except ImportError:
        print("(pytorch-ignite not installed: pip install -e '.[bench]' to compare)")

    for label, step, optimizer in (("noop", noop_step, noop_opt), ("mlp", mlp_step, opt)):
        times: dict[str, list[float]] = {k: [] for k in variants}
        for fn in variants.values():  # warm-up
            fn(step, optimizer)
        sync()
        for _ in range(args.rounds):
            for name, fn in variants.items():
                t0 = time.perf_counter()
                fn(step, optimizer)
                sync()
                times[name].append((time.perf_counter() - t0) / n * 1e6)
        print(f"\n{label} on {device}: {n} iterations x {args.rounds} rounds, median us/iter")
        print(f"  {'variant':<12} {'us/iter':>9} {'overhead':>9} {'IQR of overhead':>17}")
        for name in variants:
            med = statistics.median(times[name])
            # Overhead per round against the raw loop of the same round, so slow drifts of the
            # machine cancel; the spread says how far to trust a difference between variants.
            diffs = sorted(t - r for t, r in zip(times[name], times["raw"], strict=True))
            q1, q3 = diffs[len(diffs) // 4], diffs[(3 * len(diffs)) // 4]
            print(f"  {name:<12} {med:9.2f} {statistics.median(diffs):+9.2f} {q1:+8.2f}..{q3:+.2f}")


if __name__ == "__main__":
    main()
