"""mmcv's ``WandbLoggerHook``: the loggers' records to Weights & Biases.

Needs ``wandb`` (``pip install wandb``, or ``fsm-trainer[wandb]``); it is imported when the hook
is built. Offline runs (``WANDB_MODE=offline``) write into ``wandb/`` under the current
directory (or ``init_kwargs=dict(dir=...)``) and never reach the network.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fsm_trainer.context import RunContext
from fsm_trainer.hook import Hook
from fsm_trainer.hooks.logger_base import LogRecord, LogWriter, logger_hook, scalar_tags, writer
from fsm_trainer.priority import Priority
from fsm_trainer.state import TrainState

INSTALL = "pip install wandb (or pip install 'fsm-trainer[wandb]')"


def _import_wandb() -> Any:
    try:
        import wandb
    except ImportError as exc:
        msg = f"WandbLoggerHook needs the wandb package: {INSTALL}"
        raise ImportError(msg) from exc
    return wandb


def wandb_logger_hook(
    init_kwargs: Mapping[str, Any] | None = None,
    interval: int = 10,
    ignore_last: bool = True,
    reset_flag: bool = False,
    commit: bool = True,
    by_epoch: bool | None = None,
    with_step: bool = True,
    log_artifact: bool = True,
    out_suffix: str | Sequence[str] = (".log.json", ".log", ".py"),
    define_metric_cfg: Mapping[str, str] | None = None,
    *,
    name: str = "WandbLoggerHook",
    priority: int | str = Priority.VERY_LOW,
) -> Callable[[RunContext], Hook]:
    """Log every record's values to a wandb run, as mmcv's ``WandbLoggerHook`` (same arguments).

    Values are ``<mode>/<key>`` with ``learning_rate`` and ``momentum``, at step ``iter + 1``
    (``with_step``; else as a ``global_step`` value). The hook starts a run with ``init_kwargs``
    at ``before_run`` unless one is active; at ``after_run`` it uploads the work dir's files
    ending in ``out_suffix`` as an artifact (``log_artifact``) and finishes the run it started.

    Raises:
        ImportError: with the install command, when wandb is missing (when the hook is built).
    """
    suffixes = (out_suffix,) if isinstance(out_suffix, str) else tuple(out_suffix)

    def make_writer(ctx: RunContext, per_epoch: bool) -> LogWriter:
        wandb = _import_wandb()
        started = [False]

        def open_(s: TrainState) -> None:
            if wandb.run is None:
                wandb.init(**dict(init_kwargs or {}))
                started[0] = True
            for metric, summary in (define_metric_cfg or {}).items():
                wandb.define_metric(metric, summary=summary)

        def write(s: TrainState, record: LogRecord) -> None:
            tags = scalar_tags(ctx, record)
            if not tags:
                return
            if with_step:
                wandb.log(tags, step=record.step, commit=commit)
            else:
                wandb.log({**tags, "global_step": record.step}, commit=commit)

        def close() -> None:
            if log_artifact and ctx.work_dir is not None and ctx.work_dir.is_dir() and wandb.run is not None:
                artifact = wandb.Artifact(name="artifacts", type="model")
                for path in sorted(ctx.work_dir.iterdir()):
                    if path.is_file() and path.name.endswith(suffixes):
                        artifact.add_file(str(path))
                wandb.run.log_artifact(artifact)
            if started[0]:
                started[0] = False
                wandb.finish()

        return writer(write, open_, close)

    return logger_hook(make_writer, name=name, interval=interval, ignore_last=ignore_last,
                       reset_flag=reset_flag, by_epoch=by_epoch, priority=priority)


__all__ = ["INSTALL", "wandb_logger_hook"]
