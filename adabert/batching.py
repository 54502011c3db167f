"""Batching helpers shared by every stage: input key sets, padding trim, batch orders, batched inference.

Two input layouts exist (docs/ARCHITECTURE.md, Data folder): the teacher's packed pair
(:data:`PACKED_INPUTS`) and the student's separately encoded sentences (:data:`STUDENT_INPUTS`).
Every row is right-padded to ``max_seq_length``; :func:`trim` cuts a batch to its longest row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from tqdm.auto import tqdm

from adabert.errors import AdabertError

PACKED_INPUTS = ("input_ids", "attention_mask", "token_type_ids")
STUDENT_INPUTS = ("a_input_ids", "a_attention_mask", "b_input_ids", "b_attention_mask")
SEQUENCE_KEYS = frozenset(PACKED_INPUTS + STUDENT_INPUTS)
MASK_KEYS = ("attention_mask", "a_attention_mask", "b_attention_mask")


def used_length(batch: dict[str, torch.Tensor]) -> int:
    """The longest row of the batch over every attention mask it holds (at least 1)."""
    masks = [batch[k] for k in MASK_KEYS if k in batch]
    if not masks:
        raise AdabertError(f"a batch needs an attention mask ({', '.join(MASK_KEYS)}); it has {sorted(batch)}")
    return max(1, max(int(m.sum(1).max()) if m.shape[0] else 0 for m in masks))


def trim(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Dynamic padding: cut the sequence columns that no row of the batch uses (other tensors unchanged)."""
    length = used_length(batch)
    return {k: (v[:, :length] if k in SEQUENCE_KEYS and v.dim() == 2 else v) for k, v in batch.items()}


def rows(data: dict[str, torch.Tensor], idx: torch.Tensor | slice, keys=None) -> dict[str, torch.Tensor]:
    """The rows ``idx`` of every tensor (of ``keys``, default all) of a row-aligned split."""
    return {k: data[k][idx] for k in (keys or data)}


def subsample_indices(n: int, cap: int | None, seed: int) -> torch.Tensor:
    """Sorted indices of a seeded subsample of ``cap`` of ``n`` rows (all rows when ``cap`` is None or >= n)."""
    if cap is None or cap >= n:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:cap].sort().values


def shuffled_batches(n: int, batch_size: int, generator: torch.Generator, steps: int | None = None
                     ) -> Iterator[torch.Tensor]:
    """One epoch of index batches over a seeded random permutation (the first ``steps`` batches)."""
    order = torch.randperm(n, generator=generator)
    starts = range(0, n, batch_size)
    for step, begin in enumerate(starts):
        if steps is not None and step >= steps:
            return
        yield order[begin:begin + batch_size]


def batch_stream(n: int, batch_size: int, generator: torch.Generator, order=None) -> Iterator[torch.Tensor]:
    """Endless seeded index batches: pass after pass of ``order`` (default :func:`shuffled_batches`; any
    ``order(n, batch_size, generator, steps)`` hook), so a round of steps may end inside a pass."""
    order = order or shuffled_batches
    while True:
        yield from order(n, batch_size, generator, None)


def row_lengths(data: dict[str, torch.Tensor]) -> torch.Tensor:
    """Per row, the length :func:`trim` keeps for it: the longest of its attention masks (``[N]``)."""
    masks = [data[k].sum(1) for k in MASK_KEYS if k in data]
    if not masks:
        raise AdabertError(f"row lengths need an attention mask ({', '.join(MASK_KEYS)}); the split has {sorted(data)}")
    return torch.stack(masks).amax(0)


def length_grouped_batches(lengths: torch.Tensor, chunk_batches: int = 50):
    """An ``order`` for :class:`adabert.training.Recipe`: batches of rows of similar length.

    Each epoch the rows are shuffled (seeded), sorted by length (longest first) inside chunks of
    ``chunk_batches`` batches, cut into batches, and the batches shuffled: every row once per epoch,
    far less padding per batch than a random order, and still a different mix every epoch.
    """

    def order(n: int, batch_size: int, generator: torch.Generator, steps: int | None = None
              ) -> Iterator[torch.Tensor]:
        if lengths.shape[0] != n:
            raise AdabertError(f"length-grouped batches: {lengths.shape[0]} lengths for {n} rows")
        perm = torch.randperm(n, generator=generator)
        chunk = batch_size * chunk_batches
        batches = []
        for begin in range(0, n, chunk):
            rows_ = perm[begin:begin + chunk]
            rows_ = rows_[torch.argsort(lengths[rows_], descending=True, stable=True)]
            batches.extend(rows_.split(batch_size))
        for i in torch.randperm(len(batches), generator=generator)[:steps].tolist():
            yield batches[i]

    return order


def training_order(data: dict[str, torch.Tensor], grouped: bool):
    """The batch ``order`` of a training stage's ``length_grouped`` switch: :func:`length_grouped_batches`
    over ``data``'s row lengths, else :func:`shuffled_batches`."""
    return length_grouped_batches(row_lengths(data)) if grouped else shuffled_batches


def eval_order(lengths: torch.Tensor, batch_size: int) -> list[torch.Tensor]:
    """Index batches over the rows sorted by length (``[N]``), longest first (less padding per batch)."""
    order = torch.argsort(lengths, descending=True, stable=True)
    return list(order.split(batch_size))


@torch.no_grad()
def batched_outputs(forward: Callable[[dict[str, torch.Tensor]], torch.Tensor], data: dict[str, torch.Tensor],
                    batch_size: int, device: torch.device, desc: str, keys=PACKED_INPUTS) -> torch.Tensor:
    """``forward(batch) -> [B, ...]`` over trimmed batches of rows sorted by length (:func:`row_lengths`
    over ``keys``' masks, longest first; ties keep row order), so each batch computes little padding;
    float32, CPU, original row order. Batch composition does not change a row's output for models that
    mask their padding (the teacher, the student and the supernet do)."""
    n = data[keys[0]].shape[0]
    out: torch.Tensor | None = None
    for idx in tqdm(eval_order(row_lengths({k: data[k] for k in keys}), batch_size), desc=desc, leave=False,
                    mininterval=2.0):
        batch = trim(rows(data, idx, keys))
        values = forward({k: v.to(device) for k, v in batch.items()}).float().cpu()
        if out is None:
            out = torch.empty(n, *values.shape[1:], dtype=torch.float32)
        out[idx] = values
    if out is None:
        raise AdabertError(f"{desc}: no rows")
    return out
