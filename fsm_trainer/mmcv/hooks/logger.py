"""mmcv's ``LoggerHook`` base class and its loggers: text, TensorBoard, MLflow, Weights & Biases.

Unsubclassed, ``TextLoggerHook``, ``TensorboardLoggerHook``, ``MlflowLoggerHook`` and
``WandbLoggerHook`` run as fsm_trainer's shipped loggers (:mod:`fsm_trainer.hooks.logger_base`
decides when they log). :class:`LoggerHook` itself, and any subclass overriding a point,
``log`` or one of mmcv's helpers (``get_mode``, ``get_loggable_tags``...), runs mmcv's
``LoggerHook`` logic as a class hook: at its interval it averages ``runner.log_buffer`` and
calls ``self.log(runner)``, which sees the averages in ``runner.log_buffer.output``.

The optional packages (``tensorboard``, ``mlflow``, ``wandb``) are imported when the run
starts; a missing one raises ``ImportError`` naming the ``pip install`` line.
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from fsm_trainer.hook import Hook as FsmHook
from fsm_trainer.mmcv.hook import MmcvCompatError
from fsm_trainer.priority import Priority

from ._base import MappedHook, shipped

if TYPE_CHECKING:
    from fsm_trainer.context import RunContext


def _require(module: str, install: str, hook: str) -> Any:
    """Import ``module`` or raise ``ImportError`` naming the install line."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        msg = f"{hook} needs the {module.split('.')[0]} package: {install}"
        raise ImportError(msg) from exc


