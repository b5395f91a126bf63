"""Optimizer constructors written as for mmcv 1.7.2, registered through ``fsm_trainer.mmcv.OPTIMIZER_BUILDERS``.

Named in ``custom_imports`` by the configs of tests/test_mmcv_optimizer.py. Every optimizer a
constructor here builds is appended to :data:`BUILT`.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from fsm_trainer.mmcv.optimizer import OPTIMIZER_BUILDERS, DefaultOptimizerConstructor

BUILT: list[Any] = []


@OPTIMIZER_BUILDERS.register_module(force=True)
class LayerDecayConstructorT(DefaultOptimizerConstructor):
    """Layer-wise learning-rate decay, as mmcls/mmseg's ``LearningRateDecayOptimizerConstructor``.

    ``add_params`` is replaced: the k-th ``nn.Linear`` of the model (counted from the output,
    ``0`` for the last one) gets ``lr * decay_rate ** k``; biases get no weight decay.
    ``paramwise_cfg`` carries ``decay_rate``, a key the default constructor does not know.
    """

    def add_params(self, params: list[dict[str, Any]], module: nn.Module, prefix: str = "",
                   is_dcn_module: Any = None) -> None:
        linears = [m for m in module.modules() if isinstance(m, nn.Linear)]
        rate = self.paramwise_cfg["decay_rate"]
        for depth, layer in enumerate(reversed(linears)):
            for name, param in layer.named_parameters(recurse=False):
                wd = 0.0 if name == "bias" else self.base_wd
                params.append({"params": [param], "lr": self.base_lr * rate ** depth, "weight_decay": wd})

    def __call__(self, model: nn.Module) -> Any:
        optimizer = super().__call__(model)
        BUILT.append(optimizer)
        return optimizer


@OPTIMIZER_BUILDERS.register_module(force=True)
class FreezePrefixConstructorT(DefaultOptimizerConstructor):
    """Leave out every module under ``paramwise_cfg['skip']``; the others get the default rules.

    Its ``add_params`` is called for every module (the default one recurses through
    ``self.add_params``), and hands the others to ``super().add_params``.
    """

    def add_params(self, params: list[dict[str, Any]], module: nn.Module, prefix: str = "",
                   is_dcn_module: Any = None) -> None:
        if prefix == self.paramwise_cfg["skip"]:
            return
        super().add_params(params, module, prefix, is_dcn_module)
