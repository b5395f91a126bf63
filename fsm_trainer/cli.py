"""``fsm-trainer``: train, inspect, plan and evaluate runs from mmcv-style config files.

Commands (``fsm-trainer COMMAND --help`` for each)::

    fsm-trainer train CONFIG [--work-dir DIR] [--resume auto|PATH] [--cfg-options K=V ...] [--seed N]
                             [--launcher none|pytorch]   (under torchrun: README, "Distributed training")
    fsm-trainer show CONFIG            resolved config, hook order per point, transition table
    fsm-trainer plan CONFIG [--out P]  LR/momentum per iteration, val/eval/checkpoint/log points
    fsm-trainer resume WORK_DIR        continue the run in WORK_DIR from its newest checkpoint
    fsm-trainer replay CHECKPOINT --iters N    re-run N train iterations, one JSON line each
    fsm-trainer test CONFIG CHECKPOINT evaluate a checkpoint on data.test (or data.val)
    fsm-trainer plot LOG.json... --keys loss acc --out curves.png

Exit codes: 0 done; 2 bad config, arguments or files (a message, no traceback); 130
interrupted (after saving a checkpoint when the config has a checkpoint hook); 1 a failed run
(a message naming the last checkpoint). ``-v`` or ``FSM_TRAINER_DEBUG=1`` adds the traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import pprint
import re
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from fsm_trainer.console import console_logger, use_progress
from fsm_trainer.errors import FsmTrainerError

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130
SAVED_CONFIG = "config.json"
"""The resolved config ``train`` writes into the work dir; ``resume`` and ``replay`` read it."""
DEBUG_ENV = "FSM_TRAINER_DEBUG"
"""``FSM_TRAINER_DEBUG=1``: print the traceback of an error, as ``-v`` does."""
README_DIST = "the README section 'Distributed training: torchrun, DDP, FSDP, exact resume'"


class UsageError(FsmTrainerError, ValueError):
    """Bad arguments or files: exit 2 with the message."""


class Session:
    """What ``main`` knows of the command it runs: whether the run started, its context and work dir.

    The run counts as started once its ``before_run`` point is reached (the session's hook,
    first of all, writes the work dir's ``config.json`` there). An error before that is about
    the input (exit 2); one after it is a failed run (exit 1).
    """

    def __init__(self) -> None:
        self.started = False
        self.ctx: Any = None
        self.work_dir: Path | None = None
        self.t0 = time.monotonic()

    def hook(self, on_start: Callable[[], None]) -> Callable[[Any], Any]:
        """A hook factory that keeps the run's context and calls ``on_start`` at ``before_run`` (HIGHEST)."""
        from fsm_trainer.hook import Hook
        from fsm_trainer.priority import Priority

        def factory(ctx: Any) -> Hook:
            self.ctx = ctx

            def before_run(s: Any) -> Any:
                on_start()
                self.started = True
                self.t0 = time.monotonic()
                return s

            return Hook("CliSession", Priority.HIGHEST, {"before_run": before_run})

        return factory

    def last_checkpoint(self) -> str | None:
        """The last checkpoint this run committed, else the one the work dir's ``latest`` names."""
        msgs = (self.ctx.meta.get("hook_msgs", {}) if self.ctx is not None else {}) or {}
        if msgs.get("last_ckpt"):
            return str(msgs["last_ckpt"])
        if self.work_dir is not None:
            latest = self.work_dir / "latest"
            try:
                name = latest.read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError):
                return None
            if name and (self.work_dir / name).is_dir():
                return str(self.work_dir / name)
        return None


# --------------------------------------------------------------------------- shared


def _load(path: str, options: Sequence[str]) -> Any:
    from fsm_trainer.config import load

    return load(path, options or ())


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


def check_work_dir(work_dir: Path) -> None:
    """Refuse a work dir that cannot be created or written, without creating anything.

    Raises:
        UsageError: ``work_dir`` is a file, or lies under a file or a directory that is not writable.
    """
    if work_dir.exists():
        if not work_dir.is_dir():
            msg = f"work dir {work_dir}: exists and is not a directory"
            raise UsageError(msg)
        probe = work_dir
    else:
        probe = work_dir.absolute().parent
        while not probe.exists() and probe.parent != probe:
            probe = probe.parent
        if not probe.is_dir():
            msg = f"work dir {work_dir}: cannot be created, {probe} is not a directory"
            raise UsageError(msg)
    if not os.access(probe, os.W_OK | os.X_OK):
        msg = f"work dir {work_dir}: cannot be {'written' if probe == work_dir else 'created'}, {probe} is not writable"
        raise UsageError(msg)


