"""Token id sequences padded into one batch: the ids and their attention mask.

One place for padding a batch, used by the capture (right), training (right) and
generation (left).

Examples
--------
>>> ids, mask = right_pad([[5, 6, 7], [8]], pad_id=0)
>>> ids.tolist(), mask.tolist()
([[5, 6, 7], [8, 0, 0]], [[1, 1, 1], [1, 0, 0]])
>>> left_pad([[5, 6, 7], [8]], pad_id=0)[0].tolist()
[[5, 6, 7], [0, 0, 8]]
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def right_pad(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``seqs`` right-padded with ``pad_id`` to the longest: ids and attention mask,
    both ``[B, width]`` long tensors (mask 1 on the tokens, 0 on the padding)."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for b, seq in enumerate(seqs):
        ids[b, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[b, : len(seq)] = 1
    return ids, mask


def left_pad(seqs: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``seqs`` left-padded with ``pad_id`` to the longest: ids and attention mask."""
    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for b, seq in enumerate(seqs):
        ids[b, width - len(seq) :] = torch.tensor(seq, dtype=torch.long)
        mask[b, width - len(seq) :] = 1
    return ids, mask
