"""A Triton attention as PyTorch sees it: differentiable, cheap to call eagerly, and whole under torch.compile.

    attend = attention_op("flash_attention", forward, backward, fake_forward)
    out = attend(q, k, v, causal)                     # (batch, heads, T, head_dim), like every backend

A kernel module writes its launches as two plain functions,

    forward(q, k, v, causal) -> (out, *residuals)      residuals: what backward needs besides q, k, v and out
    backward(grad_out, q, k, v, out, *residuals, causal) -> (dq, dk, dv), each contiguous

and a `fake_forward` that only allocates `forward`'s outputs (shapes and dtypes, no kernel), and gets three paths:

- **Eager calls** go through a `torch.autograd.Function`: the least host time per call (a PyTorch custom
  operator's dispatch costs 23-55 us more per forward + backward on this project's CPU hosts, about a launch's
  worth; `experiments/scripts/bench_launch_overhead.py` prints it on any machine).
- **Under torch.compile** (`torch.compiler.is_compiling()`) the same two functions are registered custom
  operators, `torch.ops.kernels.<name>` and `torch.ops.kernels.<name>_backward`, with a fake implementation
  for tracing and `register_autograd` for the backward. Dynamo and AOTAutograd put each into the graph as one
  opaque node, so a model compiles through the Triton attention with no graph break, fullgraph and CUDA graphs
  included; the kernels are launched by the same Python as eagerly (autotuning on the first call, which CUDA
  graph trees make before they capture: they run a new graph once eagerly first).
- **Under a dispatch mode** (torch's FlopCounterMode, as in Lightning's model summary; fake tensors) the eager call
  is the custom operator too, so that the mode sees one attention op, whose FLOPs are counted as torch counts
  sdpa's: the forward's two matmuls (q k^T, then p v) over all T x T scores, causal or not; the backward's four,
  and a fifth where it recomputes the scores (flash attention) instead of keeping them.

(`torch.library.triton_op` would let Inductor see into the kernels, but AOTAutograd then traces the body, which
under Triton's CPU interpreter runs the kernel on fake tensors: nothing of it could be proven without a GPU.)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch.utils._python_dispatch import is_in_torch_dispatch_mode
from torch.utils.flop_counter import register_flop_formula, sdpa_backward_flop_count, sdpa_flop_count


def attention_op(name: str, forward: Callable, backward: Callable, fake_forward: Callable) -> Callable:
    """(q, k, v, causal) -> out, differentiable, for eager calls, torch.compile and dispatch modes alike (module
    docstring). `forward` and `backward` must carry type annotations: torch.library derives the operators' schemas
    from them."""

    class Attention(torch.autograd.Function):
        @staticmethod
        def forward(ctx, q, k, v, causal):
            out, *residuals = forward(q, k, v, causal)
            ctx.save_for_backward(q, k, v, out, *residuals)
            ctx.causal = causal
            return out

        @staticmethod
        def backward(ctx, grad_out):
            return *backward(grad_out, *ctx.saved_tensors, ctx.causal), None

    forward_op = torch.library.custom_op(f"kernels::{name}", forward, mutates_args=())
    forward_op.register_fake(fake_forward)
    backward_op = torch.library.custom_op(f"kernels::{name}_backward", backward, mutates_args=())
    # the gradients come back contiguous, whatever the inputs' strides (a fake must say what the real one does)
    backward_op.register_fake(lambda grad_out, q, k, v, *rest: tuple(x.new_empty(x.shape) for x in (q, k, v)))

    def save_for_backward(ctx, inputs, output):
        q, k, v, causal = inputs
        ctx.save_for_backward(q, k, v, *output)
        ctx.causal = causal

    def differentiate(ctx, grad_out, *residual_grads):  # the residuals (lse, probabilities) get no gradient
        return *backward_op(grad_out, *ctx.saved_tensors, ctx.causal), None

    forward_op.register_autograd(differentiate, setup_context=save_for_backward)

    @register_flop_formula(getattr(torch.ops.kernels, name))
    def forward_flops(q_shape, k_shape, v_shape, causal, out_shape=None) -> int:
        return sdpa_flop_count(q_shape, k_shape, v_shape)

    @register_flop_formula(getattr(torch.ops.kernels, f"{name}_backward"))
    def backward_flops(grad_out_shape, q_shape, k_shape, v_shape, attended_shape, *residuals, out_shape=None) -> int:
        batch, heads, T, head_dim = q_shape
        # a backward handed the T x T probabilities (triton_naive) keeps q k^T; one handed the row statistics only
        # (flash attention) multiplies it again, as torch counts sdpa's backward. (The last argument is `causal`.)
        kept = any(shape[-2:] == (T, k_shape[2]) for shape in residuals[:-1])
        return sdpa_backward_flop_count(grad_out_shape, q_shape, k_shape, v_shape) - (
            2 * batch * heads * T * k_shape[2] * head_dim if kept else 0
        )

    def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool) -> torch.Tensor:
        if torch.compiler.is_compiling() or is_in_torch_dispatch_mode():
            return forward_op(q, k, v, causal)[0]
        return Attention.apply(q, k, v, causal)

    return attend
