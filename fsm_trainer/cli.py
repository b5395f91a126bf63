"""``fsm-trainer``: train, inspect and plan runs from mmcv-style config files.

Commands (``fsm-trainer COMMAND --help`` for each)::

    fsm-trainer train CONFIG [--work-dir DIR] [--resume auto|PATH] [--cfg-options K=V ...] [--seed N]
                             [--launcher none|pytorch]   (under torchrun: docs/distributed.md)
    fsm-trainer show CONFIG            resolved config, hook order per point, transition table
    fsm-trainer plan CONFIG [--out P]  LR/momentum per iteration, val/eval/checkpoint/log points
    fsm-trainer resume WORK_DIR        continue the run in WORK_DIR from its newest checkpoint
    fsm-trainer replay CHECKPOINT --iters N    re-run N train iterations, one JSON line each
    fsm-trainer plot LOG.json... --keys loss acc --out curves.png

Exit codes: 0 done; 2 bad config or arguments (a message, no traceback); 130 interrupted
(after saving a checkpoint when the config has a checkpoint hook); 1 a failed run.
"""

from __future__ import annotations

import argparse
import json
import logging
import pprint
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
SAVED_CONFIG = "config.json"
"""The resolved config ``train`` writes into the work dir; ``resume`` and ``replay`` read it."""


class UsageError(Exception):
    """Bad arguments or files: exit 2 with the message."""


# --------------------------------------------------------------------------- shared


def _load(path: str, options: Sequence[str]) -> Any:
    from fsm_trainer.config import load

    return load(path, options or ())


