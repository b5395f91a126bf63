"""Resume: choosing the checkpoint a run continues from, and putting it back into the run.

``resume="auto"`` takes the newest checkpoint that passes every check, in the checkpoint
hooks' directories and the work dir; each one that fails is reported with a warning naming
the file and the reason, and the previous one is tried. An explicit checkpoint path must be
valid: a failed check is an error, never a fallback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import attrs

from fsm_trainer.checkpoint._discovery import (
    UNKNOWN_ORDER,
    _follow_latest,
    _or_displaced,
    _order,
    list_checkpoints,
    unlisted_checkpoints,
)
from fsm_trainer.checkpoint._errors import (
    CheckpointError,
    CheckpointMismatchError,
    CheckpointNotFoundError,
    CorruptCheckpointError,
    NotACheckpointError,
)
from fsm_trainer.checkpoint._format import Checkpoint, _not_a_checkpoint, load_checkpoint
from fsm_trainer.checkpoint._layout import LATEST, MANIFEST, STATE_FILE
from fsm_trainer.checkpoint._snapshot import _for_rank
from fsm_trainer.checkpoint._weights import (
    check_model_fit,
    check_optimizer_state,
    load_model_state,
    load_optimizer_state,
    model_layout,
)
from fsm_trainer.errors import FsmTrainerError

_log = logging.getLogger("fsm_trainer")

Check = Callable[[Checkpoint], None]
"""Raises a :class:`CheckpointError` when a loaded checkpoint does not fit the run."""


def _load(path: Path, check: Check | None) -> Checkpoint:
    ck = load_checkpoint(path)
    if check is not None:
        check(ck)
    return ck


def find_latest(directory: str | Path, *, logger: logging.Logger | None = None,
                check: Check | None = None) -> Checkpoint | None:
    """The newest checkpoint in ``directory`` that passes every check, or ``None``.

    Each invalid candidate is reported on ``logger`` (a warning naming the file and the failed
    check) and the previous one is tried; so is every checkpoint whose manifest is damaged or
    missing, whose progress cannot be known. ``check`` (e.g. "fits this run's model") runs on
    each candidate that loads. The ``latest`` pointer is only advisory: a checkpoint committed
    after the pointer's last update (a crash in between) is found by the scan.

    Raises:
        CheckpointMismatchError: no candidate is valid and some failed ``check`` with a
            mismatch (the newest such error): the run itself does not fit its checkpoints,
            so starting afresh would be wrong.
    """
    log = logger or _log
    directory = Path(directory)
    mismatch: CheckpointMismatchError | None = None
    for p in unlisted_checkpoints(directory):
        log.warning("skipping invalid checkpoint %s: %s: missing (the checkpoint cannot be verified)", p, p / MANIFEST)
    candidates = list_checkpoints(directory)
    # A manifest whose order cannot be read is damaged, so the checkpoint fails to load too; it
    # sorts last but may be the newest: try (and report) such checkpoints first.
    unknown = [p for p in candidates if _order(p) == UNKNOWN_ORDER]
    for p in [*unknown, *(p for p in candidates if p not in unknown)]:
        try:
            return _load(p, check)
        except CheckpointMismatchError as exc:
            mismatch = mismatch or exc
            log.warning("skipping invalid checkpoint %s: %s", p, exc)
        except CheckpointError as exc:
            log.warning("skipping invalid checkpoint %s: %s", p, exc)
    if mismatch is not None:
        raise mismatch
    return None


def resolve_resume(resume: str | Path, search: Sequence[Path], *, logger: logging.Logger | None = None,
                   check: Check | None = None) -> Checkpoint | None:
    """The checkpoint ``run(..., resume=...)`` continues from.

    ``"auto"``: the newest valid checkpoint in the first of ``search`` that has one, or
    ``None`` (a new run) when there is none. A checkpoint directory: that checkpoint, which
    must be valid. A directory of checkpoints: its newest valid one. A ``latest`` file: the
    checkpoint it names, or the newest valid one if that one is invalid (the pointer is
    advisory). Any other file is an error, also a one-line text file naming an existing
    checkpoint. ``check`` runs on each candidate that loads, as part of "valid".

    Raises:
        CheckpointError: as :func:`load_checkpoint` and ``check``; also when a named directory
            holds no valid checkpoint; CheckpointMismatchError as :func:`find_latest`.
    """
    log = logger or _log
    if isinstance(resume, str) and resume == "auto":
        for d in search:
            ck = find_latest(d, logger=log, check=check)
            if ck is not None:
                return ck
        log.info("resume='auto': no checkpoint in %s; starting a new run", ", ".join(map(str, search)) or "(nowhere)")
        return None
    path = _or_displaced(Path(resume))
    if not path.exists():
        msg = f"resume={str(resume)!r}: no such file or directory"
        raise CheckpointNotFoundError(msg)
    if path.is_dir() and not (path / MANIFEST).exists():
        ck = find_latest(path, logger=log, check=check)
        if ck is None:
            msg = f"resume={str(resume)!r}: no valid checkpoint in this directory"
            raise CheckpointError(msg)
        return ck
    if path.is_file() and path.name != LATEST:
        if _follow_latest(path) is not None:
            # A one-line text file naming a checkpoint (notes, a copied pointer): not the writer's
            # pointer, so never followed to a fallback.
            msg = (f"resume={str(resume)!r}: {_not_a_checkpoint(path)}; only a file named {LATEST!r} is followed "
                   "to the checkpoint it names")
            raise NotACheckpointError(msg)
        return _load(path, check)
    if path.is_file() and _follow_latest(path) is not None:
        try:
            return _load(path, check)
        except CheckpointError as exc:
            log.warning("%s names an invalid checkpoint (%s); looking for the newest valid one", path, exc)
            ck = find_latest(path.parent, logger=log, check=check)
            if ck is None:
                msg = f"resume={str(resume)!r}: no valid checkpoint in {path.parent}"
                raise CheckpointError(msg) from exc
            return ck
    return _load(path, check)


def _check_position(ck: Checkpoint, ctx: Any) -> None:
    """Raise unless the saved data position lies inside this run's loaders (where they have a length)."""
    from fsm_trainer.dist import get_dist_info, rescale_position

    where = ck.path / STATE_FILE
    world, saved_world = get_dist_info()[1], int(ck.data.get("world_size", 1))
    s, table = ck.state, ck.table
    if table.by == "epoch":
        if s.phase >= 0 and table.workflow[s.phase][0] == "train" and s.inner_iter:
            k, n = rescale_position(s.inner_iter, saved_world, world), ctx.loader_len(s.phase)
            if n is not None and k > n:
                msg = (f"{where}: the saved position is after batch {k} of train epoch {s.epoch}, but the loader "
                       f"of workflow entry {s.phase} has {n} batches")
                raise CheckpointMismatchError(msg)
        return
    if ck.data.get("kind") != "iter":
        return
    loaders = ck.data["loaders"]
    if len(loaders) != len(ctx.data_loaders):
        msg = f"{where}: {len(loaders)} loader positions saved, this run has {len(ctx.data_loaders)} loaders"
        raise CheckpointMismatchError(msg)
    for j, (_, index) in enumerate(loaders):
        k, n = rescale_position(index, saved_world, world), ctx.loader_len(j)
        if n is not None and k > n:
            msg = f"{where}: loader {j} was saved after batch {k} of a pass, but it has {n} batches"
            raise CheckpointMismatchError(msg)


