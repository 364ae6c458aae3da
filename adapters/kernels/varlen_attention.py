"""Attention for packed training rows through flash attention's variable-length kernel.

Given packed rows (position_ids restarting at each example, no attention mask), transformers
builds SDPA a [rows, 1, width, width] block-diagonal mask, and SDPA computes every block of it:
for a row packed with examples of a few hundred tokens, many times the attention the examples
need, and the bound on ax's packed training on a GPU (issue 3). PyTorch's `varlen_attn` takes
the examples' boundaries instead (cumulative lengths over the flattened rows) and computes each
example's own causal triangle only. The packing collators give those boundaries as host values,
under the names of transformers' flash-attention kwargs, which every decoder layer passes on to
its attention function; deriving them on the GPU from position_ids would read a length back to
the host each forward, a sync.

Where FlashAttention 4 (the `flash-attn-4` package, CuTe DSL kernels for Hopper and Blackwell) is
installed and the GPU is one of those, the same boundaries go to its variable-length kernels
instead: PyTorch's own are FlashAttention 2's, written for the A100. It runs as a custom op, so the
compiled layers keep it whole and their graphs do not break around it.

The model's config names this attention while training runs (`varlen_attention`); nothing else
about the model changes, and transformers builds no mask for it.
"""

from __future__ import annotations

import contextlib
import functools
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
# groups them (tests/test_packed_training.py's grouped Llama checks it on a GPU); 2.12 asks
# for `enable_gqa` to do so.
_WINDOWS = "window_size" in _PARAMETERS
_FLAGGED_GROUPS = "enable_gqa" in _PARAMETERS
_FA4_ARCHITECTURES = (9, 10)  # the compute-capability majors FlashAttention 4 has kernels for
# flash-attn-4 4.0.0b36's Hopper backward gave wrong query, key and value gradients at head dims
# 8, 16, 48 and 80 (against PyTorch's kernel, `python bench/varlen_kernels.py`); at every multiple of 32 from 32
# to 256 they agreed to bf16's precision.
_FA4_HEAD_DIM_MULTIPLE = 32


@functools.cache
def _fa4_interface() -> Any:
    """FlashAttention 4's interface module, or None where it is not installed."""
    try:
        from flash_attn.cute import interface
    except ImportError:
        return None
    return interface


def _fa4_window(window: int) -> dict[str, int | None]:
    # A negative left window is none; the right one is 0 under causality either way.
    return {"window_size_left": window if window >= 0 else None, "window_size_right": 0 if window >= 0 else None}


@torch.library.custom_op("ax::fa4_varlen_attention", mutates_args=())
def _fa4_forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, cu_seqlens: torch.Tensor, max_length: int,
                 scale: float, window: int) -> tuple[torch.Tensor, torch.Tensor]:
    out, lse, *_ = _fa4_interface()._flash_attn_fwd(
        q, k, v, cu_seqlens_q=cu_seqlens, cu_seqlens_k=cu_seqlens, max_seqlen_q=max_length,
        max_seqlen_k=max_length, softmax_scale=scale, causal=True, return_lse=True, **_fa4_window(window))
    return out, lse


@_fa4_forward.register_fake
def _(q, k, v, cu_seqlens, max_length, scale, window):
    return q.new_empty(q.shape), q.new_empty((q.shape[1], q.shape[0]), dtype=torch.float32)


@torch.library.custom_op("ax::fa4_varlen_attention_backward", mutates_args=())
def _fa4_backward(grad: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, out: torch.Tensor,
                  lse: torch.Tensor, cu_seqlens: torch.Tensor, max_length: int, scale: float,
                  window: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    dq, dk, dv = _fa4_interface()._flash_attn_bwd(
        q, k, v, out, grad.contiguous(), lse, scale, True, cu_seqlens_q=cu_seqlens, cu_seqlens_k=cu_seqlens,
        max_seqlen_q=max_length, max_seqlen_k=max_length, **_fa4_window(window))
    return dq, dk, dv


@_fa4_backward.register_fake
def _(grad, q, k, v, out, lse, cu_seqlens, max_length, scale, window):
    return torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)


def _fa4_setup(ctx: Any, inputs: tuple, output: tuple) -> None:
    q, k, v, cu_seqlens, ctx.max_length, ctx.scale, ctx.window = inputs
    ctx.save_for_backward(q, k, v, *output, cu_seqlens)


def _fa4_gradients(ctx: Any, grad: torch.Tensor, _grad_lse: torch.Tensor) -> tuple:
    q, k, v, out, lse, cu_seqlens = ctx.saved_tensors
    return (*_fa4_backward(grad, q, k, v, out, lse, cu_seqlens, ctx.max_length, ctx.scale, ctx.window),
            None, None, None, None)


_fa4_forward.register_autograd(_fa4_gradients, setup_context=_fa4_setup)
# Chosen when training enters `varlen_attention`, outside the compiled layers, which read it.
_use_fa4 = False


def fa4_available(model: Any) -> bool:
    """Whether FlashAttention 4 is installed and has kernels for the GPU `model` is on and for its
    head dim."""
    device, config = model.device, model.config
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return (device.type == "cuda" and torch.cuda.get_device_capability(device)[0] in _FA4_ARCHITECTURES
            and head_dim % _FA4_HEAD_DIM_MULTIPLE == 0 and _fa4_interface() is not None)


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
    window = sliding_window - 1 if sliding_window else -1  # transformers' flash attention reads W as W - 1 back
    if _use_fa4:  # its kernels group fewer key than query heads themselves
        out, _ = _fa4_forward(q, k, v, kwargs["cu_seq_lens_q"], kwargs["max_length_q"],
                              scaling if scaling is not None else dim ** -0.5, window)
        return out.view(rows, width, heads, dim), None
    options: dict[str, Any] = {}
    if _WINDOWS:
        options.update(scale=scaling, window_size=(window, 0))
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
    """Within the block (when `active`), `model` (a transformers model) attends through `varlen_attn`,
    or FlashAttention 4 where `fa4_available`; every batch it gets must carry the packing
    collator's boundaries."""
    global _use_fa4
    config = model.config
    own, own_kernel = config._attn_implementation, _use_fa4
    if active:
        config._attn_implementation = IMPLEMENTATION
        _use_fa4 = fa4_available(model)
    try:
        yield
    finally:
        config._attn_implementation, _use_fa4 = own, own_kernel
