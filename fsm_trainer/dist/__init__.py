"""torch.distributed for fsm_trainer: the process group and collectives (:mod:`.group`),
data-parallel wrapping with DDP (:mod:`.parallel`) and sharding with FSDP (:mod:`.fsdp`).

Launch with torchrun; :func:`init_dist` reads its environment. Everything here also works, as
a no-op or identity, in a single process without a process group, so the same code runs both
ways. The names below are the public API; import them from ``fsm_trainer.dist``.
"""

from __future__ import annotations

from fsm_trainer.dist.fsdp import (
    copy_full_,
    fsdp_load_model,
    fsdp_load_optimizer,
    fsdp_state_dicts,
    full_tensors,
    is_fsdp,
    rebuild_optimizer,
    scalar,
    shard_model,
)
from fsm_trainer.dist.group import (
    all_reduce_max,
    all_reduce_mean,
    any_rank,
    barrier,
    broadcast_object,
    collect_outputs,
    collect_results,
    collective_device,
    destroy_dist,
    gather_objects,
    get_dist_info,
    init_dist,
    interleave_results,
    is_dist,
    is_main_process,
    rescale_position,
)
from fsm_trainer.dist.parallel import (
    STRATEGIES,
    Prepared,
    StepModule,
    check_strategy,
    loader_num_replicas,
    prepare,
    wrap_model,
)
from fsm_trainer.errors import DistError, ProcessGroupError

__all__ = [
    "STRATEGIES", "DistError", "Prepared", "ProcessGroupError", "StepModule", "all_reduce_max", "all_reduce_mean",
    "any_rank", "barrier", "broadcast_object", "check_strategy", "collect_outputs", "collect_results",
    "collective_device", "copy_full_", "destroy_dist", "fsdp_load_model", "fsdp_load_optimizer", "fsdp_state_dicts",
    "full_tensors", "gather_objects", "get_dist_info", "init_dist", "interleave_results", "is_dist", "is_fsdp",
    "is_main_process", "loader_num_replicas", "prepare", "rebuild_optimizer", "rescale_position", "scalar",
    "shard_model", "wrap_model",
]
