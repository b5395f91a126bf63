"""mmcv 1.7.2's runner API on fsm_trainer.

Change ``from mmcv.runner import ...`` to ``from fsm_trainer.mmcv import ...``.

* :class:`Hook`: mmcv's hook base class; a class hook runs only at the points it overrides,
  with a ``runner`` (:class:`RunnerView`) whose counters are the run's state.
* :data:`HOOKS`, :data:`RUNNERS`, :class:`Registry`, :func:`build_from_cfg`, :func:`build_runner`:
  :data:`HOOKS` shares its entries with the config path (``fsm-trainer train``).
* :class:`EpochBasedRunner`, :class:`IterBasedRunner`: mmcv's constructors, hook registration,
  ``resume``, ``save_checkpoint``, ``run(data_loaders, workflow)``.
* mmcv's hook classes by name (``OptimizerHook``, ``CheckpointHook``, ``StepLrUpdaterHook``,
  ``EvalHook``...), mapped onto fsm_trainer's shipped hooks.

See the README section "Coming from mmcv 1.x" for every difference.
"""

from fsm_trainer.mmcv._install import MmcvScopeError as MmcvScopeError
from fsm_trainer.mmcv._install import install as install
from fsm_trainer.mmcv._install import installed as installed
from fsm_trainer.mmcv._install import uninstall as uninstall
from fsm_trainer.mmcv.base_module import BaseModule as BaseModule
from fsm_trainer.mmcv.base_module import ModuleDict as ModuleDict
from fsm_trainer.mmcv.base_module import ModuleList as ModuleList
from fsm_trainer.mmcv.base_module import Sequential as Sequential
from fsm_trainer.mmcv.checkpoint import _load_checkpoint as _load_checkpoint
from fsm_trainer.mmcv.checkpoint import _load_checkpoint_with_prefix as _load_checkpoint_with_prefix
from fsm_trainer.mmcv.checkpoint import get_state_dict as get_state_dict
from fsm_trainer.mmcv.checkpoint import load_checkpoint as load_checkpoint
from fsm_trainer.mmcv.checkpoint import load_state_dict as load_state_dict
from fsm_trainer.mmcv.checkpoint import save_checkpoint as save_checkpoint
from fsm_trainer.mmcv.checkpoint import weights_to_cpu as weights_to_cpu
from fsm_trainer.mmcv.dist_utils import allreduce_grads as allreduce_grads
from fsm_trainer.mmcv.dist_utils import allreduce_params as allreduce_params
from fsm_trainer.mmcv.dist_utils import get_dist_info as get_dist_info
from fsm_trainer.mmcv.dist_utils import init_dist as init_dist
from fsm_trainer.mmcv.dist_utils import master_only as master_only
from fsm_trainer.mmcv.fp16 import LossScaler as LossScaler
from fsm_trainer.mmcv.fp16 import auto_fp16 as auto_fp16
from fsm_trainer.mmcv.fp16 import force_fp32 as force_fp32
from fsm_trainer.mmcv.fp16 import wrap_fp16_model as wrap_fp16_model
from fsm_trainer.mmcv.hook import STAGES as STAGES
from fsm_trainer.mmcv.hook import Hook as Hook
from fsm_trainer.mmcv.hook import MmcvCompatError as MmcvCompatError
from fsm_trainer.mmcv.hook import RunnerAttributeError as RunnerAttributeError
from fsm_trainer.mmcv.hook import RunnerView as RunnerView
from fsm_trainer.mmcv.hooks import *  # noqa: F403
from fsm_trainer.mmcv.hooks import __all__ as _hooks_all
from fsm_trainer.mmcv.misc import IterLoader as IterLoader
from fsm_trainer.mmcv.misc import LogBuffer as LogBuffer
from fsm_trainer.mmcv.misc import get_host_info as get_host_info
from fsm_trainer.mmcv.misc import get_time_str as get_time_str
from fsm_trainer.mmcv.misc import obj_from_dict as obj_from_dict
from fsm_trainer.mmcv.misc import set_random_seed as set_random_seed
from fsm_trainer.mmcv.optimizer import OPTIMIZER_BUILDERS as OPTIMIZER_BUILDERS
from fsm_trainer.mmcv.optimizer import OPTIMIZERS as OPTIMIZERS
from fsm_trainer.mmcv.optimizer import DefaultOptimizerConstructor as DefaultOptimizerConstructor
from fsm_trainer.mmcv.optimizer import build_optimizer as build_optimizer
from fsm_trainer.mmcv.optimizer import build_optimizer_constructor as build_optimizer_constructor
from fsm_trainer.mmcv.registry import HOOKS as HOOKS
from fsm_trainer.mmcv.registry import RUNNERS as RUNNERS
from fsm_trainer.mmcv.registry import Registry as Registry
from fsm_trainer.mmcv.registry import build_from_cfg as build_from_cfg
from fsm_trainer.mmcv.registry import build_runner as build_runner
from fsm_trainer.mmcv.runner import BaseRunner as BaseRunner
from fsm_trainer.mmcv.runner import EpochBasedRunner as EpochBasedRunner
from fsm_trainer.mmcv.runner import IterBasedRunner as IterBasedRunner
from fsm_trainer.priority import Priority as Priority
from fsm_trainer.priority import get_priority as get_priority

__all__ = [
    "HOOKS", "OPTIMIZERS", "OPTIMIZER_BUILDERS", "RUNNERS", "STAGES", "BaseModule", "BaseRunner",
    "DefaultOptimizerConstructor", "EpochBasedRunner", "Hook", "IterBasedRunner", "IterLoader", "LogBuffer",
    "LossScaler", "MmcvCompatError", "MmcvScopeError", "ModuleDict", "ModuleList", "Priority", "Registry",
    "RunnerAttributeError", "RunnerView", "Sequential", "_load_checkpoint", "_load_checkpoint_with_prefix",
    "allreduce_grads", "allreduce_params", "auto_fp16", "build_from_cfg", "build_optimizer",
    "build_optimizer_constructor", "build_runner", "force_fp32", "get_dist_info", "get_host_info", "get_priority",
    "get_state_dict", "get_time_str", "init_dist", "install", "installed", "load_checkpoint", "load_state_dict",
    "master_only", "obj_from_dict", "save_checkpoint", "set_random_seed", "uninstall", "weights_to_cpu",
    "wrap_fp16_model", *_hooks_all,
]
