"""mmcv's ``CheckpointHook``: unsubclassed, :func:`fsm_trainer.hooks.checkpoint_hook`; subclassed, mmcv's logic."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from fsm_trainer.mmcv.hook import MmcvCompatError, checkpoint_name

from ._base import MappedHook, shipped


class CheckpointHook(MappedHook):
    """mmcv's ``CheckpointHook`` (same arguments); checkpoints are directories (see ``runner.save_checkpoint``).

    Unsubclassed it runs as :func:`fsm_trainer.hooks.checkpoint_hook`. A subclass overriding a
    point or ``_save_checkpoint`` runs mmcv's logic: every ``interval`` epochs (``by_epoch``)
    or train iterations, and at the last one with ``save_last``, ``_save_checkpoint`` saves
    through ``runner.save_checkpoint`` into ``out_dir`` (default ``work_dir``; a given
    ``out_dir`` gets ``work_dir``'s last component appended, as mmcv), records the path in
    ``runner.meta['hook_msgs']['last_ckpt']`` and, with ``max_keep_ckpts > 0``, removes the
    checkpoints this hook wrote ``max_keep_ckpts * interval`` units earlier and before, back to
    the first one missing (mmcv's rule). The name is ``filename_tmpl`` (a keyword argument,
    default ``'epoch_{}.pth'``/``'iter_{}.pth'`` by ``by_epoch``) formatted with ``epoch + 1``
    or ``iter + 1`` by ``by_epoch``, without its suffix; the other keyword arguments
    (``create_symlink``, ``meta``) reach ``runner.save_checkpoint``.
    """

    customisable: ClassVar[tuple[str, ...]] = ("_save_checkpoint",)

    def __init__(self, interval: int = -1, by_epoch: bool = True, save_optimizer: bool = True,
                 out_dir: str | None = None, max_keep_ckpts: int = -1, save_last: bool = True,
                 sync_buffer: bool = False, file_client_args: dict[str, Any] | None = None, **kwargs: Any) -> None:
        del file_client_args
        self.interval, self.by_epoch, self.save_optimizer = interval, by_epoch, save_optimizer
        self.out_dir, self.max_keep_ckpts, self.save_last = out_dir, max_keep_ckpts, save_last
        self.sync_buffer = sync_buffer
        self.args = kwargs

    def fsm_factory(self, name: str, priority: int) -> Any:
        return shipped("checkpoint_hook")(self.interval, self.by_epoch, self.max_keep_ckpts, self.save_optimizer,
                                          None if self.out_dir is None else Path(self.out_dir), self.save_last,
                                          name=name, priority=priority)

    def before_run(self, runner: Any) -> None:
        work_dir = runner.work_dir
        if not self.out_dir:
            if work_dir is None:
                msg = f"{type(self).__name__} needs the runner's work_dir or out_dir=, got neither"
                raise MmcvCompatError(msg)
            self.out_dir = work_dir
        elif work_dir is not None and str(self.out_dir) != work_dir:
            self.out_dir = str(Path(self.out_dir) / Path(work_dir).name)
        runner.logger.info("Checkpoints will be saved to %s", self.out_dir)
        self.args.setdefault("create_symlink", True)

    def _sync_and_save(self, runner: Any) -> None:
        if self.sync_buffer:
            from fsm_trainer.hooks.dist import sync_buffers

            sync_buffers(runner.model)
        self._save_checkpoint(runner)

    def after_train_epoch(self, runner: Any) -> None:
        if not self.by_epoch:
            return
        if self.every_n_epochs(runner, self.interval) or (self.save_last and self.is_last_epoch(runner)):
            runner.logger.info(f"Saving checkpoint at {runner.epoch + 1} epochs")
            self._sync_and_save(runner)

    def after_train_iter(self, runner: Any) -> None:
        if self.by_epoch:
            return
        if self.every_n_iters(runner, self.interval) or (self.save_last and self.is_last_iter(runner)):
            runner.logger.info(f"Saving checkpoint at {runner.iter + 1} iterations")
            self._sync_and_save(runner)

    def _save_checkpoint(self, runner: Any) -> None:
        """Save the checkpoint of this point, note it in ``meta``, remove the old ones (``max_keep_ckpts``)."""
        from fsm_trainer.checkpoint import remove_checkpoint

        tmpl = self.args.get("filename_tmpl", "epoch_{}.pth" if self.by_epoch else "iter_{}.pth")
        current = runner.epoch + 1 if self.by_epoch else runner.iter + 1
        args = {k: v for k, v in self.args.items() if k != "filename_tmpl"}
        path = runner.save_checkpoint(self.out_dir, filename_tmpl=tmpl.format(current),
                                      save_optimizer=self.save_optimizer, **args)
        runner.meta.setdefault("hook_msgs", {})["last_ckpt"] = str(path)
        if self.max_keep_ckpts > 0 and self.interval > 0 and runner.rank == 0:
            assert self.out_dir is not None
            for step in range(current - self.max_keep_ckpts * self.interval, 0, -self.interval):
                old = Path(self.out_dir) / checkpoint_name(tmpl.format(step))
                if not old.is_dir():
                    break
                remove_checkpoint(old, logger=runner.logger)


__all__ = ["CheckpointHook"]
