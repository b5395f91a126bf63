"""Import mmcv 1.7.2's runners for the recording tools, made usable beside a CPU-only torch.

``mmcv.runner.checkpoint`` does ``import torchvision`` at import time; only a checkpoint-loading
helper ever touches it, so an empty stub is enough. The runners sleep 1-2 s at every epoch
transition and loader wrap; the sleeps are patched out (recorded values do not depend on them).
"""
import sys
import time
import types

sys.modules.setdefault('torchvision', types.ModuleType('torchvision'))

import mmcv.runner.epoch_based_runner as _ebr  # noqa: E402
import mmcv.runner.iter_based_runner as _ibr  # noqa: E402
from mmcv.runner import EpochBasedRunner, Hook, IterBasedRunner  # noqa: E402

_no_sleep = types.SimpleNamespace(sleep=lambda s: None, time=time.time)
time.sleep = _no_sleep.sleep
_ebr.time = _ibr.time = _no_sleep

__all__ = ['EpochBasedRunner', 'Hook', 'IterBasedRunner']