def fits_run(ctx: Any, *, strict: bool = True) -> Check:
    """The check that a loaded checkpoint fits the run ``ctx``, before anything of the run is touched.

    Same workflow; with ``strict``, the model's exact tensor names, shapes and dtypes; an
    optimizer state that fits the optimizer; a data position inside the run's loaders.
    """
    layout: list[Any] = []

    def check(ck: Checkpoint) -> None:
        from fsm_trainer.dist import is_fsdp

        saved, table = ck.table, ctx.table
        if (saved.by, saved.workflow) != (table.by, table.workflow):
            msg = (
                f"{ck.path} was saved by a {saved.by}-based run with workflow {list(saved.workflow)}; "
                f"this run is {table.by}-based with workflow {list(table.workflow)}"
            )
            raise CheckpointMismatchError(msg)
        sharded = is_fsdp(ctx.model)  # its state_dict() is a collective: load_model_state checks it on every rank
        if strict and not sharded and hasattr(ctx.model, "load_state_dict") and hasattr(ctx.model, "state_dict"):
            if not layout:
                layout.append(model_layout(ctx.model))
            check_model_fit(layout[0], ck.model, type(ctx.model).__name__, ck.path)
        if ctx.optimizer is not None and ck.optimizer is not None and not sharded:
            check_optimizer_state(ctx.optimizer, ck.optimizer, ck.path / STATE_FILE)
        _check_position(ck, ctx)

    return check


