"""A dry run of a config: what happens at every train iteration, computed without a model.

:func:`make_plan` walks :func:`fsm_trainer.simulate.simulate` (the table and counter rules
``run`` uses) over the loaders' lengths, asks the LR/momentum :class:`~fsm_trainer.schedules.Schedule`
for the value ``run`` would set, and applies the hooks' triggers (mmcv 1.7.2's, as the hooks
implement them: :func:`every`, :func:`checkpoint_due`, :func:`log_due`, :func:`eval_due`) and
the checkpoint retention (:func:`fsm_trainer.checkpoint.to_remove`). A test runs the same
config and checks the plan against what the run did.

>>> every(5, 10), every(5, 7), every(0, 10)
(True, False, False)
>>> eval_due(3, interval=2, start=None), eval_due(3, interval=2, start=3), eval_due(2, interval=1, start=3)
(False, True, False)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from fsm_trainer.config.hookspec import HookSpec
from fsm_trainer.simulate import simulate
from fsm_trainer.transitions import TransitionTable


def every(interval: int, n: int) -> bool:
    """mmcv's ``every_n_*``: ``n`` (1-based) is a multiple of ``interval > 0``."""
    return interval > 0 and n % interval == 0


def checkpoint_due(n: int, last: int | None, *, interval: int, save_last: bool) -> bool:
    """Whether a checkpoint is saved after unit ``n`` (1-based epoch or iteration) of ``last``."""
    return every(interval, n) or (save_last and n == last)


def log_due(inner: int, n: int, epoch_len: int | None, *, interval: int, by_epoch: bool, ignore_last: bool) -> bool:
    """Whether a logger averages and logs after a train iteration (``inner``, ``n`` 1-based)."""
    if by_epoch and every(interval, inner):
        return True
    if not by_epoch and every(interval, n):
        return True
    return not ignore_last and inner == epoch_len


def eval_due(n: int, *, interval: int, start: int | None) -> bool:
    """mmcv's ``EvalHook._should_evaluate`` after unit ``n`` (1-based)."""
    if start is None:
        return every(interval, n)
    if n < start:
        return False
    return (n - start) % interval == 0


@attrs.frozen
class PlanRow:
    """One train iteration: counters (0-based, as hooks see them), values set, and what happens after it."""

    epoch: int
    iter: int
    inner_iter: int
    lr: float | None
    momentum: float | None
    events: tuple[str, ...] = ()


@attrs.frozen
class Plan:
    """Every train iteration of a run, the checkpoints written and those retention keeps."""

    rows: tuple[PlanRow, ...]
    checkpoints: tuple[str, ...]
    kept: tuple[str, ...]
    by: str

    def events(self) -> list[tuple[int, str]]:
        """``(iter, event)`` for every event, in order."""
        return [(r.iter, e) for r in self.rows for e in r.events]

    def format(self, *, all_rows: bool = False, limit: int = 200) -> str:
        """A text table (rows with events, plus the first and last, unless ``all_rows``)."""
        lines = [f"{'iter':>7} {'epoch':>5} {'inner':>5} {'lr':>12} {'momentum':>10}  events"]
        shown = [r for i, r in enumerate(self.rows) if all_rows or r.events or i in (0, len(self.rows) - 1)]
        for r in shown[:limit]:
            lr = "-" if r.lr is None else f"{r.lr:.6g}"
            mom = "-" if r.momentum is None else f"{r.momentum:.4g}"
            lines.append(f"{r.iter:>7} {r.epoch:>5} {r.inner_iter:>5} {lr:>12} {mom:>10}  {', '.join(r.events)}")
        if len(shown) > limit:
            lines.append(f"... {len(shown) - limit} more rows (--all, or --out for the plot)")
        lines.append(f"checkpoints written: {', '.join(self.checkpoints) or '(none)'}")
        lines.append(f"checkpoints kept at the end: {', '.join(self.kept) or '(none)'}")
        return "\n".join(lines)

    def plot(self, path: str) -> None:
        """LR (and momentum) against the iteration, with events marked; needs matplotlib."""
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(9, 4))
        xs = [r.iter for r in self.rows]
        # A missing value (None) is drawn as a gap; matplotlib's stubs only admit numbers.
        lrs: list[Any] = [r.lr for r in self.rows]
        ax.plot(xs, lrs, label="lr")
        ax.set_xlabel("train iteration")
        ax.set_ylabel("lr")
        if any(r.momentum is not None for r in self.rows):
            ax2 = ax.twinx()
            momenta: list[Any] = [r.momentum for r in self.rows]
            ax2.plot(xs, momenta, color="tab:orange", label="momentum")
            ax2.set_ylabel("momentum")
        styles = {"ckpt": ("tab:green", "--"), "val": ("tab:red", ":"), "eval": ("tab:purple", "-.")}
        for kind, (color, ls) in styles.items():
            marks = [r.iter for r in self.rows if any(e.startswith(kind) for e in r.events)]
            for j, x in enumerate(marks):
                ax.axvline(x, color=color, linestyle=ls, alpha=0.5, label=kind if j == 0 else None)
        ax.legend(loc="upper right")
        fig.tight_layout()
        fig.savefig(path)
        plt.close(fig)