def _check_seed(seed: int | None) -> None:
    from fsm_trainer.config.values import SEED_RANGE, number_errors

    if seed is not None:
        errors = number_errors(seed, "--seed", ge=SEED_RANGE[0], le=SEED_RANGE[1], integer=True)
        if errors:
            raise UsageError(errors[0])


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


def _train(cfg: Any, session: Session, *, config_name: str, work_dir: str | None, resume: str | None,
           seed: int | None, progress_flag: str, launcher: str = "none") -> int:
    rank, world = _init_launcher(cfg, launcher)
    try:
        return _train_ranked(cfg, session, config_name=config_name, work_dir=work_dir, resume=resume, seed=seed,
                             progress_flag=progress_flag, rank=rank, world=world)
    finally:
        if launcher != "none":
            from fsm_trainer.dist import destroy_dist

            destroy_dist()


def _resume_arg(cli_resume: str | None, cfg: Any) -> str | None:
    """The resume the run uses (``--resume``, else ``resume_from``, else ``auto_resume``), checked to exist."""
    if cli_resume is not None:
        resume, source = cli_resume, "--resume"
    elif cfg.resume_from:
        resume, source = cfg.resume_from, "resume_from"
    else:
        return "auto" if cfg.auto_resume else None
    if resume != "auto" and not os.path.lexists(resume):
        msg = f"{source}: {resume!r}: no such checkpoint, directory or 'latest' file"
        raise UsageError(msg)
    return resume


def _train_ranked(cfg: Any, session: Session, *, config_name: str, work_dir: str | None, resume: str | None,
                  seed: int | None, progress_flag: str, rank: int, world: int) -> int:
    from fsm_trainer.config.build import build
    from fsm_trainer.state import TrainState

    _check_seed(seed)
    progress = use_progress(progress_flag) and rank == 0
    # As mmcv's get_logger: ranks other than 0 report errors only.
    logger = console_logger(cfg.log_level if rank == 0 else "ERROR", progress)
    wd = default_work_dir(cfg, config_name, work_dir)
    check_work_dir(wd)
    session.work_dir = wd
    resume = _resume_arg(resume, cfg)
    if cfg.load_from and resume is None and not os.path.exists(cfg.load_from):
        msg = f"load_from: {cfg.load_from!r}: no such file or directory"
        raise UsageError(msg)
    built = build(cfg, work_dir=wd, seed=seed, meta={"exp_name": Path(config_name).name}, distributed=world > 1)
    built.meta["by"] = built.table.by
    train_index = next((i for i, (mode, _) in enumerate(built.table.workflow) if mode == "train"), None)
    if train_index is not None and built.table.by == "epoch":
        with contextlib.suppress(TypeError):  # a loader without len()
            built.meta["epoch_len"] = len(built.data_loaders[train_index])
    saved = cfg if seed is None else _with_seed(cfg, seed)

    def on_start() -> None:
        if rank == 0:
            _dump_config(saved, wd)

    hooks = [session.hook(on_start), *built.hooks]
    if progress:
        from fsm_trainer.hooks.progress import progress_bar_hook

        interval = cfg.log_config.interval if cfg.log_config is not None else 10
        hooks.append(progress_bar_hook(interval, val=False))
    if cfg.load_from and resume is None:
        from fsm_trainer.checkpoint import CheckpointError, load_weights

        try:
            load_weights(built.model, cfg.load_from, logger=logger)
        except (CheckpointError, OSError) as exc:
            msg = f"load_from: {exc}"
            raise UsageError(msg) from exc
        logger.info("load_from %s", cfg.load_from)
    from fsm_trainer.runner import run

    kwargs = built.run_kwargs()
    kwargs["hooks"] = hooks
    logger.info("work_dir: %s", wd)
    from fsm_trainer.config.validate import without_effect

    ignored = without_effect(cfg, distributed=world > 1)
    if ignored:
        logger.info("accepted without effect: %s", "; ".join(ignored))
    final = run(TrainState(), built.table, logger=logger, resume=resume, **kwargs)
    for hs in final.hook_states.values():
        if isinstance(hs, dict) and hs.get("preempted"):
            print(f"interrupted by {hs['preempted']}: saved {hs.get('checkpoint')}; "
                  f"continue with: fsm-trainer resume {wd}", file=sys.stderr)
            return EXIT_INTERRUPTED
    if rank == 0:
        print(run_summary(final, session, wd), flush=True)
    return EXIT_OK


