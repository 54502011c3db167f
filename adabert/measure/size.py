"""Model size: parameters (with and without embeddings), serialized bytes, FLOPs per sample.

Embedding rule (``params_no_embeddings``): a parameter counts as an embedding parameter when it
belongs to an ``nn.Embedding`` module, or when its qualified name contains ``"embed"``
(case-insensitive). For a BERT model this is ``bert.embeddings.*``: word, position and token-type
tables **and** the embedding LayerNorm (its name contains ``embeddings``); for the student it is its
token embedding table (plus anything its author named ``*embed*``). Shared (tied) parameters count once.

FLOPs: ``torch.utils.flop_counter.FlopCounterMode`` on one batch-1 forward in eval mode without
gradients. It counts matrix products, convolutions and attention (2 FLOPs per multiply-add) and
ignores element-wise work (activations, normalisation, softmax, pooling, masking), so it is a lower
bound dominated by the GEMM/conv cost, the same convention as the usual "BERT-base = 22 GFLOPs at seq 128".
"""

from __future__ import annotations

import os
import tempfile
from typing import Any, Callable, Mapping

import torch
from torch import nn

EMBEDDING_RULE = (
    "embedding parameters = weights of nn.Embedding modules + any parameter whose qualified name "
    "contains 'embed' (case-insensitive); shared parameters count once"
)
FLOPS_RULE = (
    "torch.utils.flop_counter.FlopCounterMode, batch-1 forward, eval, no_grad: matmul/conv/attention "
    "only (2 FLOPs per multiply-add), element-wise ops not counted"
)


def embedding_parameter_names(module: nn.Module) -> set[str]:
    """Qualified names (as ``named_parameters`` gives them) of the embedding parameters."""
    embedding_ids = {
        id(p) for sub in module.modules() if isinstance(sub, nn.Embedding) for p in sub.parameters(recurse=False)
    }
    return {
        name for name, p in module.named_parameters() if id(p) in embedding_ids or "embed" in name.lower()
    }


def count_params(module: nn.Module) -> dict[str, int]:
    """``params`` (all, shared counted once), ``embedding_params`` and ``params_no_embeddings``."""
    embed = embedding_parameter_names(module)
    total = embedding = 0
    for name, p in module.named_parameters():  # named_parameters de-duplicates shared tensors
        total += p.numel()
        if name in embed:
            embedding += p.numel()
    return {"params": int(total), "embedding_params": int(embedding), "params_no_embeddings": int(total - embedding)}


def serialized_bytes(module: nn.Module) -> int:
    """Size in bytes of the module's state (parameters and buffers) saved as one safetensors file."""
    from safetensors.torch import save_model

    fd, tmp = tempfile.mkstemp(suffix=".safetensors")
    os.close(fd)
    try:
        save_model(module, tmp)  # handles tied weights, unlike save_file(state_dict)
        return int(os.path.getsize(tmp))
    finally:
        os.unlink(tmp)


def call_module(module: nn.Module, inputs: Mapping[str, torch.Tensor]) -> Any:
    return module(**inputs)


def flops_per_sample(module: nn.Module, make_inputs: Callable[[int, int], Mapping[str, torch.Tensor]], seq_len: int) -> int:
    """FLOPs of one sample (a batch-1 forward at ``seq_len``), see :data:`FLOPS_RULE`."""
    from torch.utils.flop_counter import FlopCounterMode

    inputs = make_inputs(1, seq_len)
    device = _module_device(module)
    inputs = {k: v.to(device) for k, v in inputs.items()}
    was_training = module.training
    module.eval()
    try:
        counter = FlopCounterMode(display=False)
        with torch.no_grad(), counter:
            call_module(module, inputs)
    finally:
        module.train(was_training)
    return int(counter.get_total_flops())


def _module_device(module: nn.Module) -> torch.device:
    for p in module.parameters():
        return p.device
    return torch.device("cpu")


def size_report(module: nn.Module, make_inputs: Callable[[int, int], Mapping[str, torch.Tensor]], seq_len: int) -> dict[str, Any]:
    """Parameters, serialized bytes and FLOPs per sample of ``module`` at sequence length ``seq_len``."""
    report: dict[str, Any] = count_params(module)
    report["file_bytes"] = serialized_bytes(module)
    report["flops_per_sample"] = flops_per_sample(module, make_inputs, seq_len)
    report["flops_seq_len"] = int(seq_len)
    report["embedding_rule"] = EMBEDDING_RULE
    report["flops_rule"] = FLOPS_RULE
    return report
