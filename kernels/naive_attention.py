"""The textbook attention as Triton kernels (`kernel=triton_naive`): the baseline flash attention beats.

    S = scale * Q K^T            batched matmul kernel           (T x T per head, materialised, fp32)
    P = softmax(S + causal mask) fused softmax kernel            (T x T per head, kept for backward)
    O = P V                      batched matmul kernel

Backward, with the same two kernels:  dV = P^T dO,  dP = dO V^T,  dS = P * (dP - rowsum(P * dP)),
dQ = scale * dS K,  dK = scale * dS^T Q. Transposes are free: the matmul kernel takes any strides.
"""

from __future__ import annotations

import math

import torch

from kernels.custom_op import attention_op
from kernels.softmax import softmax_backward, softmax_forward
from kernels.triton_runtime import (
    INTERPRETING,
    TL_DTYPE,
    cdiv,
    check_can_run,
    check_dtype,
    dot_precision,
    mma,
    next_power_of_2,
    tl,
    triton,
)

# One fixed tile per operand width, as a textbook would; fp32's is smaller: its FMA / TF32 paths need twice
# the registers (make kernels-compile).
TILES = {2: {"BLOCK_M": 64, "BLOCK_N": 64, "BLOCK_K": 32, "num_warps": 4, "num_stages": 3},
         4: {"BLOCK_M": 32, "BLOCK_N": 32, "BLOCK_K": 32, "num_warps": 4, "num_stages": 2}}

if triton is not None:

    @triton.jit
    def _batched_matmul(a_ptr, b_ptr, c_ptr, M, N, K, alpha,
                        stride_ab, stride_am, stride_ak, stride_bb, stride_bk, stride_bn,
                        stride_cb, stride_cm, stride_cn,
                        DOT: tl.constexpr, PRECISION: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                        BLOCK_K: tl.constexpr):
        """C[b] = alpha * A[b] @ B[b], one (BLOCK_M x BLOCK_N) tile of C per program, operands rounded to DOT,
        fp32 accumulation."""
        pid_m, pid_n, batch = tl.program_id(0), tl.program_id(1), tl.program_id(2).to(tl.int64)
        rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        ks = tl.arange(0, BLOCK_K)
        a_tile = a_ptr + batch * stride_ab + rows[:, None] * stride_am + ks[None, :] * stride_ak
        b_tile = b_ptr + batch * stride_bb + ks[:, None] * stride_bk + cols[None, :] * stride_bn
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for k0 in range(0, K, BLOCK_K):
            a = tl.load(a_tile, mask=(rows[:, None] < M) & (ks[None, :] + k0 < K), other=0.0).to(DOT)
            b = tl.load(b_tile, mask=(ks[:, None] + k0 < K) & (cols[None, :] < N), other=0.0).to(DOT)
            acc = mma(a, b, acc, PRECISION)
            a_tile += BLOCK_K * stride_ak
            b_tile += BLOCK_K * stride_bk
        c = c_ptr + batch * stride_cb + rows[:, None] * stride_cm + cols[None, :] * stride_cn
        tl.store(c, (acc * alpha).to(c_ptr.dtype.element_ty), mask=(rows[:, None] < M) & (cols[None, :] < N))


def batched_matmul(a: torch.Tensor, b: torch.Tensor, operands: torch.dtype, alpha: float = 1.0,
                   out_dtype: torch.dtype | None = None) -> torch.Tensor:
    """alpha * a @ b for (batch, M, K) and (batch, K, N) tensors of any strides, multiplied as `operands`
    (the attention inputs' dtype: a bf16 model multiplies in bf16, whatever the scores are kept in)."""
    (batch, M, K), N = a.shape, b.size(-1)
    c = torch.empty(batch, M, N, dtype=out_dtype or a.dtype, device=a.device)
    tile = TILES[operands.itemsize]
    tile = {**tile, "BLOCK_K": max(16, min(tile["BLOCK_K"], next_power_of_2(K)))}
    if INTERPRETING:
        tile = {"BLOCK_M": 32, "BLOCK_N": 32, "BLOCK_K": tile["BLOCK_K"]}
    grid = (cdiv(M, tile["BLOCK_M"]), cdiv(N, tile["BLOCK_N"]), batch)
    _batched_matmul[grid](a, b, c, M, N, K, alpha, *a.stride(), *b.stride(), *c.stride(),
                          DOT=TL_DTYPE[operands], PRECISION=dot_precision(operands), **tile)
    return c


def forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(out, probabilities): the probabilities, (B * H, T, T), are kept for the backward."""
    B, H, T, D = q.shape
    q3, k3, v3 = (x.reshape(B * H, T, D) for x in (q, k, v))
    scores = batched_matmul(q3, k3.transpose(1, 2), q.dtype, alpha=1.0 / math.sqrt(D), out_dtype=torch.float32)
    probs = softmax_forward(scores, causal=causal, out_dtype=q.dtype)
    return batched_matmul(probs, v3, q.dtype).view(B, H, T, D), probs


def fake_forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """`forward`'s outputs without the kernels, for torch.compile's tracing."""
    B, H, T, D = q.shape
    return q.new_empty(B, H, T, D), q.new_empty(B * H, T, T)


def backward(grad_out: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, out: torch.Tensor,
             probs: torch.Tensor, causal: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    B, H, T, D = q.shape
    q3, k3, v3, do = (x.reshape(B * H, T, D) for x in (q, k, v, grad_out))
    dtype, scale = q.dtype, 1.0 / math.sqrt(D)
    dv = batched_matmul(probs.transpose(1, 2), do, dtype)
    dprobs = batched_matmul(do, v3.transpose(1, 2), dtype, out_dtype=torch.float32)
    dscores = softmax_backward(probs, dprobs, out_dtype=torch.float32)
    dq = batched_matmul(dscores, k3, dtype, alpha=scale, out_dtype=dtype)
    dk = batched_matmul(dscores.transpose(1, 2), q3, dtype, alpha=scale, out_dtype=dtype)
    return dq.view(B, H, T, D), dk.view(B, H, T, D), dv.view(B, H, T, D)


attend = attention_op("naive_attention", forward, backward, fake_forward)


def naive_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = True) -> torch.Tensor:
    check_can_run("kernel=triton_naive", q, k, v)
    check_dtype("kernel=triton_naive", q)
    return attend(q, k, v, causal)
