"""Fused row-wise softmax in Triton: one read and one write per element, forward and backward.

Forward, one program per row:   y = exp(x - max(x)) / sum(exp(x - max(x)))
Backward, one program per row:  dx = y * (dy - sum(y * dy))      (the softmax Jacobian-vector product)

With `causal=True` the rows are those of (T x T) score matrices and row t keeps only columns <= t: the
masked entries count as -inf, so they get probability 0, all inside the same single pass. Rows of any
length work (the block is the next power of two, masked), as long as a row fits in one program.
"""

from __future__ import annotations

import torch

from kernels.triton_runtime import INTERPRETING, check_can_run, tl, triton

if triton is not None:

    @triton.jit
    def _softmax_forward(x_ptr, y_ptr, x_row_stride, y_row_stride, n_cols, rows_per_matrix,
                         CAUSAL: tl.constexpr, BLOCK: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        cols = tl.arange(0, BLOCK)
        keep = cols < n_cols
        if CAUSAL:
            keep = keep & (cols <= row % rows_per_matrix)
        x = tl.load(x_ptr + row * x_row_stride + cols, mask=keep, other=-float("inf")).to(tl.float32)
        numerator = tl.exp(x - tl.max(x, axis=0))  # subtracting the max keeps exp() from overflowing
        y = numerator / tl.sum(numerator, axis=0)
        tl.store(y_ptr + row * y_row_stride + cols, y.to(y_ptr.dtype.element_ty), mask=cols < n_cols)

    @triton.jit
    def _softmax_backward(y_ptr, dy_ptr, dx_ptr, y_row_stride, dy_row_stride, dx_row_stride, n_cols,
                          BLOCK: tl.constexpr):
        row = tl.program_id(0).to(tl.int64)
        cols = tl.arange(0, BLOCK)
        inside = cols < n_cols
        y = tl.load(y_ptr + row * y_row_stride + cols, mask=inside, other=0.0).to(tl.float32)
        dy = tl.load(dy_ptr + row * dy_row_stride + cols, mask=inside, other=0.0).to(tl.float32)
        dx = y * (dy - tl.sum(y * dy, axis=0))
        tl.store(dx_ptr + row * dx_row_stride + cols, dx.to(dx_ptr.dtype.element_ty), mask=inside)


def _launch_config(n_cols: int) -> dict:
    block = triton.next_power_of_2(n_cols)
    num_warps = 4 if block < 2048 else 8 if block < 4096 else 16
    return {"BLOCK": block} if INTERPRETING else {"BLOCK": block, "num_warps": num_warps}


def softmax_forward(x: torch.Tensor, causal: bool = False, out_dtype: torch.dtype | None = None) -> torch.Tensor:
    """Softmax over the last dim of x (computed in fp32); with causal, x holds (..., T, T) score matrices."""
    n_cols = x.size(-1)
    if causal and x.size(-2) != n_cols:
        raise ValueError(f"causal softmax needs square (..., T, T) scores, got {tuple(x.shape)}")
    x2d = x.reshape(-1, n_cols)
    if x2d.stride(-1) != 1:
        x2d = x2d.contiguous()
    y2d = torch.empty(x2d.shape, dtype=out_dtype or x.dtype, device=x.device)
    rows_per_matrix = x.size(-2) if causal else 1
    _softmax_forward[(x2d.size(0),)](x2d, y2d, x2d.stride(0), y2d.stride(0), n_cols, rows_per_matrix,
                                      CAUSAL=causal, **_launch_config(n_cols))
    return y2d.view(x.shape)


def softmax_backward(y: torch.Tensor, dy: torch.Tensor, out_dtype: torch.dtype | None = None) -> torch.Tensor:
    """Gradient of the loss w.r.t. the softmax input, given the output y and the output's gradient dy."""
    n_cols = y.size(-1)
    y2d, dy2d = y.reshape(-1, n_cols).contiguous(), dy.reshape(-1, n_cols).contiguous()
    dx2d = torch.empty(y2d.shape, dtype=out_dtype or dy.dtype, device=y.device)
    _softmax_backward[(y2d.size(0),)](y2d, dy2d, dx2d, y2d.stride(0), dy2d.stride(0), dx2d.stride(0), n_cols,
                                       **_launch_config(n_cols))
    return dx2d.view(y.shape)


class FusedSoftmax(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, causal: bool) -> torch.Tensor:
        y = softmax_forward(x, causal)
        ctx.save_for_backward(y)
        return y

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        (y,) = ctx.saved_tensors
        return softmax_backward(y, dy), None


def softmax(x: torch.Tensor, causal: bool = False) -> torch.Tensor:
    """Differentiable fused softmax over the last dim of x (any row length)."""
    check_can_run("the fused softmax kernel", x)
    return FusedSoftmax.apply(x, causal)