@attrs.define
class Restorer:
    """Puts a loaded checkpoint back into a run; :func:`fsm_trainer.run` drives it.

    Order: :meth:`find` loads the model and optimizer before the run starts; the loop calls
    :meth:`load_hooks` after ``before_run`` (and ``before_epoch``, iter-based), then
    :meth:`load_rng` right before the first thing the original run did after the save.
    """

    ckpt: Checkpoint
    ctx: Any

    @classmethod
    def find(cls, resume: str | Path, ctx: Any, *, strict: bool = True) -> Restorer | None:
        """Resolve ``resume`` (see :func:`resolve_resume`), check it fits the run, load weights.

        Every check (:func:`fits_run`) happens before the model is touched, so ``"auto"``
        falls back past a checkpoint that does not fit, with a warning.

        Raises:
            CheckpointError: as :func:`resolve_resume`, or the checkpoint belongs to another
                workflow; CheckpointMismatchError for another model (with ``strict``) or
                optimizer, or a data position outside this run's loaders.
        """
        from fsm_trainer.dist import broadcast_object, get_dist_info

        search = list(dict.fromkeys([*ctx.checkpoint_dirs, *([ctx.work_dir] if ctx.work_dir else [])]))
        check = fits_run(ctx, strict=strict)
        if get_dist_info()[1] > 1:
            # Rank 0 picks the checkpoint and every rank loads that one: ranks scanning the
            # directory on their own could disagree, and a failed check must stop them all.
            found: Any = None
            if get_dist_info()[0] == 0:
                try:
                    ck0 = resolve_resume(resume, search, logger=ctx.logger, check=check)
                    found = None if ck0 is None else str(ck0.path)
                except CheckpointError as exc:
                    found = exc
            found = broadcast_object(found)
            if isinstance(found, CheckpointError):
                raise found
            ck = None if found is None else load_checkpoint(found)
        else:
            ck = resolve_resume(resume, search, logger=ctx.logger, check=check)
        if ck is None:
            return None
        saved, table = ck.table, ctx.table
        if (saved.max_epochs, saved.max_iters) != (table.max_epochs, table.max_iters):
            ctx.logger.info("resuming with max_epochs=%s, max_iters=%s (the checkpoint's run had %s, %s)",
                            table.max_epochs, table.max_iters, saved.max_epochs, saved.max_iters)
        if hasattr(ctx.model, "load_state_dict"):
            load_model_state(ctx.model, ck.model, strict=strict, logger=ctx.logger)
        if ctx.optimizer is not None:
            if ck.optimizer is None:
                ctx.logger.warning("%s has no optimizer state (save_optimizer=False); the optimizer starts fresh",
                                   ck.path)
            else:
                load_optimizer_state(ctx.model, ctx.optimizer, ck.optimizer)
        ctx.ledger.resumed_from = ck.path
        s = ck.state
        ctx.logger.info("resumed from %s: epoch %d, iter %d, inner_iter %d, %s", ck.path, s.epoch, s.iter,
                        s.inner_iter, table.node_name(s.phase))
        return cls(ck, ctx)

    def load_hooks(self) -> None:
        """Call each hook's ``load_state_dict`` with its saved state; restore the log buffer.

        Raises:
            CorruptCheckpointError: a hook refused its saved state (its error is the cause).
        """
        saved = dict(self.ckpt.hooks)
        for h in self.ctx.hooks:
            if h.load_state_dict is None:
                continue
            if h.name in saved:
                try:
                    h.load_state_dict(saved.pop(h.name))
                except CheckpointError:
                    raise
                except (FsmTrainerError, KeyError, IndexError, TypeError, ValueError, AttributeError,
                        RuntimeError) as exc:
                    msg = f"{self.ckpt.path / STATE_FILE}: hook {h.name!r} cannot load its saved state: {exc}"
                    raise CorruptCheckpointError(msg) from exc
            else:
                self.ctx.logger.warning("%s holds no state for hook %r; it starts fresh", self.ckpt.path, h.name)
        for name in saved:
            self.ctx.logger.warning("%s holds state for hook %r, which this run does not have", self.ckpt.path, name)
        from fsm_trainer.dist import get_dist_info

        buf = _for_rank(self.ckpt.log_buffer, *get_dist_info())
        if buf is not None and self.ctx.uses_log_buffer:
            b = self.ctx.log_buffer
            b.values, b.counts, b.output, b.ready = buf["values"], buf["counts"], buf["output"], buf["ready"]

    def load_rng(self) -> None:
        """Set the global RNGs to their state at the save.

        Raises:
            CheckpointMismatchError: the saved CUDA states are for another number of devices.
        """
        if self.ckpt.rng is not None:
            from fsm_trainer import rng
            from fsm_trainer.dist import get_dist_info

            try:
                rng.restore(_for_rank(self.ckpt.rng, *get_dist_info()))
            except ValueError as exc:
                msg = f"{self.ckpt.path}: {exc}"
                raise CheckpointMismatchError(msg) from exc

    def saved_world_size(self) -> int:
        """The number of ranks of the run that saved the checkpoint (1 for older checkpoints)."""
        return int(self.ckpt.data.get("world_size", 1))

    def start_batches(self, inner_iter: int) -> int:
        """Per-rank batches already done in the saved epoch, on this run's number of ranks.

        The same number on the same number of ranks; else see
        :func:`fsm_trainer.dist.rescale_position`.
        """
        from fsm_trainer.dist import get_dist_info, rescale_position

        return rescale_position(inner_iter, self.saved_world_size(), get_dist_info()[1])

    def iter_positions(self) -> list[tuple[int, int]] | None:
        """``(pass, index)`` per loader for an iter-based run (on this run's ranks), or ``None``."""
        data = self.ckpt.data
        if data.get("kind") != "iter":
            return None
        return [(int(e), self.start_batches(int(i))) for e, i in data["loaders"]]