class LoggerHook(MappedHook):
    """mmcv's ``LoggerHook(interval=10, ignore_last=True, reset_flag=False, by_epoch=True)``; subclass it.

    Implement ``log(runner)``: it is called when ``runner.log_buffer`` is ready, i.e. every
    ``interval`` train iterations (counted inside the epoch with ``by_epoch``), at the last
    iteration of an epoch with ``ignore_last=False``, after an evaluation that put its results
    in the buffer, and after each val epoch (epoch-based runs), with the averages in
    ``runner.log_buffer.output``. ``get_mode``, ``get_epoch``, ``get_iter``, ``get_lr_tags``,
    ``get_momentum_tags``, ``get_loggable_tags`` and ``is_scalar`` are mmcv's helpers. The last
    logger of the run (in call order, shipped loggers included) clears the averages after
    logging, as mmcv's ``before_run`` arranges.

    >>> class Collect(LoggerHook):
    ...     def log(self, runner):
    ...         print(self.get_mode(runner), self.get_iter(runner), dict(runner.log_buffer.output))
    """

    default_priority = int(Priority.VERY_LOW)
    customisable: ClassVar[tuple[str, ...]] = (
        "log", "get_mode", "get_epoch", "get_iter", "get_lr_tags", "get_momentum_tags", "get_loggable_tags",
        "is_scalar")

    def __init__(self, interval: int = 10, ignore_last: bool = True, reset_flag: bool = False,
                 by_epoch: bool = True) -> None:
        self.interval = interval
        self.ignore_last = ignore_last
        self.reset_flag = reset_flag
        self.by_epoch = by_epoch

    def customised(self) -> bool:
        return self._mapped is LoggerHook or super().customised()

    def uses_log_buffer(self) -> bool:
        return True

    def class_fsm(self, ctx: RunContext) -> FsmHook:
        interval = self.interval
        if isinstance(interval, bool) or not isinstance(interval, int) or interval <= 0:
            msg = f"{type(self).__name__}: interval must be a positive int, got {interval!r}"
            raise MmcvCompatError(msg)
        made = super().class_fsm(ctx)
        ctx.register_logger(made.name)
        ctx.log_buffer.keep(interval)  # the shared histories keep what this logger averages
        return made

    def log(self, runner: Any) -> Any:
        """Write ``runner.log_buffer.output`` somewhere; subclasses implement it."""
        msg = f"{type(self).__name__} must implement log(runner)"
        raise NotImplementedError(msg)

    @staticmethod
    def is_scalar(val: Any, include_np: bool = True, include_torch: bool = True) -> bool:
        """Whether ``val`` is a number (or a 0-d NumPy array, or a one-element tensor)."""
        if isinstance(val, numbers.Number):
            return True
        if include_np and type(val).__module__ == "numpy" and getattr(val, "ndim", None) == 0:
            return True
        return bool(include_torch and isinstance(val, torch.Tensor) and len(val) == 1)

    def get_mode(self, runner: Any) -> str:
        """``'train'``, or ``'val'`` in a val phase and for a train-phase record without ``time`` (mmcv's rule)."""
        if runner.mode == "train":
            return "train" if "time" in runner.log_buffer.output else "val"
        if runner.mode == "val":
            return "val"
        msg = f"runner.mode must be 'train' or 'val', got {runner.mode!r}"
        raise MmcvCompatError(msg)

    def get_epoch(self, runner: Any) -> int:
        """``epoch + 1`` in a train phase, ``epoch`` in a val phase."""
        if runner.mode == "train":
            return int(runner.epoch) + 1
        if runner.mode == "val":
            return int(runner.epoch)
        msg = f"runner.mode must be 'train' or 'val', got {runner.mode!r}"
        raise MmcvCompatError(msg)

    def get_iter(self, runner: Any, inner_iter: bool = False) -> int:
        """``inner_iter + 1`` with ``inner_iter`` and ``by_epoch``, else ``iter + 1``."""
        if self.by_epoch and inner_iter:
            return int(runner.inner_iter) + 1
        return int(runner.iter) + 1

    def get_lr_tags(self, runner: Any) -> dict[str, float]:
        """``learning_rate`` (or ``learning_rate/<optimizer>``): the first param group's LR."""
        lrs = runner.current_lr()
        if isinstance(lrs, dict):
            return {f"learning_rate/{name}": value[0] for name, value in lrs.items()}
        return {"learning_rate": lrs[0]}

    def get_momentum_tags(self, runner: Any) -> dict[str, float]:
        """``momentum`` (or ``momentum/<optimizer>``): the first param group's momentum."""
        momentums = runner.current_momentum()
        if isinstance(momentums, dict):
            return {f"momentum/{name}": value[0] for name, value in momentums.items()}
        return {"momentum": momentums[0]}

    def get_loggable_tags(self, runner: Any, allow_scalar: bool = True, allow_text: bool = False,
                          add_mode: bool = True, tags_to_skip: tuple[str, ...] = ("time", "data_time"),
                          ) -> dict[str, Any]:
        """The buffer's averages as ``<mode>/<key>`` tags, plus the LR and momentum tags."""
        tags: dict[str, Any] = {}
        for var, val in runner.log_buffer.output.items():
            if var in tags_to_skip:
                continue
            if self.is_scalar(val) and not allow_scalar:
                continue
            if isinstance(val, str) and not allow_text:
                continue
            tags[f"{self.get_mode(runner)}/{var}" if add_mode else var] = val
        tags.update(self.get_lr_tags(runner))
        tags.update(self.get_momentum_tags(runner))
        return tags

    def before_run(self, runner: Any) -> None:
        ctx = getattr(runner, "_ctx", None)
        shipped_loggers = set(ctx.loggers) if ctx is not None else set()
        for hook in runner.hooks[::-1]:
            if isinstance(hook, LoggerHook):
                hook.reset_flag = True
                break
            if isinstance(hook, FsmHook) and hook.name in shipped_loggers:
                break  # a shipped logger is the last one: it clears the averages itself

    def before_epoch(self, runner: Any) -> None:
        runner.log_buffer.clear()

    def _log_ready(self, runner: Any) -> None:
        if runner.log_buffer.ready:
            self.log(runner)
            if self.reset_flag:
                runner.log_buffer.clear_output()

    def after_train_iter(self, runner: Any) -> None:
        if self.by_epoch:
            due = self.every_n_inner_iters(runner, self.interval)
        else:
            due = self.every_n_iters(runner, self.interval)
        if due or (self.end_of_epoch(runner) and not self.ignore_last):
            runner.log_buffer.average(self.interval)
        self._log_ready(runner)

    def after_train_epoch(self, runner: Any) -> None:
        self._log_ready(runner)

    def after_val_epoch(self, runner: Any) -> None:
        runner.log_buffer.average()
        self.log(runner)
        if self.reset_flag:
            runner.log_buffer.clear_output()


def _round_float(items: Any) -> Any:
    if isinstance(items, list):
        return [_round_float(item) for item in items]
    if isinstance(items, float):
        return round(items, 5)
    return items


