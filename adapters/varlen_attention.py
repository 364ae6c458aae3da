"""Attention for packed training rows through flash attention's variable-length kernel.

Given packed rows (position_ids restarting at each example, no attention mask), transformers
builds SDPA a [rows, 1, width, width] block-diagonal mask, and SDPA computes every block of it:
for a 3,057-token row of examples of a few hundred tokens, many times the attention the examples
need, and the bound on ax's packed training on an H100 (issue 3). PyTorch's `varlen_attn` takes
the examples' boundaries instead (cumulative lengths over the flattened rows) and computes each
example's own causal triangle only. The packing collators give those boundaries as host values,
under the names of transformers' flash-attention kwargs, which every decoder layer passes on to
its attention function; deriving them on the GPU from position_ids would read a length back to
the host each forward, a sync.

The model's config names this attention while training runs (`varlen_attention`); nothing else
about the model changes, and transformers builds no mask for it.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator
from typing import Any

import torch
from transformers import AttentionInterface

IMPLEMENTATION = "ax_varlen"
_HALF_DTYPES = (torch.bfloat16, torch.float16)


try:
    from torch.nn.attention.varlen import varlen_attn
except ImportError:  # before PyTorch 2.10
    varlen_attn = None
# Imported here, not in the attention function: an import inside a compiled layer breaks its graph.
_PARAMETERS = frozenset(inspect.signature(varlen_attn).parameters) if varlen_attn else frozenset()
# PyTorch 2.10's first version takes `is_causal` only: no scale, window or grouped heads. 2.11 adds
# the scale and windows, and hands fewer key than query heads to its kernel as they are, which
# groups them (tests/test_packed_training.py's grouped Llama passed so on the lent H200); 2.12 asks
# for `enable_gqa` to do so.
_WINDOWS = "window_size" in _PARAMETERS
_FLAGGED_GROUPS = "enable_gqa" in _PARAMETERS


def varlen_supported(model: Any, compute_dtype: torch.dtype) -> bool:
    """Whether this model's training attention can run through `varlen_attn` here: a CUDA model
    computing in half precision, attention without dropout or soft-capping, and a PyTorch whose
    varlen kernel takes the model's windows and score scale."""
    config = model.config
    if not _PARAMETERS or model.device.type != "cuda" or compute_dtype not in _HALF_DTYPES:
        return False
    if getattr(config, "attention_dropout", 0.0) or getattr(config, "attn_logit_softcapping", None):
        return False
    custom_scale = getattr(config, "query_pre_attn_scalar", None) is not None
    return _WINDOWS or (not getattr(config, "sliding_window", None) and not custom_scale)


def _attention(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, attention_mask: Any,
               dropout: float = 0.0, scaling: float | None = None, sliding_window: int | None = None,
               **kwargs: Any) -> tuple[torch.Tensor, None]:
    """query [rows, heads, width, dim], key and value [rows, kv heads, width, dim] -> [rows, width, heads, dim]."""
    if "cu_seq_lens_q" not in kwargs:
        raise RuntimeError(f"{IMPLEMENTATION} attention needs the packing collator's sequence boundaries "
                           "(cu_seq_lens_q, max_length_q); this batch has none")
    rows, heads, width, dim = query.shape
    q = query.transpose(1, 2).reshape(rows * width, heads, dim)
    k = key.transpose(1, 2).reshape(rows * width, key.shape[1], dim)
    v = value.transpose(1, 2).reshape(rows * width, value.shape[1], dim)
    options: dict[str, Any] = {}
    if _WINDOWS:  # transformers' flash attention reads a window of W as W - 1 tokens back
        options.update(scale=scaling, window_size=(sliding_window - 1 if sliding_window else -1, 0))
    else:
        options.update(is_causal=True)
    if heads != k.shape[1]:
        if _FLAGGED_GROUPS:
            options.update(enable_gqa=True)
        elif not _WINDOWS:
            k, v = (t.repeat_interleave(heads // t.shape[1], dim=1) for t in (k, v))
    out = varlen_attn(q, k, v, kwargs["cu_seq_lens_q"], kwargs["cu_seq_lens_k"], kwargs["max_length_q"],
                      kwargs["max_length_k"], **options)
    return out.view(rows, width, heads, dim), None


AttentionInterface.register(IMPLEMENTATION, _attention)


@contextlib.contextmanager
def varlen_attention(model: Any, active: bool = True) -> Iterator[None]:
    """Within the block (when `active`), `model` (a transformers model) attends through `varlen_attn`;
    every batch it gets must carry the packing collator's boundaries."""
    config = model.config
    own = config._attn_implementation
    if active:
        config._attn_implementation = IMPLEMENTATION
    try:
        yield
    finally:
        config._attn_implementation = own
