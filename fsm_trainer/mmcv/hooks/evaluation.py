"""mmcv's ``EvalHook`` and ``DistEvalHook``, always run as class hooks (mmcv's ``dataset.evaluate`` protocol)."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from fsm_trainer.mmcv.hook import Hook, MmcvCompatError, class_hook
from fsm_trainer.priority import Priority

if TYPE_CHECKING:
    from fsm_trainer.context import RunContext
    from fsm_trainer.hook import Hook as FsmHook


def single_gpu_test(model: Any, data_loader: Any) -> list[Any]:
    """mmcv's ``single_gpu_test``: ``model(return_loss=False, **batch)`` for dict batches, else ``model(inputs)``.

    Returns the per-sample results (a batch's result is split along its first dimension).
    """
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    results: list[Any] = []
    try:
        with torch.no_grad():
            for data in data_loader:
                if isinstance(data, dict):
                    result = model(return_loss=False, **data)
                else:
                    inputs = data[0] if isinstance(data, (tuple, list)) else data
                    result = model(inputs)
                results.extend(list(result) if isinstance(result, (torch.Tensor, list, tuple)) else [result])
    finally:
        if was_training:
            model.train()
    return results


class EvalHook(Hook):
    """mmcv's ``EvalHook`` (run at LOW by the runners): ``test_fn(model, dataloader)`` then ``dataset.evaluate``.

    Subclasses override ``evaluate(runner, results)`` (return the key score for ``save_best``),
    as downstream repos do. The best checkpoint is a checkpoint directory
    ``best_<key>_<epoch|iter>_<n>`` written through ``runner.save_checkpoint``.
    """

    rule_map: ClassVar[dict[str, Callable[[float, float], bool]]] = {
        "greater": lambda x, y: x > y, "less": lambda x, y: x < y}
    init_value_map: ClassVar[dict[str, float]] = {"greater": -math.inf, "less": math.inf}
    _default_greater_keys: ClassVar[list[str]] = ["acc", "top", "AR@", "auc", "precision", "mAP", "mDice", "mIoU",
                                                  "mAcc", "aAcc"]
    _default_less_keys: ClassVar[list[str]] = ["loss"]

    def __init__(self, dataloader: Any, start: int | None = None, interval: int = 1, by_epoch: bool = True,
                 save_best: str | None = None, rule: str | None = None,
                 test_fn: Callable[[Any, Any], list[Any]] | None = None, greater_keys: Sequence[str] | None = None,
                 less_keys: Sequence[str] | None = None, out_dir: str | None = None,
                 file_client_args: dict[str, Any] | None = None, **eval_kwargs: Any) -> None:
        del file_client_args
        if interval <= 0:
            msg = f"interval must be a positive number, but got {interval}"
            raise ValueError(msg)
        if not isinstance(by_epoch, bool):
            msg = "``by_epoch`` should be a boolean"
            raise TypeError(msg)
        if start is not None and start < 0:
            msg = f"The evaluation start epoch {start} is smaller than 0"
            raise ValueError(msg)
        if not (isinstance(save_best, str) or save_best is None):
            msg = f'"save_best" should be a str or None rather than {type(save_best)}'
            raise TypeError(msg)
        self.dataloader = dataloader
        self.interval = interval
        self.start = start
        self.by_epoch = by_epoch
        self.save_best = save_best
        self.eval_kwargs = eval_kwargs
        self.initial_flag = True
        self.test_fn = test_fn if test_fn is not None else single_gpu_test
        self.greater_keys = list(self._default_greater_keys if greater_keys is None else
                                 ([greater_keys] if isinstance(greater_keys, str) else greater_keys))
        self.less_keys = list(self._default_less_keys if less_keys is None else
                              ([less_keys] if isinstance(less_keys, str) else less_keys))
        self.best_ckpt_path: str | None = None
        if save_best is not None:
            self._init_rule(rule, save_best)
        self.out_dir = out_dir

    def _init_rule(self, rule: str | None, key_indicator: str) -> None:
        if rule not in self.rule_map and rule is not None:
            msg = f"rule must be greater, less or None, but got {rule}."
            raise KeyError(msg)
        if rule is None and key_indicator != "auto":
            lc = key_indicator.lower()
            greater = [k.lower() for k in self.greater_keys]
            less = [k.lower() for k in self.less_keys]
            if lc in greater:
                rule = "greater"
            elif lc in less:
                rule = "less"
            elif any(k in lc for k in greater):
                rule = "greater"
            elif any(k in lc for k in less):
                rule = "less"
            else:
                msg = f"Cannot infer the rule for key {key_indicator}, thus a specific rule must be specified."
                raise ValueError(msg)
        self.rule = rule
        self.key_indicator = key_indicator
        if rule is not None:
            self.compare_func = self.rule_map[rule]

    def to_fsm(self, ctx: RunContext) -> FsmHook | list[FsmHook]:
        if not hasattr(self, "priority"):
            self.priority = int(Priority.LOW)
        return class_hook(self, ctx)

    def before_run(self, runner: Any) -> None:
        work_dir = runner.work_dir
        if not self.out_dir:
            self.out_dir = work_dir
        elif work_dir is not None and self.out_dir != work_dir:
            self.out_dir = str(Path(self.out_dir) / Path(work_dir).name)
        if self.save_best is not None:
            runner.meta.setdefault("hook_msgs", {})
            self.best_ckpt_path = runner.meta["hook_msgs"].get("best_ckpt", None)

    def before_train_iter(self, runner: Any) -> None:
        if self.by_epoch or not self.initial_flag:
            return
        if self.start is not None and runner.iter >= self.start:
            self.after_train_iter(runner)
        self.initial_flag = False

    def before_train_epoch(self, runner: Any) -> None:
        if not (self.by_epoch and self.initial_flag):
            return
        if self.start is not None and runner.epoch >= self.start:
            self.after_train_epoch(runner)
        self.initial_flag = False

    def after_train_iter(self, runner: Any) -> None:
        if not self.by_epoch and self._should_evaluate(runner):
            from fsm_trainer.hooks.logger_base import flush_loggers

            ctx = getattr(runner, "_ctx", None)
            if ctx is not None:
                flush_loggers(ctx, runner._state(), "after_train_iter")
            runner.log_buffer.clear()
            self._do_evaluate(runner)

    def after_train_epoch(self, runner: Any) -> None:
        if self.by_epoch and self._should_evaluate(runner):
            self._do_evaluate(runner)

    def _do_evaluate(self, runner: Any) -> None:
        results = self.test_fn(runner.model, self.dataloader)
        runner.log_buffer.output["eval_iter_num"] = len(self.dataloader)
        key_score = self.evaluate(runner, results)
        if self.save_best and key_score:
            self._save_ckpt(runner, key_score)

    def _should_evaluate(self, runner: Any) -> bool:
        if self.by_epoch:
            current, check = runner.epoch, self.every_n_epochs
        else:
            current, check = runner.iter, self.every_n_iters
        if self.start is None:
            return bool(check(runner, self.interval))
        if current + 1 < self.start:
            return False
        return not (current + 1 - self.start) % self.interval

    def _save_ckpt(self, runner: Any, key_score: float) -> None:
        from fsm_trainer.checkpoint import remove_checkpoint

        if self.by_epoch:
            current, cur_type, cur_time = f"epoch_{runner.epoch + 1}", "epoch", runner.epoch + 1
        else:
            current, cur_type, cur_time = f"iter_{runner.iter + 1}", "iter", runner.iter + 1
        assert self.rule is not None
        best_score = runner.meta["hook_msgs"].get("best_score", self.init_value_map[self.rule])
        if self.compare_func(key_score, best_score):
            best_score = key_score
            runner.meta["hook_msgs"]["best_score"] = best_score
            previous = self.best_ckpt_path
            name = f"best_{self.key_indicator}_{current}"
            assert self.out_dir is not None
            path = runner.save_checkpoint(self.out_dir, filename_tmpl=name, create_symlink=False)
            self.best_ckpt_path = str(path)
            runner.meta["hook_msgs"]["best_ckpt"] = self.best_ckpt_path
            if previous and previous != self.best_ckpt_path and Path(previous).exists():
                remove_checkpoint(previous)
                runner.logger.info(f"The previous best checkpoint {previous} was removed")
            runner.logger.info(f"Now best checkpoint is saved as {name}.")
            runner.logger.info(f"Best {self.key_indicator} is {best_score:0.4f} at {cur_time} {cur_type}.")

    def evaluate(self, runner: Any, results: list[Any]) -> float | None:
        eval_res = self.dataloader.dataset.evaluate(results, logger=runner.logger, **self.eval_kwargs)
        for name, val in eval_res.items():
            runner.log_buffer.output[name] = val
        runner.log_buffer.ready = True
        if self.save_best is not None:
            if not eval_res:
                warnings.warn("Since `eval_res` is an empty dict, the behavior to save the best checkpoint will be "
                              "skipped in this evaluation.", stacklevel=2)
                return None
            if self.key_indicator == "auto":
                self._init_rule(self.rule, next(iter(eval_res)))
            return eval_res[self.key_indicator]  # type: ignore[no-any-return]
        return None


class DistEvalHook(EvalHook):
    """mmcv's ``DistEvalHook``: in one process, :class:`EvalHook` (extra arguments accepted)."""

    def __init__(self, dataloader: Any, start: int | None = None, interval: int = 1, by_epoch: bool = True,
                 save_best: str | None = None, rule: str | None = None,
                 test_fn: Callable[[Any, Any], list[Any]] | None = None, greater_keys: Sequence[str] | None = None,
                 less_keys: Sequence[str] | None = None, broadcast_bn_buffer: bool = True, tmpdir: str | None = None,
                 gpu_collect: bool = False, out_dir: str | None = None,
                 file_client_args: dict[str, Any] | None = None, **eval_kwargs: Any) -> None:
        from fsm_trainer.dist import get_dist_info

        if get_dist_info()[1] > 1:
            msg = "DistEvalHook with several ranks is not supported here; use fsm_trainer.hooks.eval_hook"
            raise MmcvCompatError(msg)
        del broadcast_bn_buffer, tmpdir, gpu_collect
        super().__init__(dataloader, start, interval, by_epoch, save_best, rule, test_fn, greater_keys, less_keys,
                         out_dir, file_client_args, **eval_kwargs)



__all__ = ["DistEvalHook", "EvalHook", "single_gpu_test"]
