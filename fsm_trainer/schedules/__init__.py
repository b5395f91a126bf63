"""mmcv 1.7.2's LR and momentum schedules as pure functions of progress (no torch import).

Build a :class:`Schedule` from an mmcv ``lr_config``/``momentum_config`` dict, then ask it for
the value at any ``(epoch, iter)``; :func:`schedule_values` and :func:`plot_schedule` show a
whole run. The hooks in :mod:`fsm_trainer.hooks` apply these values to param groups.

>>> s = build_lr_schedule(policy="step", step=[8, 11], warmup="linear", warmup_iters=500)
>>> round(s.value(0.02, epoch=0, iter=0, max_epochs=12, epoch_len=1000), 6)
0.002
>>> round(s.value(0.02, epoch=9, iter=9000, max_epochs=12, epoch_len=1000), 6)
0.002
"""

from fsm_trainer.schedules._policies import ANNEAL as ANNEAL
from fsm_trainer.schedules._policies import CosineAnnealing as CosineAnnealing
from fsm_trainer.schedules._policies import CosineRestart as CosineRestart
from fsm_trainer.schedules._policies import Cyclic as Cyclic
from fsm_trainer.schedules._policies import Exp as Exp
from fsm_trainer.schedules._policies import Fixed as Fixed
from fsm_trainer.schedules._policies import FlatCosineAnnealing as FlatCosineAnnealing
from fsm_trainer.schedules._policies import Inv as Inv
from fsm_trainer.schedules._policies import LinearAnnealing as LinearAnnealing
from fsm_trainer.schedules._policies import OneCycle as OneCycle
from fsm_trainer.schedules._policies import OneCycleMomentum as OneCycleMomentum
from fsm_trainer.schedules._policies import Poly as Poly
from fsm_trainer.schedules._policies import Step as Step
from fsm_trainer.schedules._policies import annealing_cos as annealing_cos
from fsm_trainer.schedules._policies import annealing_linear as annealing_linear
from fsm_trainer.schedules._policies import bind as bind
from fsm_trainer.schedules._policies import per_group as per_group
from fsm_trainer.schedules._preview import as_schedule as as_schedule
from fsm_trainer.schedules._preview import default_base as default_base
from fsm_trainer.schedules._preview import plot_schedule as plot_schedule
from fsm_trainer.schedules._preview import schedule_values as schedule_values
from fsm_trainer.schedules._schedule import LR_POLICIES as LR_POLICIES
from fsm_trainer.schedules._schedule import MOMENTUM_POLICIES as MOMENTUM_POLICIES
from fsm_trainer.schedules._schedule import WARMUPS as WARMUPS
from fsm_trainer.schedules._schedule import Schedule as Schedule
from fsm_trainer.schedules._schedule import ScheduleConfigError as ScheduleConfigError
from fsm_trainer.schedules._schedule import build_lr_schedule as build_lr_schedule
from fsm_trainer.schedules._schedule import build_momentum_schedule as build_momentum_schedule
from fsm_trainer.schedules._schedule import warmup_factor as warmup_factor

__all__ = [
    "ANNEAL", "LR_POLICIES", "MOMENTUM_POLICIES", "WARMUPS", "CosineAnnealing", "CosineRestart", "Cyclic",
    "Exp", "Fixed", "FlatCosineAnnealing", "Inv", "LinearAnnealing", "OneCycle", "OneCycleMomentum", "Poly",
    "Schedule", "ScheduleConfigError", "Step", "annealing_cos", "annealing_linear", "as_schedule", "bind",
    "build_lr_schedule", "build_momentum_schedule", "default_base", "per_group", "plot_schedule",
    "schedule_values", "warmup_factor",
]
