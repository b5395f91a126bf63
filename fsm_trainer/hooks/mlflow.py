"""mmcv's ``MlflowLoggerHook``: metrics, params, tags and optionally the model in MLflow.

Needs ``mlflow`` (``pip install mlflow``, or ``mlflow-skinny`` without the model flavour; or
``fsm-trainer[mlflow]``); it is imported when the hook is built.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fsm_trainer.context import RunContext
from fsm_trainer.hook import Hook
from fsm_trainer.hooks.logger_base import LogRecord, LogWriter, logger_hook, scalar_tags, writer
from fsm_trainer.priority import Priority
from fsm_trainer.state import TrainState


def _import_mlflow() -> Any:
    try:
        import mlflow
    except ImportError as exc:
        msg = "mlflow_logger_hook needs MLflow: pip install mlflow (or fsm-trainer[mlflow])"
        raise ImportError(msg) from exc
    return mlflow


def mlflow_logger_hook(
    exp_name: str | None = None,
    tags: Mapping[str, Any] | None = None,
    params: Mapping[str, Any] | None = None,
    log_model: bool = False,
    interval: int = 10,
    *,
    ignore_last: bool = True,
    reset_flag: bool = False,
    by_epoch: bool | None = None,
    tracking_uri: str | None = None,
    run_name: str | None = None,
    name: str = "MlflowLoggerHook",
    priority: int | str = Priority.VERY_LOW,
) -> Callable[[RunContext], Hook]:
    """Log every record's numbers to MLflow, as mmcv's ``MlflowLoggerHook``.

    Metrics are ``<mode>/<key>`` at step ``iter + 1`` with ``learning_rate`` and ``momentum``
    (``time``/``data_time`` and non-numbers are left out, as in mmcv).

    Args:
        exp_name: the experiment (created if missing); default: MLflow's active one.
        tags, params: set on the MLflow run when it starts.
        log_model: log the model with ``mlflow.pytorch`` at the end (needs full ``mlflow``).
            mmcv's default is ``True``; here ``False``, since it copies the whole model.
        interval, ignore_last, reset_flag, by_epoch: as :func:`~fsm_trainer.hooks.text_logger_hook`.
        tracking_uri: e.g. ``"file:///tmp/mlruns"`` or ``"sqlite:///mlflow.db"``; default: MLflow's.
        run_name: the MLflow run's name.

    The hook starts an MLflow run in ``before_run`` and ends it in ``after_run`` (also when the
    run raises), unless a run was already active, which it then uses and leaves open.

    Raises:
        ImportError: with the install command, when MLflow is missing (when the hook is built).
    """

    def make_writer(ctx: RunContext, per_epoch: bool) -> LogWriter:
        mlflow = _import_mlflow()
        started = [False]

        def open_(s: TrainState) -> None:
            if tracking_uri is not None:
                mlflow.set_tracking_uri(tracking_uri)
            if exp_name is not None:
                mlflow.set_experiment(exp_name)
            if mlflow.active_run() is None:
                mlflow.start_run(run_name=run_name)
                started[0] = True
            if tags:
                mlflow.set_tags(dict(tags))
            if params:
                mlflow.log_params(dict(params))

        def write(s: TrainState, record: LogRecord) -> None:
            metrics = {k: float(v) for k, v in scalar_tags(ctx, record).items()
                       if isinstance(v, (int, float)) and not isinstance(v, bool)}
            if metrics:
                mlflow.log_metrics(metrics, step=record.step)

        def close() -> None:
            if log_model and ctx.model is not None:
                import mlflow.pytorch as mlflow_pytorch

                mlflow_pytorch.log_model(ctx.model, name="models")
            if started[0]:
                started[0] = False
                mlflow.end_run()

        return writer(write, open_, close)

    return logger_hook(make_writer, name=name, interval=interval, ignore_last=ignore_last,
                       reset_flag=reset_flag, by_epoch=by_epoch, priority=priority)