def run_summary(final: Any, session: Session, work_dir: Path) -> str:
    """The end-of-run lines: progress and wall time, best metric and its checkpoint, last checkpoint, work dir."""
    from fsm_trainer.hooks.eval import eval_state

    elapsed = timedelta(seconds=round(time.monotonic() - session.t0))
    lines = [f"done: epoch {final.epoch}, iter {final.iter} in {elapsed}"]
    ev = eval_state(final)
    msgs = (session.ctx.meta.get("hook_msgs", {}) if session.ctx is not None else {}) or {}
    if ev.get("best_score") is not None:
        where = msgs.get("best_ckpt") or (str(work_dir / ev["best_ckpt"]) if ev.get("best_ckpt") else "")
        m = re.search(r"_(epoch|iter)_\d+$", str(ev.get("best_ckpt", "")))
        unit = m.group(1) if m else "epoch" if final.mode is not None and session.ctx.table.by == "epoch" else "iter"
        lines.append(f"  best {ev.get('key')}: {ev['best_score']:.4f} at {unit} {ev.get('best_at')}"
                     + (f" ({where})" if where else ""))
    elif ev.get("last"):
        shown = ", ".join(f"{k}: {v:.4f}" if isinstance(v, float) else f"{k}: {v}"
                          for k, v in (ev["last"].get("metrics") or {}).items())
        lines.append(f"  last evaluation: {shown}")
    last = session.last_checkpoint()
    lines.append(f"  last checkpoint: {last or '(none saved)'}")
    lines.append(f"  work dir: {work_dir}")
    return "\n".join(lines)


def default_work_dir(cfg: Any, config_name: str, work_dir: str | None = None) -> Path:
    """``--work-dir``, else the config's ``work_dir``, else ``work_dirs/<config name>`` (as ``train``)."""
    return Path(work_dir or cfg.work_dir or Path("work_dirs") / Path(config_name).stem)


def _with_seed(cfg: Any, seed: int) -> Any:
    import attrs

    return attrs.evolve(cfg, seed=seed)


def cmd_train(args: argparse.Namespace, session: Session) -> int:
    cfg = _load(args.config, args.cfg_options)
    return _train(cfg, session, config_name=args.config, work_dir=args.work_dir, resume=args.resume,
                  seed=args.seed, progress_flag=args.progress, launcher=args.launcher)


def cmd_resume(args: argparse.Namespace, session: Session) -> int:
    wd = Path(args.work_dir)
    if not wd.is_dir():
        msg = f"{wd}: no such work dir"
        raise UsageError(msg)
    config = args.config or str(_saved_config(wd))
    cfg = _load(config, args.cfg_options)
    return _train(cfg, session, config_name=config, work_dir=str(wd), resume="auto", seed=None,
                  progress_flag=args.progress, launcher=args.launcher)


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


def cmd_show(args: argparse.Namespace, session: Session) -> int:
    from fsm_trainer.config import unstructure_config
    from fsm_trainer.config.build import build
    from fsm_trainer.config.validate import without_effect

    cfg = _load(args.config, args.cfg_options)
    logger = console_logger("WARNING", progress=False)
    # The work dir train would use; nothing is written there (hooks are composed, never run).
    built = build(cfg, build_data=True, work_dir=default_work_dir(cfg, args.config))
    composed, notes = _compose(built, logger)
    data = unstructure_config(cfg)
    out = [f"# resolved config: {args.config}", pprint.pformat(data, sort_dicts=False, width=100), ""]
    ignored = without_effect(cfg)
    if ignored:
        out.append(f"# accepted without effect: {'; '.join(ignored)}")
    if cfg.variables:
        out.append(f"# helper variables (not used by the runner): {', '.join(cfg.variables)}")
    out += ["", "# hooks in registration order (config key -> hook)"]
    out += [f"{s.path:<22} {s.type}" for s in built.specs]
    out += ["", "# hook order per point", str(composed)]
    out += [f"# note: {n}" for n in notes]
    out += ["", "# transition table", str(built.table), "", "# transition table (Mermaid)", built.table.to_mermaid()]
    print("\n".join(out))
    return EXIT_OK


