"""Measure the activation memory one training sequence needs, without allocating it: build the
model on the meta device, run a forward and backward over fake tensors, and track the bytes of
every tensor storage alive at each moment. The peak is exact for the architecture as written
(QK-norm, SwiGLU, GQA, soft-capping, LoRA's extra inputs, activation checkpointing's
recomputation), which no closed-form count such as Korthikanti et al.'s can be for every model
transformers ships. It is a count of live tensors: the allocator's own overhead (fragmentation,
caching) comes on top and is what train/memory.SAFETY covers.
"""

from __future__ import annotations

import weakref

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from budgetlm.model.build import build_model
from budgetlm.model.config import ModelConfig
from budgetlm.train.recompute import checkpoint_blocks


class LiveBytes(TorchDispatchMode):
    """Counts the bytes of tensor storages that ops create and that are still referenced, and
    the peak of that count. Storages an op only reads or views are not new."""

    def __init__(self) -> None:
        super().__init__()
        self.live = 0
        self.peak = 0
        self._storages: set[int] = set()

    def _freed(self, key: int, nbytes: int) -> None:
        self.live -= nbytes
        self._storages.discard(key)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {_key(t) for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)}
        for tensor in tree_flatten(out)[0]:
            if not isinstance(tensor, torch.Tensor):
                continue
            key = _key(tensor)
            if key in inputs or key in self._storages:
                continue
            storage = tensor.untyped_storage()
            nbytes = storage.nbytes()
            self._storages.add(key)
            self.live += nbytes
            self.peak = max(self.peak, self.live)
            weakref.finalize(storage, self._freed, key, nbytes)
        return out


def _key(tensor: torch.Tensor) -> int:
    return tensor.untyped_storage()._cdata


def peak_activation_bytes(config: ModelConfig, sequences: int = 1, recompute: bool = False) -> int:
    """Peak bytes of activations (and their gradients) alive in one forward+backward over
    `sequences` sequences of config.seq_len tokens of `config`'s model in fp32, with
    activation checkpointing when `recompute`. Weight gradients are freed as soon as they are
    made, so the peak excludes them: state_bytes counts them. Raises what the model's forward
    raises when it cannot run on fake tensors (the caller falls back to a formula)."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    fake = FakeTensorMode(allow_non_fake_inputs=True)
    with torch.device("meta"):
        model = build_model(config)
    _to_fake(model, fake)
    if recompute:
        checkpoint_blocks(model)
    for parameter in model.parameters():
        if parameter.requires_grad:
            parameter.register_post_accumulate_grad_hook(_drop_grad)
    counter = LiveBytes()
    with fake, counter:
        tokens = torch.zeros(sequences, config.seq_len + 1, dtype=torch.long, device="meta")
        loss = model(tokens[:, :-1], tokens[:, 1:])
        loss.backward()
    return counter.peak


def _to_fake(model: nn.Module, fake) -> None:
    """Swap every meta parameter and buffer of `model` for a fake tensor of the same shape, so
    that code which inspects values (transformers' mask helpers) sees a tracing tensor."""
    for module in model.modules():
        for name, parameter in list(module._parameters.items()):
            if parameter is not None:
                module._parameters[name] = nn.Parameter(
                    fake.from_tensor(parameter), requires_grad=parameter.requires_grad
                )
        for name, buffer in list(module._buffers.items()):
            if buffer is not None:
                module._buffers[name] = fake.from_tensor(buffer)


def _drop_grad(parameter: torch.Tensor) -> None:
    parameter.grad = None
