"""Attention masks for models whose layers attend through a sliding window (Mistral, Qwen2, Gemma, Cohere 2).

Rows decoding together share one cache width, so the client keeps every column of such layers
(transformers' sliding-window cache would drop a row's oldest columns by the batch's count) and
the rows' pads and rejected draft columns sit among their tokens. transformers counts a window
in columns, which in a batch would leave a row fewer of its own tokens than alone. Here each
row's window is counted in its own token positions, in 4D masks that the models take as given.
"""

from __future__ import annotations

from typing import Any

import torch

SLIDING, FULL = "sliding_attention", "full_attention"


def sliding_window(config: Any) -> int | None:
    """The window of the model's sliding-window layers, or None when it has none."""
    size = getattr(config, "sliding_window", None)
    layer_types = getattr(config, "layer_types", None)
    if not size or (layer_types is not None and SLIDING not in layer_types):
        return None
    return int(size)


def attention_mask(config: Any, mask: torch.Tensor, query_positions: torch.Tensor) -> Any:
    """What a forward takes as `attention_mask`: `mask` [rows, columns] (1 on each row's tokens,
    the fed ones last) as it is for a model without windows; otherwise per-query 4D masks
    [rows, 1, fed, columns] whose windows cover the `sliding_window` positions up to each query's
    (`query_positions` [rows, fed]), a mapping per layer kind where kinds are mixed."""
    size = sliding_window(config)
    if size is None:
        return mask
    fed, width = query_positions.shape[1], mask.shape[1]
    positions = (mask.cumsum(-1) - 1)[:, None, :]
    queries = query_positions[:, :, None]
    # Every query sees its own column, so a pad query is never masked whole (softmax over nothing
    # is NaN, and a NaN in a pad's states would reach the rows through their masked columns).
    own = torch.zeros(fed, width, dtype=torch.bool, device=mask.device)
    own[torch.arange(fed), width - fed + torch.arange(fed)] = True
    seen = (mask.bool()[:, None, :] & (positions <= queries)) | own
    windowed = (seen & (positions > queries - size)) | own
    if set(getattr(config, "layer_types", None) or [SLIDING]) == {SLIDING}:
        return windowed[:, None]
    return {FULL: seen[:, None], SLIDING: windowed[:, None]}