def _check_file_target(path: str, what: str) -> None:
    parent = Path(path).parent
    if not parent.is_dir():
        msg = f"{what} {path}: the directory {parent} does not exist"
        raise UsageError(msg)
    if Path(path).is_dir():
        msg = f"{what} {path}: is a directory"
        raise UsageError(msg)


def cmd_plan(args: argparse.Namespace, session: Session) -> int:
    from fsm_trainer.config.build import build
    from fsm_trainer.config.plan import make_plan
    from fsm_trainer.logs import check_output

    if args.out:
        check_output(args.out)
    if args.json:
        _check_file_target(args.json, "--json")
    cfg = _load(args.config, args.cfg_options)
    console_logger("WARNING", progress=False)
    built = build(cfg, work_dir=default_work_dir(cfg, args.config))
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


# --------------------------------------------------------------------------- replay / test / plot


def cmd_replay(args: argparse.Namespace, session: Session) -> int:
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
    console_logger("WARNING" if args.quiet else cfg.log_level, progress=False)
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


def cmd_test(args: argparse.Namespace, session: Session) -> int:
    from fsm_trainer.config.evaluate import evaluate_checkpoint

    cfg = _load(args.config, args.cfg_options)
    if args.json:
        _check_file_target(args.json, "--json")
    result = evaluate_checkpoint(cfg, args.checkpoint, split=args.split)
    samples = f" ({result.samples} samples)" if result.samples is not None else ""
    print(f"checkpoint: {result.checkpoint}")
    print(f"data.{result.split}{samples}, metric={result.metric!r}")
    for k, v in result.metrics.items():
        print(f"{k}: {v:.4f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"checkpoint": str(result.checkpoint), "split": result.split,
                                               "metrics": result.metrics}) + "\n", encoding="utf-8")
    return EXIT_OK


def cmd_plot(args: argparse.Namespace, session: Session) -> int:
    from fsm_trainer.logs import plot_logs

    out = plot_logs(args.logs, args.keys, args.out)
    print(f"plot written to {out}")
    return EXIT_OK


# --------------------------------------------------------------------------- parser


