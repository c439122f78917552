"""Fused row-wise softmax in Triton: one read and one write per element, forward and backward.

Forward, per row:   y = exp(x - max(x)) / sum(exp(x - max(x)))
Backward, per row:  dx = y * (dy - sum(y * dy))      (the softmax Jacobian-vector product)

As in Triton's softmax tutorial, a row lives in one program's registers (the block is the row length rounded
up to a power of two, masked), the warps per program grow with the row length, and the grid is persistent:
as many programs as the GPU keeps resident, each looping over rows (`tl.range` pipelines the next row's load
behind this row's arithmetic) instead of one short-lived program per row.

With `causal=True` the rows are those of (T x T) score matrices and row t keeps only columns <= t: the
masked entries count as -inf, so they get probability 0, all inside the same single pass.
"""

from __future__ import annotations

import torch

from kernels.triton_runtime import INTERPRETING, check_can_run, check_dtype, next_power_of_2, tl, triton

MAX_ROW = 16384  # longest row one program holds in registers without spilling (make kernels-compile)

if triton is not None:

    @triton.jit
    def _softmax_forward(x_ptr, y_ptr, x_row_stride, y_row_stride, n_rows, n_cols, rows_per_matrix,
                         CAUSAL: tl.constexpr, BLOCK: tl.constexpr, NUM_STAGES: tl.constexpr):
        cols = tl.arange(0, BLOCK)
        for row in tl.range(tl.program_id(0), n_rows, tl.num_programs(0), num_stages=NUM_STAGES):
            row = tl.cast(row, tl.int64)  # row * stride can pass 2**31
            keep = cols < n_cols
            if CAUSAL:
                keep = keep & (cols <= row % rows_per_matrix)
            x = tl.load(x_ptr + row * x_row_stride + cols, mask=keep, other=-float("inf")).to(tl.float32)
            numerator = tl.exp(x - tl.max(x, axis=0))  # subtracting the max keeps exp() from overflowing
            y = numerator / tl.sum(numerator, axis=0)
            tl.store(y_ptr + row * y_row_stride + cols, y.to(y_ptr.dtype.element_ty), mask=cols < n_cols)

    @triton.jit
    def _softmax_backward(y_ptr, dy_ptr, dx_ptr, y_row_stride, dy_row_stride, dx_row_stride, n_rows, n_cols,
                          BLOCK: tl.constexpr, NUM_STAGES: tl.constexpr):
        cols = tl.arange(0, BLOCK)
        inside = cols < n_cols
        for row in tl.range(tl.program_id(0), n_rows, tl.num_programs(0), num_stages=NUM_STAGES):
            row = tl.cast(row, tl.int64)  # row * stride can pass 2**31
            y = tl.load(y_ptr + row * y_row_stride + cols, mask=inside, other=0.0).to(tl.float32)
            dy = tl.load(dy_ptr + row * dy_row_stride + cols, mask=inside, other=0.0).to(tl.float32)
            dx = y * (dy - tl.sum(y * dy, axis=0))
            tl.store(dx_ptr + row * dx_row_stride + cols, dx.to(dx_ptr.dtype.element_ty), mask=inside)


def launch_config(n_cols: int) -> dict:
    """Block, warps and pipeline depth for rows of n_cols elements (make kernels-compile compiles each)."""
    block = next_power_of_2(n_cols)
    num_warps = 4 if block < 2048 else 8 if block < 8192 else 16
    num_stages = 4 if block <= 4096 else 2  # long rows: fewer rows in flight, or the registers run out
    return {"BLOCK": block, "NUM_STAGES": num_stages, "num_warps": num_warps}


def _grid(n_rows: int, num_warps: int, device: torch.device) -> tuple[int]:
    """A persistent grid: the programs the GPU keeps resident at once (2048 threads per multiprocessor), or
    fewer where there are fewer rows."""
    if INTERPRETING:
        return (min(n_rows, 4),)
    resident_per_sm = max(1, 2048 // (32 * num_warps))
    return (min(n_rows, torch.cuda.get_device_properties(device).multi_processor_count * resident_per_sm),)


def _check_row(name: str, x: torch.Tensor) -> None:
    check_can_run(name, x)
    check_dtype(name, x)
    if x.size(-1) > MAX_ROW:
        raise ValueError(f"{name} takes rows of up to {MAX_ROW} elements (a row must fit in one program's "
                         f"registers); got {x.size(-1)}: use kernel=triton (flash attention) for longer sequences")


def softmax_forward(x: torch.Tensor, causal: bool = False, out_dtype: torch.dtype | None = None) -> torch.Tensor:
    """Softmax over the last dim of x (computed in fp32); with causal, x holds (..., T, T) score matrices."""
    _check_row("the fused softmax kernel", x)
    n_cols = x.size(-1)
    if causal and x.size(-2) != n_cols:
        raise ValueError(f"causal softmax needs square (..., T, T) scores, got {tuple(x.shape)}")
    if x.numel() == 0:  # no rows (or empty ones) to launch a program for
        return torch.empty(x.shape, dtype=out_dtype or x.dtype, device=x.device)
    x2d = x.reshape(-1, n_cols)
    if x2d.stride(-1) != 1:
        x2d = x2d.contiguous()
    y2d = torch.empty(x2d.shape, dtype=out_dtype or x.dtype, device=x.device)
    config = launch_config(n_cols)
    _softmax_forward[_grid(x2d.size(0), config["num_warps"], x.device)](
        x2d, y2d, x2d.stride(0), y2d.stride(0), x2d.size(0), n_cols, x.size(-2) if causal else 1, CAUSAL=causal,
        **config)
    return y2d.view(x.shape)


def softmax_backward(y: torch.Tensor, dy: torch.Tensor, out_dtype: torch.dtype | None = None) -> torch.Tensor:
    """Gradient of the loss w.r.t. the softmax input, given the output y and the output's gradient dy."""
    n_cols = y.size(-1)
    if y.numel() == 0:
        return torch.empty(y.shape, dtype=out_dtype or dy.dtype, device=y.device)
    y2d, dy2d = (t.reshape(-1, n_cols) for t in (y, dy))
    y2d, dy2d = (t if t.stride(-1) == 1 else t.contiguous() for t in (y2d, dy2d))
    dx2d = torch.empty(y2d.shape, dtype=out_dtype or dy.dtype, device=y.device)
    config = launch_config(n_cols)
    _softmax_backward[_grid(y2d.size(0), config["num_warps"], y.device)](
        y2d, dy2d, dx2d, y2d.stride(0), dy2d.stride(0), dx2d.stride(0), y2d.size(0), n_cols, **config)
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
    """Differentiable fused softmax over the last dim of x (any row length up to MAX_ROW; softmax_forward
    checks it)."""
    return FusedSoftmax.apply(x, causal)