def _logger(level: str, progress: bool) -> logging.Logger:
    logger = logging.getLogger("fsm_trainer")
    logger.setLevel(level)
    logger.propagate = False
    for h in list(logger.handlers):
        logger.removeHandler(h)
    if progress:
        from tqdm import tqdm

        class TqdmHandler(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                tqdm.write(self.format(record), file=sys.stdout)

        handler: logging.Handler = TqdmHandler()
        # The bar shows the train values and prints val/eval records: drop the text logger's
        # copies from the console (they still go to the work dir's .log file).
        copies = ("Epoch [", "Iter [", "Epoch(", "Iter(", "Exp name:")
        handler.addFilter(lambda r: not r.getMessage().startswith(copies))
    else:
        handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s - %(levelname)s - %(message)s"))
    logger.addHandler(handler)
    return logger


def _use_progress(flag: str) -> bool:
    if flag == "auto":
        return sys.stderr.isatty()
    return flag == "on"


def _saved_config(work_dir: Path) -> Path:
    path = work_dir / SAVED_CONFIG
    if not path.is_file():
        msg = f"{work_dir}: no {SAVED_CONFIG} (written by 'fsm-trainer train'); give the config with --config"
        raise UsageError(msg)
    return path


def _dump_config(cfg: Any, work_dir: Path) -> None:
    from fsm_trainer.config import unstructure_config

    work_dir.mkdir(parents=True, exist_ok=True)
    data = unstructure_config(cfg)
    (work_dir / SAVED_CONFIG).write_text(json.dumps(data, indent=2, default=repr) + "\n", encoding="utf-8")


# --------------------------------------------------------------------------- train / resume


def _init_launcher(cfg: Any, launcher: str) -> tuple[int, int]:
    """``(rank, world_size)``: the process group for ``--launcher pytorch`` (``dist_params``), else ``(0, 1)``."""
    if launcher == "none":
        return 0, 1
    from fsm_trainer.dist import init_dist

    params = dict(cfg.dist_params or {})
    allowed = {"backend", "timeout_s"}
    unknown = sorted(set(params) - allowed)
    if unknown:
        msg = f"dist_params: unknown keys {unknown}; allowed: {sorted(allowed)}"
        raise UsageError(msg)
    try:
        return init_dist(launcher, **params)
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _train(cfg: Any, *, config_name: str, work_dir: str | None, resume: str | None, seed: int | None,
           progress_flag: str, launcher: str = "none") -> int:
    rank, world = _init_launcher(cfg, launcher)
    try:
        return _train_ranked(cfg, config_name=config_name, work_dir=work_dir, resume=resume, seed=seed,
                             progress_flag=progress_flag, rank=rank, world=world)
    finally:
        if launcher != "none":
            import torch.distributed as dist

            if dist.is_initialized():
                # Tear down together: a rank closing its connections while another still
                # finishes can abort the other in gloo's destructor.
                try:
                    dist.barrier()
                finally:
                    dist.destroy_process_group()


def _train_ranked(cfg: Any, *, config_name: str, work_dir: str | None, resume: str | None, seed: int | None,
                  progress_flag: str, rank: int, world: int) -> int:
    from fsm_trainer.config.build import build
    from fsm_trainer.state import TrainState

    progress = _use_progress(progress_flag) and rank == 0
    # As mmcv's get_logger: ranks other than 0 report errors only.
    logger = _logger(cfg.log_level if rank == 0 else "ERROR", progress)
    wd = Path(work_dir or cfg.work_dir or Path("work_dirs") / Path(config_name).stem)
    built = build(cfg, work_dir=wd, seed=seed, meta={"exp_name": Path(config_name).name}, distributed=world > 1)
    if rank == 0:
        _dump_config(cfg if seed is None else _with_seed(cfg, seed), wd)
    hooks = list(built.hooks)
    if progress:
        from fsm_trainer.hooks.progress import progress_bar_hook

        interval = cfg.log_config.interval if cfg.log_config is not None else 10
        hooks.append(progress_bar_hook(interval, val=False))
    resume = resume or cfg.resume_from or ("auto" if cfg.auto_resume else None)
    if cfg.load_from and resume is None:
        from fsm_trainer.checkpoint import load_weights

        load_weights(built.model, cfg.load_from, logger=logger)
        logger.info("load_from %s", cfg.load_from)
    from fsm_trainer.runner import run

    kwargs = built.run_kwargs()
    kwargs["hooks"] = hooks
    logger.info("work_dir: %s", wd)
    final = run(TrainState(), built.table, logger=logger, resume=resume, **kwargs)
    for name, hs in final.hook_states.items():
        if isinstance(hs, dict) and hs.get("preempted"):
            print(f"interrupted by {hs['preempted']}: saved {hs.get('checkpoint')}; "
                  f"continue with: fsm-trainer resume {wd}", file=sys.stderr)
            del name
            return EXIT_INTERRUPTED
    logger.info("done: epoch %d, iter %d", final.epoch, final.iter)
    return EXIT_OK


def _with_seed(cfg: Any, seed: int) -> Any:
    import attrs

    return attrs.evolve(cfg, seed=seed)


def cmd_train(args: argparse.Namespace) -> int:
    cfg = _load(args.config, args.cfg_options)
    return _train(cfg, config_name=args.config, work_dir=args.work_dir, resume=args.resume, seed=args.seed,
                  progress_flag=args.progress, launcher=args.launcher)


def cmd_resume(args: argparse.Namespace) -> int:
    wd = Path(args.work_dir)
    if not wd.is_dir():
        msg = f"{wd}: no such work dir"
        raise UsageError(msg)
    config = args.config or str(_saved_config(wd))
    cfg = _load(config, args.cfg_options)
    return _train(cfg, config_name=config, work_dir=str(wd), resume="auto", seed=None, progress_flag=args.progress,
                  launcher=args.launcher)


# --------------------------------------------------------------------------- show / plan


def _compose(built: Any, logger: logging.Logger) -> tuple[Any, list[str]]:
    from fsm_trainer.context import RunContext
    from fsm_trainer.hook import compose_hooks
    from fsm_trainer.runner import build_hooks

    ctx = RunContext(built.table, built.data_loaders, built.model, built.optimizer, built.work_dir, logger,
                     dict(built.meta))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        composed = compose_hooks(build_hooks(built.hooks, ctx), built.table)
    return composed, [str(w.message) for w in caught]


def cmd_show(args: argparse.Namespace) -> int:
    from fsm_trainer.config import unstructure_config
    from fsm_trainer.config.build import build
    from fsm_trainer.config.schema import IGNORED_KEYS

    cfg = _load(args.config, args.cfg_options)
    built = build(cfg, build_data=True)
    logger = _logger("WARNING", progress=False)
    composed, notes = _compose(built, logger)
    data = unstructure_config(cfg)
    out = [f"# resolved config: {args.config}", pprint.pformat(data, sort_dicts=False, width=100), ""]
    ignored = [k for k in IGNORED_KEYS if data.get(k) not in (None, False)]
    if ignored:
        out.append(f"# accepted without effect: {', '.join(ignored)}")
    if cfg.variables:
        out.append(f"# helper variables (not used by the runner): {', '.join(cfg.variables)}")
    out += ["", "# hooks in registration order (config key -> hook)"]
    out += [f"{s.path:<22} {s.type}" for s in built.specs]
    out += ["", "# hook order per point", str(composed)]
    out += [f"# note: {n}" for n in notes]
    out += ["", "# transition table", str(built.table), "", "# transition table (Mermaid)", built.table.to_mermaid()]
    print("\n".join(out))
    return EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    from fsm_trainer.config.build import build
    from fsm_trainer.config.plan import make_plan

    cfg = _load(args.config, args.cfg_options)
    built = build(cfg)
    plan = make_plan(built.table, [len(x) for x in built.data_loaders], built.specs, cfg.optimizer)
    print(plan.format(all_rows=args.all))
    if args.json:
        rows = [{"epoch": r.epoch, "iter": r.iter, "inner_iter": r.inner_iter, "lr": r.lr, "momentum": r.momentum,
                 "events": list(r.events)} for r in plan.rows]
        Path(args.json).write_text(json.dumps({"rows": rows, "checkpoints": list(plan.checkpoints),
                                               "kept": list(plan.kept)}) + "\n", encoding="utf-8")
    if args.out:
        plan.plot(args.out)
        print(f"plot written to {args.out}")
    return EXIT_OK


# --------------------------------------------------------------------------- replay / plot


def cmd_replay(args: argparse.Namespace) -> int:
    import math

    from fsm_trainer.config.build import build
    from fsm_trainer.replay import ReplayStep, replay

    ckpt = Path(args.checkpoint)
    if not ckpt.exists():
        msg = f"{ckpt}: no such checkpoint"
        raise UsageError(msg)
    is_checkpoint = ckpt.is_dir() and (ckpt / "manifest.json").exists()
    config = args.config or str(_saved_config(ckpt.parent if is_checkpoint else ckpt))
    cfg = _load(config, args.cfg_options)
    _logger("WARNING" if args.quiet else cfg.log_level, progress=False)
    built = build(cfg, work_dir=None)
    # Replaying must not write: leave out the checkpoint, logger and eval (best checkpoint) hooks.
    hooks = [h for h, s in zip(built.hooks, built.specs, strict=True)
             if s.path not in ("checkpoint_config", "evaluation") and not s.path.startswith("log_config")]

    def show(step: ReplayStep) -> None:
        s = step.state
        loss = step.loss if step.loss is None or math.isfinite(step.loss) else str(step.loss)
        print(json.dumps({"epoch": s.epoch, "iter": s.iter, "inner_iter": s.inner_iter, "loss": loss,
                          "log_vars": step.log_vars}, default=str), flush=True)

    kwargs = built.run_kwargs()
    kwargs.pop("hooks")
    kwargs.pop("work_dir")
    replay(ckpt, args.iters, hooks=hooks, on_step=show, logger=logging.getLogger("fsm_trainer"), table=built.table,
           **kwargs)
    return EXIT_OK


def read_log(path: str | Path) -> list[dict[str, Any]]:
    """The records of an mmcv-style ``.log.json`` (one JSON object per line; the meta line is skipped)."""
    records = []
    for i, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            msg = f"{path}:{i}: not JSON ({exc.msg})"
            raise UsageError(msg) from None
        if isinstance(rec, dict) and "mode" in rec:
            records.append(rec)
    return records


def curves(records: Sequence[dict[str, Any]], key: str) -> dict[str, tuple[list[int], list[float]]]:
    """``{mode: (x, y)}`` for ``key``; x counts train iterations (a val record sits at the last train x).

    >>> recs = [{"mode": "train", "epoch": 1, "iter": 10, "loss": 1.0},
    ...         {"mode": "train", "epoch": 1, "iter": 20, "loss": 0.5},
    ...         {"mode": "val", "epoch": 1, "iter": 5, "loss": 0.7},
    ...         {"mode": "train", "epoch": 2, "iter": 10, "loss": 0.4}]
    >>> curves(recs, "loss")
    {'train': ([10, 20, 30], [1.0, 0.5, 0.4]), 'val': ([20], [0.7])}
    """
    out: dict[str, tuple[list[int], list[float]]] = {}
    x, last_epoch, offset, last_iter = 0, None, 0, 0
    for rec in records:
        if rec["mode"] == "train":
            if rec.get("epoch") != last_epoch and last_epoch is not None and rec["iter"] <= last_iter:
                offset += last_iter  # a new epoch: by-epoch iteration numbers restart
            last_epoch, last_iter = rec.get("epoch"), rec["iter"]
            x = offset + rec["iter"]
        if key in rec and isinstance(rec[key], (int, float)):
            xs, ys = out.setdefault(rec["mode"], ([], []))
            xs.append(x)
            ys.append(float(rec[key]))
    return out


def cmd_plot(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(args.keys), 1, figsize=(8, 3 * len(args.keys)), squeeze=False)
    found = False
    for log in args.logs:
        records = read_log(log)
        for ax, key in zip(axes[:, 0], args.keys, strict=True):
            for mode, (xs, ys) in curves(records, key).items():
                found = True
                label = f"{Path(log).name} {mode}" if len(args.logs) > 1 else mode
                ax.plot(xs, ys, marker="o" if mode == "val" else None, label=label)
            ax.set_ylabel(key)
            ax.set_xlabel("train iteration")
            ax.legend()
    if not found:
        msg = f"none of the keys {', '.join(args.keys)} is in {', '.join(args.logs)}"
        raise UsageError(msg)
    fig.tight_layout()
    fig.savefig(args.out)
    plt.close(fig)
    print(f"plot written to {args.out}")
    return EXIT_OK


# --------------------------------------------------------------------------- parser


def make_parser() -> argparse.ArgumentParser:
    """The ``fsm-trainer`` argument parser."""
    p = argparse.ArgumentParser(prog="fsm-trainer", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="exit codes: 0 done, 2 bad config or arguments, 130 interrupted, 1 failed run")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def options(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override config keys: a.b=1 c=[1,2] d.0.e=x (mmcv's syntax)")

    def launcher(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--launcher", choices=("none", "pytorch"), default="none",
                        help="'pytorch': distributed data-parallel under torchrun (process group from its "
                        "environment, config dist_params); see docs/distributed.md")

    def progress(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--progress", choices=("auto", "on", "off"), default="auto",
                        help="tqdm progress bar: auto = only when stderr is a terminal (default)")

    t = sub.add_parser("train", help="train from a config file", description="Train from a config file.")
    t.add_argument("config", help="config file (.py, .yaml, .toml, .json)")
    t.add_argument("--work-dir", help="where checkpoints and logs go (default: the config's work_dir, "
                   "else work_dirs/<config name>)")
    t.add_argument("--resume", metavar="auto|PATH", help="'auto' (newest checkpoint in the work dir, if any) "
                   "or a checkpoint path")
    t.add_argument("--seed", type=int, help="overrides the config's seed")
    launcher(t)
    options(t)
    progress(t)
    t.set_defaults(func=cmd_train)

    s = sub.add_parser("show", help="print the resolved config, hook order and transition table",
                       description="Print the resolved config, the hook order per point and the transition table.")
    s.add_argument("config")
    options(s)
    s.set_defaults(func=cmd_show)

    pl = sub.add_parser("plan", help="dry run: LR/momentum per iteration, val/eval/checkpoint/log points",
                        description="Dry run without model compute: the LR and momentum at every train iteration, "
                        "where val, eval, checkpoints and log lines happen, and which checkpoints are kept.")
    pl.add_argument("config")
    pl.add_argument("--out", help="also plot LR/momentum and the events to this image file")
    pl.add_argument("--json", help="also write the plan as JSON to this file")
    pl.add_argument("--all", action="store_true", help="print every iteration, not only those with events")
    options(pl)
    pl.set_defaults(func=cmd_plan)

    r = sub.add_parser("resume", help="continue the run in a work dir",
                       description=f"Continue the run in WORK_DIR from its newest checkpoint, with the {SAVED_CONFIG} "
                       "'train' wrote there (or --config).")
    r.add_argument("work_dir")
    r.add_argument("--config", help=f"config file (default: WORK_DIR/{SAVED_CONFIG})")
    launcher(r)
    options(r)
    progress(r)
    r.set_defaults(func=cmd_resume)

    rp = sub.add_parser("replay", help="re-run N train iterations from a checkpoint",
                        description="Re-run N train iterations from a checkpoint and print one JSON line per "
                        "iteration (loss, log_vars); nothing is written.")
    rp.add_argument("checkpoint")
    rp.add_argument("--iters", type=int, required=True)
    rp.add_argument("--config", help=f"config file (default: {SAVED_CONFIG} next to the checkpoint)")
    rp.add_argument("--quiet", action="store_true", help="no log lines")
    options(rp)
    rp.set_defaults(func=cmd_replay)

    pt = sub.add_parser("plot", help="plot training curves from .log.json files",
                        description="Plot training curves from mmcv-style .log.json files.")
    pt.add_argument("logs", nargs="+", metavar="LOG.json")
    pt.add_argument("--keys", nargs="+", default=["loss"], help="values to plot (default: loss)")
    pt.add_argument("--out", required=True, help="image file to write (.png, .pdf, .svg)")
    pt.set_defaults(func=cmd_plot)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``fsm-trainer`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    from fsm_trainer.errors import FsmTrainerError

    parser = make_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or bad arguments (2)
        return int(exc.code or 0)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except UsageError as exc:
        print(f"fsm-trainer {args.command}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except FsmTrainerError as exc:
        # fsm_trainer's ValueErrors (config, registry, schedule, workflow, hook, checkpoint
        # lookup) are raised about the input before any batch is drawn.
        if isinstance(exc, ValueError):
            print(f"fsm-trainer {args.command}: {exc}", file=sys.stderr)
            return EXIT_USAGE
        raise


if __name__ == "__main__":
    sys.exit(main())