def _positive_int(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        msg = f"expected a positive integer, got {text!r}"
        raise argparse.ArgumentTypeError(msg) from None
    if n < 1:
        msg = f"expected a positive integer, got {n}"
        raise argparse.ArgumentTypeError(msg)
    return n


def make_parser() -> argparse.ArgumentParser:
    """The ``fsm-trainer`` argument parser."""
    p = argparse.ArgumentParser(prog="fsm-trainer", description=__doc__.splitlines()[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="exit codes: 0 done, 2 bad config, arguments or files, 130 interrupted, "
                                "1 failed run; -v or FSM_TRAINER_DEBUG=1 prints tracebacks")
    p.add_argument("-v", "--verbose", action="store_true", help="print the traceback of an error")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help=f"print the traceback of an error (or set {DEBUG_ENV}=1)")

    def options(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--cfg-options", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override config keys: a.b=1 c=[1,2] d.0.e=x (mmcv's syntax)")

    def launcher(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--launcher", choices=("none", "pytorch"), default="none",
                        help="'pytorch': distributed data-parallel under torchrun (process group from its "
                        f"environment, config dist_params); see {README_DIST}")

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
    common(t)
    t.set_defaults(func=cmd_train)

    s = sub.add_parser("show", help="print the resolved config, hook order and transition table",
                       description="Print the resolved config, the hook order per point and the transition table.")
    s.add_argument("config")
    options(s)
    common(s)
    s.set_defaults(func=cmd_show)

    pl = sub.add_parser("plan", help="dry run: LR/momentum per iteration, val/eval/checkpoint/log points",
                        description="Dry run without model compute: the LR and momentum at every train iteration, "
                        "where val, eval, checkpoints and log lines happen, and which checkpoints are kept.")
    pl.add_argument("config")
    pl.add_argument("--out", help="also plot LR/momentum and the events to this image file")
    pl.add_argument("--json", help="also write the plan as JSON to this file")
    pl.add_argument("--all", action="store_true", help="print every iteration, not only those with events")
    options(pl)
    common(pl)
    pl.set_defaults(func=cmd_plan)

    r = sub.add_parser("resume", help="continue the run in a work dir",
                       description=f"Continue the run in WORK_DIR from its newest checkpoint, with the {SAVED_CONFIG} "
                       "'train' wrote there (or --config).")
    r.add_argument("work_dir")
    r.add_argument("--config", help=f"config file (default: WORK_DIR/{SAVED_CONFIG})")
    launcher(r)
    options(r)
    progress(r)
    common(r)
    r.set_defaults(func=cmd_resume)

    rp = sub.add_parser("replay", help="re-run N train iterations from a checkpoint",
                        description="Re-run N train iterations from a checkpoint and print one JSON line per "
                        "iteration (loss, log_vars); nothing is written.")
    rp.add_argument("checkpoint")
    rp.add_argument("--iters", type=_positive_int, required=True, help="how many train iterations (>= 1)")
    rp.add_argument("--config", help=f"config file (default: {SAVED_CONFIG} next to the checkpoint)")
    rp.add_argument("--quiet", action="store_true", help="no log lines")
    options(rp)
    common(rp)
    rp.set_defaults(func=cmd_replay)

    te = sub.add_parser("test", help="evaluate a checkpoint on data.test (or data.val)",
                        description="Load CHECKPOINT (a checkpoint directory, a work dir or its 'latest' file, or a "
                        ".pth file) into the config's model and print the metrics of evaluation.metric (default "
                        "accuracy) on data.test, or data.val when the config has no test split.")
    te.add_argument("config")
    te.add_argument("checkpoint")
    te.add_argument("--split", choices=("test", "val"), help="the data split (default: test if the config has one)")
    te.add_argument("--json", help="also write the metrics as JSON to this file")
    options(te)
    common(te)
    te.set_defaults(func=cmd_test)

    pt = sub.add_parser("plot", help="plot training curves from .log.json files",
                        description="Plot training curves from mmcv-style .log.json files against the global train "
                        "iteration (across epochs, and across the logs of a resumed run).")
    pt.add_argument("logs", nargs="+", metavar="LOG.json")
    pt.add_argument("--keys", nargs="+", default=["loss"], help="values to plot (default: loss)")
    pt.add_argument("--out", required=True, help="image file to write (.png, .pdf, .svg)")
    common(pt)
    pt.set_defaults(func=cmd_plot)
    return p


def _message(exc: BaseException) -> str:
    if isinstance(exc, OSError) and not isinstance(exc, FsmTrainerError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename is not None else ""
        return f"{exc.strerror}{where}"
    text = str(exc).strip()
    if isinstance(exc, FsmTrainerError):
        return text or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def report_error(exc: BaseException, command: str, session: Session, *, debug: bool) -> int:
    """Print ``exc`` for the user and return the exit code: 2 bad input, 1 failed run."""
    if debug:
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    hint = "" if debug else f" (the traceback: -v or {DEBUG_ENV}=1)"
    user = isinstance(exc, (FsmTrainerError, OSError))
    if not session.started:
        if user:
            print(f"fsm-trainer {command}: {_message(exc)}", file=sys.stderr)
            return EXIT_USAGE
        print(f"fsm-trainer {command}: failed before training started: {_message(exc)}{hint}", file=sys.stderr)
        return EXIT_FAILED
    last = session.last_checkpoint()
    where = f"last checkpoint: {last}" if last else "no checkpoint was saved"
    again = f"; continue with: fsm-trainer resume {session.work_dir}" if last and session.work_dir else ""
    print(f"fsm-trainer {command}: the run failed: {_message(exc)}{'' if user else hint}\n"
          f"fsm-trainer {command}: {where}{again}", file=sys.stderr)
    return EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``fsm-trainer`` with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    parser = make_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or bad arguments (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE if exc.code else EXIT_OK
    debug = bool(getattr(args, "verbose", False)) or os.environ.get(DEBUG_ENV, "").strip() not in ("", "0")
    session = Session()
    try:
        return int(args.func(args, session))
    except KeyboardInterrupt:
        print(f"fsm-trainer {args.command}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:
        return report_error(exc, args.command, session, debug=debug)


if __name__ == "__main__":
    sys.exit(main())