def _base_lr(opt_cfg: Mapping[str, Any]) -> float | None:
    """``optimizer.lr``, else the optimizer class's default (``Adam``'s 1e-3: mmocr's configs give none)."""
    if "lr" in opt_cfg:
        return float(opt_cfg["lr"])
    import inspect

    from fsm_trainer.registry import OPTIMIZERS, RegistryError

    try:
        cls = OPTIMIZERS.get(opt_cfg.get("type"), "optimizer.type")
        default = inspect.signature(cls).parameters["lr"].default
    except (RegistryError, KeyError, TypeError, ValueError):
        return None
    return float(default) if isinstance(default, (int, float)) and not isinstance(default, bool) else None


def _base_momentum(opt_cfg: Mapping[str, Any]) -> float | None:
    if "momentum" in opt_cfg:
        return float(opt_cfg["momentum"])
    betas = opt_cfg.get("betas")
    return float(betas[0]) if isinstance(betas, (list, tuple)) and betas else None


def make_plan(table: TransitionTable, loader_lens: Sequence[int], specs: Sequence[HookSpec],
              optimizer_cfg: Mapping[str, Any]) -> Plan:
    """The plan of a run of ``table`` with the hooks ``specs`` (from :func:`~fsm_trainer.config.hookspec.hook_specs`).

    Args:
        table: the run's transition table.
        loader_lens: batches per workflow entry's loader.
        specs: the config's hooks; the LR, momentum, checkpoint, logger and eval entries are read (an LR
            or momentum policy of a registered hook, ``spec.custom``, is shown as ``-``).
        optimizer_cfg: the ``optimizer`` config (its ``lr`` and ``momentum``/``betas`` are the bases).
    """
    from fsm_trainer.checkpoint import to_remove
    from fsm_trainer.schedules import build_lr_schedule, build_momentum_schedule, default_base

    by_path = {s.path: s for s in specs}
    epoch_len = next((n for (m, _), n in zip(table.workflow, loader_lens, strict=True) if m == "train"), None)
    max_epochs = table.max_epochs
    max_iters = table.max_iters if table.by == "iter" else (max_epochs or 0) * (epoch_len or 0)
    sched: dict[str, Any] = {}
    for key, build, base in (("lr_config", build_lr_schedule, _base_lr(optimizer_cfg)),
                             ("momentum_config", build_momentum_schedule, _base_momentum(optimizer_cfg))):
        spec = by_path.get(key)
        if spec is not None and spec.custom:
            sched[key] = (None, None)  # set by a registered <Policy>LrUpdaterHook: not known without running it
        elif spec is not None:
            kw = {k: v for k, v in spec.kwargs.items() if k not in ("name", "priority")}
            s = build(**kw)
            s.check_run(table.by, max_epochs=max_epochs, max_iters=max_iters, epoch_len=epoch_len)
            sched[key] = (s, default_base(s, base))
        else:
            sched[key] = (None, base)
    ck = by_path.get("checkpoint_config")
    ck_kw = dict(ck.kwargs) if ck is not None else {}
    ck_interval = ck_kw.get("interval", -1)
    ck_by_epoch = ck_kw.get("by_epoch")
    ck_by_epoch = table.by == "epoch" if ck_by_epoch is None else ck_by_epoch
    ck_last, ck_keep = ck_kw.get("save_last", True), ck_kw.get("max_keep_ckpts", -1)
    loggers = [s for s in specs if s.path.startswith("log_config.hooks")]
    ev = by_path.get("evaluation")

    def eval_interval(done: int) -> int:
        from fsm_trainer.hooks.eval import dynamic_interval

        assert ev is not None
        return dynamic_interval(done, ev.kwargs.get("interval", 1), ev.kwargs.get("dynamic_intervals"))

    rows: list[PlanRow] = []
    written: list[str] = []
    kept: list[str] = []
    pending: list[str] = []

    def value(key: str, st: Any) -> float | None:
        s, base = sched[key]
        if s is None:
            return None if base is None else float(base)
        if table.by == "epoch":
            return float(s.value(base, epoch=st.epoch, iter=st.iter, max_epochs=max_epochs, max_iters=max_iters,
                                 epoch_len=epoch_len))
        return float(s.value(base, iter=st.iter, max_iters=max_iters, epoch_len=epoch_len))

    def save(name: str) -> None:
        written.append(name)
        kept.append(name)
        if ck_keep > 0:
            for old in to_remove(kept, ck_keep, "epoch_" if ck_by_epoch else "iter_"):
                kept.remove(old)

    def add(event: str) -> None:
        if rows:
            rows[-1] = attrs.evolve(rows[-1], events=(*rows[-1].events, event))
        else:
            pending.append(event)

    prev_mode = None
    for point, st in simulate(table, list(loader_lens)):
        if point == "before_train_iter":
            rows.append(PlanRow(st.epoch, st.iter, st.inner_iter, value("lr_config", st), value("momentum_config", st),
                                tuple(pending)))
            pending.clear()
        elif point == "after_train_iter":
            for lg in loggers:
                lg_kw = lg.kwargs
                by_epoch = lg_kw.get("by_epoch")
                by_epoch = table.by == "epoch" if by_epoch is None else by_epoch
                if log_due(st.inner_iter + 1, st.iter + 1, epoch_len, interval=lg_kw.get("interval", 10),
                           by_epoch=by_epoch, ignore_last=lg_kw.get("ignore_last", True)):
                    add(f"log:{lg.type}")
            if ev is not None and not ev.kwargs.get("by_epoch", True) and eval_due(
                    st.iter + 1, interval=eval_interval(st.iter + 1), start=ev.kwargs.get("start")):
                add("eval")
            if ck is not None and not ck_by_epoch and checkpoint_due(
                    st.iter + 1, max_iters, interval=ck_interval, save_last=ck_last):
                name = f"iter_{st.iter + 1}"
                add(f"ckpt:{name}")
                save(name)
        elif point == "after_train_epoch":
            if ev is not None and ev.kwargs.get("by_epoch", True) and eval_due(
                    st.epoch + 1, interval=eval_interval(st.epoch + 1), start=ev.kwargs.get("start")):
                add("eval")
            if ck is not None and ck_by_epoch and checkpoint_due(
                    st.epoch + 1, max_epochs, interval=ck_interval, save_last=ck_last):
                name = f"epoch_{st.epoch + 1}"
                add(f"ckpt:{name}")
                save(name)
        elif point in ("before_val_epoch", "before_val_iter") and prev_mode != "val":
            add("val")
        if "_train_" in point or "_val_" in point:
            prev_mode = "val" if "_val_" in point else "train"
    return Plan(tuple(rows), tuple(written), tuple(kept), table.by)


__all__ = ["Plan", "PlanRow", "checkpoint_due", "eval_due", "every", "log_due", "make_plan"]