class TextLoggerHook(LoggerHook):
    """mmcv's ``TextLoggerHook`` (VERY_LOW); ``out_dir`` (a copy of the logs elsewhere) is not supported.

    Unsubclassed it runs as :func:`fsm_trainer.hooks.text_logger_hook`. A subclass overriding
    a point, ``log``, ``_log_info``, ``_dump_log``... runs mmcv's ``TextLoggerHook``: ``log``
    builds the record (``mode, epoch, iter, lr, [memory,] <averages>``), ``_log_info`` writes
    its line (fsm_trainer's format, :func:`fsm_trainer.hooks.logger.format_line`) to the run's
    logger and to ``work_dir/<timestamp>.log``, ``_dump_log`` appends it to
    ``work_dir/<timestamp>.log.json``; the run's ``meta`` (when not empty) is the first JSON line.
    """

    customisable = (*LoggerHook.customisable, "_log_info", "_dump_log", "_round_float", "_get_max_memory")

    def __init__(self, by_epoch: bool = True, interval: int = 10, ignore_last: bool = True, reset_flag: bool = False,
                 interval_exp_name: int = 1000, out_dir: str | None = None,
                 out_suffix: str | tuple[str, ...] = (".log.json", ".log", ".py"), keep_local: bool = True,
                 file_client_args: dict[str, Any] | None = None) -> None:
        del file_client_args
        if out_dir is not None:
            msg = "TextLoggerHook(out_dir=...) is not supported: the logs are written to work_dir; copy them yourself"
            raise MmcvCompatError(msg)
        super().__init__(interval, ignore_last, reset_flag, by_epoch)
        self.interval_exp_name = interval_exp_name
        self.out_dir = out_dir
        self.out_suffix = out_suffix
        self.keep_local = keep_local
        self.time_sec_tot = 0.0
        self.start_iter = 0
        self.json_log_path: str | None = None
        self.log_path: str | None = None

    def fsm_factory(self, name: str, priority: int) -> Any:
        return shipped("text_logger_hook")(self.interval, ignore_last=self.ignore_last, reset_flag=self.reset_flag,
                                           by_epoch=self.by_epoch, interval_exp_name=self.interval_exp_name,
                                           name=name, priority=priority)

    def before_run(self, runner: Any) -> None:
        super().before_run(runner)
        self.start_iter = runner.iter
        work_dir = runner.work_dir
        if work_dir is not None:
            Path(work_dir).mkdir(parents=True, exist_ok=True)
            self.json_log_path = str(Path(work_dir) / f"{runner.timestamp}.log.json")
            self.log_path = str(Path(work_dir) / f"{runner.timestamp}.log")
        if runner.meta:
            self._dump_log(runner.meta, runner)

    def _get_max_memory(self, runner: Any) -> int:
        """The peak CUDA memory in MB (the largest over the ranks)."""
        mem = torch.cuda.max_memory_allocated()
        mem_mb = torch.tensor([int(mem) // (1024 * 1024)], dtype=torch.int, device="cuda")
        if runner.world_size > 1:
            import torch.distributed as dist

            dist.reduce(mem_mb, 0, op=dist.ReduceOp.MAX)
        return int(mem_mb.item())

    def _log_info(self, log_dict: dict[str, Any], runner: Any) -> None:
        import datetime

        from fsm_trainer.hooks.logger import format_line

        meta = runner.meta
        if meta is not None and "exp_name" in meta and (
                self.every_n_iters(runner, self.interval_exp_name) or (self.by_epoch and self.end_of_epoch(runner))):
            runner.logger.info(f"Exp name: {meta['exp_name']}")
        eta = None
        if log_dict["mode"] == "train" and "time" in log_dict:
            self.time_sec_tot += log_dict["time"] * self.interval
            time_sec_avg = self.time_sec_tot / (runner.iter - self.start_iter + 1)
            eta = str(datetime.timedelta(seconds=int(time_sec_avg * (runner.max_iters - runner.iter - 1))))
        loader = runner.data_loader
        line = format_line(log_dict, by_epoch=self.by_epoch, loader_len=None if loader is None else len(loader),
                           max_iters=runner.max_iters, eta=eta)
        runner.logger.info(line)
        if self.log_path is not None and runner.rank == 0:
            with open(self.log_path, "a", encoding="utf-8") as f:
                f.write(line + "\n")

    def _dump_log(self, log_dict: Mapping[str, Any], runner: Any) -> None:
        json_log = {k: self._round_float(v) for k, v in log_dict.items()}
        if self.json_log_path is not None and runner.rank == 0:
            with open(self.json_log_path, "a", encoding="utf-8") as f:
                f.write(json.dumps(json_log, default=str) + "\n")

    def _round_float(self, items: Any) -> Any:
        return _round_float(items)

    def log(self, runner: Any) -> dict[str, Any]:
        output = runner.log_buffer.output
        cur_iter = output.pop("eval_iter_num") if "eval_iter_num" in output else self.get_iter(runner, True)
        log_dict: dict[str, Any] = {"mode": self.get_mode(runner), "epoch": self.get_epoch(runner),
                                    "iter": cur_iter}
        cur_lr = runner.current_lr()
        log_dict["lr"] = {k: v[0] for k, v in cur_lr.items()} if isinstance(cur_lr, dict) else cur_lr[0]
        if "time" in output and torch.cuda.is_available():
            log_dict["memory"] = self._get_max_memory(runner)
        log_dict = dict(log_dict, **output)
        self._log_info(log_dict, runner)
        self._dump_log(log_dict, runner)
        return log_dict


class TensorboardLoggerHook(LoggerHook):
    """mmcv's ``TensorboardLoggerHook(log_dir=None, interval, ignore_last, reset_flag, by_epoch)``.

    Unsubclassed it runs as :func:`fsm_trainer.hooks.tensorboard_logger_hook`; a subclass runs
    mmcv's: a ``SummaryWriter`` on ``log_dir`` (default ``work_dir/tf_logs``), every tag of
    ``get_loggable_tags(runner, allow_text=True)`` at step ``iter + 1``.
    """

    def __init__(self, log_dir: str | None = None, interval: int = 10, ignore_last: bool = True,
                 reset_flag: bool = False, by_epoch: bool = True) -> None:
        super().__init__(interval, ignore_last, reset_flag, by_epoch)
        self.log_dir = log_dir
        self.writer: Any = None

    def fsm_factory(self, name: str, priority: int) -> Any:
        return shipped("tensorboard_logger_hook")(self.log_dir, self.interval, ignore_last=self.ignore_last,
                                                  reset_flag=self.reset_flag, by_epoch=self.by_epoch, name=name,
                                                  priority=priority)

    def before_run(self, runner: Any) -> None:
        super().before_run(runner)
        if runner.rank != 0:
            return
        summary = _require("torch.utils.tensorboard", "pip install tensorboard (or fsm-trainer[tensorboard])",
                           type(self).__name__)
        if self.log_dir is None:
            if runner.work_dir is None:
                msg = f"{type(self).__name__} needs log_dir= or the runner's work_dir, got neither"
                raise MmcvCompatError(msg)
            self.log_dir = str(Path(runner.work_dir) / "tf_logs")
        self.writer = summary.SummaryWriter(self.log_dir)

    def log(self, runner: Any) -> None:
        if runner.rank != 0:
            return
        for tag, val in self.get_loggable_tags(runner, allow_text=True).items():
            if isinstance(val, str):
                self.writer.add_text(tag, val, self.get_iter(runner))
            else:
                self.writer.add_scalar(tag, val, self.get_iter(runner))

    def after_run(self, runner: Any) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class MlflowLoggerHook(LoggerHook):
    """mmcv's ``MlflowLoggerHook(exp_name=None, tags=None, params=None, log_model=True, interval=10, ...)``.

    Unsubclassed it runs as :func:`fsm_trainer.hooks.mlflow_logger_hook` (which starts an
    MLflow run if none is active and ends it). A subclass runs mmcv's: ``before_run`` sets the
    experiment, tags and params, ``log`` sends ``get_loggable_tags(runner)`` at step
    ``iter + 1``, ``after_run`` logs the model (``log_model``). ``mlflow`` is imported when the
    run starts (``import_mlflow``), not when the hook is made.
    """

    def __init__(self, exp_name: str | None = None, tags: dict[str, Any] | None = None,
                 params: dict[str, Any] | None = None, log_model: bool = True, interval: int = 10,
                 ignore_last: bool = True, reset_flag: bool = False, by_epoch: bool = True) -> None:
        super().__init__(interval, ignore_last, reset_flag, by_epoch)
        self.exp_name, self.tags, self.params, self.log_model = exp_name, tags, params, log_model
        self.mlflow: Any = None
        self.mlflow_pytorch: Any = None

    def fsm_factory(self, name: str, priority: int) -> Any:
        return shipped("mlflow_logger_hook")(self.exp_name, self.tags, self.params, self.log_model, self.interval,
                                             ignore_last=self.ignore_last, reset_flag=self.reset_flag,
                                             by_epoch=self.by_epoch, name=name, priority=priority)

    def import_mlflow(self) -> None:
        """Import ``mlflow`` (``ImportError`` naming the install line when it is missing)."""
        self.mlflow = _require("mlflow", "pip install mlflow (or fsm-trainer[mlflow])", type(self).__name__)

    def before_run(self, runner: Any) -> None:
        super().before_run(runner)
        if runner.rank != 0:
            return
        if self.mlflow is None:
            self.import_mlflow()
        if self.exp_name is not None:
            self.mlflow.set_experiment(self.exp_name)
        if self.tags is not None:
            self.mlflow.set_tags(self.tags)
        if self.params is not None:
            self.mlflow.log_params(self.params)

    def log(self, runner: Any) -> None:
        if runner.rank != 0:
            return
        if self.mlflow is None:
            self.import_mlflow()
        tags = self.get_loggable_tags(runner)
        if tags:
            self.mlflow.log_metrics(tags, step=self.get_iter(runner))

    def after_run(self, runner: Any) -> None:
        if self.log_model and runner.rank == 0:
            if self.mlflow_pytorch is None:
                self.mlflow_pytorch = _require("mlflow.pytorch", "pip install mlflow", type(self).__name__)
            self.mlflow_pytorch.log_model(runner.model, name="models")


class WandbLoggerHook(LoggerHook):
    """mmcv's ``WandbLoggerHook(init_kwargs=None, interval=10, ignore_last=True, reset_flag=False, commit=True,
    by_epoch=True, with_step=True, log_artifact=True, out_suffix=('.log.json', '.log', '.py'),
    define_metric_cfg=None)``.

    Unsubclassed it runs as ``fsm_trainer.hooks.wandb.wandb_logger_hook``. A subclass runs
    mmcv's: ``before_run`` starts a wandb run with ``init_kwargs`` (and ``define_metric_cfg``),
    ``log`` sends ``get_loggable_tags(runner)`` (at step ``iter + 1`` with ``with_step``, else as
    ``global_step``), ``after_run`` uploads the work dir's files ending in ``out_suffix``
    (``log_artifact``) and finishes the run. ``wandb`` is imported when the run starts.
    """

    def __init__(self, init_kwargs: dict[str, Any] | None = None, interval: int = 10, ignore_last: bool = True,
                 reset_flag: bool = False, commit: bool = True, by_epoch: bool = True, with_step: bool = True,
                 log_artifact: bool = True, out_suffix: str | tuple[str, ...] = (".log.json", ".log", ".py"),
                 define_metric_cfg: dict[str, str] | None = None) -> None:
        super().__init__(interval, ignore_last, reset_flag, by_epoch)
        self.init_kwargs, self.commit, self.with_step = init_kwargs, commit, with_step
        self.log_artifact, self.out_suffix, self.define_metric_cfg = log_artifact, out_suffix, define_metric_cfg
        self.wandb: Any = None

    def fsm_factory(self, name: str, priority: int) -> Any:
        from fsm_trainer.hooks.wandb import wandb_logger_hook

        return wandb_logger_hook(self.init_kwargs, self.interval, self.ignore_last, self.reset_flag, self.commit,
                                 self.by_epoch, self.with_step, self.log_artifact, self.out_suffix,
                                 self.define_metric_cfg, name=name, priority=priority)

    def import_wandb(self) -> None:
        """Import ``wandb`` (``ImportError`` naming the install line when it is missing)."""
        from fsm_trainer.hooks.wandb import INSTALL

        self.wandb = _require("wandb", INSTALL, type(self).__name__)

    def before_run(self, runner: Any) -> None:
        super().before_run(runner)
        if runner.rank != 0:
            return
        if self.wandb is None:
            self.import_wandb()
        self.wandb.init(**(self.init_kwargs or {}))
        for metric, summary in (self.define_metric_cfg or {}).items():
            self.wandb.define_metric(metric, summary=summary)

    def log(self, runner: Any) -> None:
        if runner.rank != 0:
            return
        tags = self.get_loggable_tags(runner)
        if not tags:
            return
        if self.with_step:
            self.wandb.log(tags, step=self.get_iter(runner), commit=self.commit)
        else:
            tags["global_step"] = self.get_iter(runner)
            self.wandb.log(tags, commit=self.commit)

    def after_run(self, runner: Any) -> None:
        if runner.rank != 0 or self.wandb is None:
            return
        if self.log_artifact and runner.work_dir is not None:
            suffixes = (self.out_suffix,) if isinstance(self.out_suffix, str) else tuple(self.out_suffix)
            artifact = self.wandb.Artifact(name="artifacts", type="model")
            for path in sorted(Path(runner.work_dir).rglob("*")):
                if path.is_file() and path.name.endswith(suffixes):
                    artifact.add_file(str(path))
            self.wandb.log_artifact(artifact)
        self.wandb.finish()


__all__ = ["LoggerHook", "MlflowLoggerHook", "TensorboardLoggerHook", "TextLoggerHook", "WandbLoggerHook"]
