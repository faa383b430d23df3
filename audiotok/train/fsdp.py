"""Fully sharded data parallel (PyTorch's FSDP2, ``fully_shard``) for the large configs: each rank holds a shard of
the parameters, gradients and optimiser state instead of a full copy (DDP).

Under FSDP every forward is a collective, so the shared loop validates and saves on every rank, and checkpoints
hold *full* (unsharded) state dicts — a run can resume under another world size, or without FSDP. Works with
NCCL on GPUs and with gloo on CPU (tested with two CPU processes).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


def shard(model: nn.Module, blocks: Iterable[nn.Module], device: torch.device) -> nn.Module:
    """Shard each of ``blocks`` (e.g. the transformer layers), then ``model`` itself (the rest: embeddings, head),
    over all ranks of the default process group. Modifies and returns ``model``."""
    from torch.distributed import get_world_size
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh(device.type, (get_world_size(),))
    for block in blocks:
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    return model


def is_sharded(model: nn.Module) -> bool:
    """Whether ``model`` or one of its submodules was sharded with :func:`shard`."""
    from torch.distributed.fsdp import FSDPModule

    return any(isinstance(m, FSDPModule) for m in model.modules())


def _full():
    from torch.distributed.checkpoint.state_dict import StateDictOptions

    return StateDictOptions(full_state_dict=True, cpu_offload=True)


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Collective: the unsharded state dict of ``model`` (on CPU; complete on rank 0, empty on the others)."""
    from torch.distributed.checkpoint.state_dict import get_model_state_dict

    return get_model_state_dict(model, options=_full())


class FullModelState:
    """``state_dict``/``load_state_dict`` of a sharded model in full form, for the shared checkpoint code."""

    def __init__(self, model: nn.Module):
        self.model = model

    def state_dict(self) -> dict:
        return full_state_dict(self.model)

    def load_state_dict(self, state: dict) -> None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

        set_model_state_dict(self.model, state, options=StateDictOptions(full_state_dict=True))


class FullOptimizerState:
    """The same for the optimiser of a sharded model."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer):
        self.model, self.optimizer = model, optimizer

    def state_dict(self) -> dict:
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        return get_optimizer_state_dict(self.model, self.optimizer, options=_full())

    def load_state_dict(self, state: dict) -> None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        set_optimizer_state_dict(self.model, self.optimizer, state, options=StateDictOptions(full_state_dict=True))
