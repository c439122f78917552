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

from kernels.softmax import softmax_backward, softmax_forward
from kernels.triton_runtime import check_can_run, dot_dtype, tl, triton

if triton is not None:

    @triton.jit
    def _batched_matmul(a_ptr, b_ptr, c_ptr, M, N, K, alpha,
                        stride_ab, stride_am, stride_ak, stride_bb, stride_bk, stride_bn,
                        stride_cb, stride_cm, stride_cn,
                        DOT: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
        """C[b] = alpha * A[b] @ B[b], one (BLOCK_M x BLOCK_N) tile of C per program, fp32 accumulation."""
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
            acc += tl.dot(a, b)
            a_tile += BLOCK_K * stride_ak
            b_tile += BLOCK_K * stride_bk
        c = c_ptr + batch * stride_cb + rows[:, None] * stride_cm + cols[None, :] * stride_cn
        tl.store(c, (acc * alpha).to(c_ptr.dtype.element_ty), mask=(rows[:, None] < M) & (cols[None, :] < N))


def batched_matmul(a: torch.Tensor, b: torch.Tensor, alpha: float = 1.0, out_dtype: torch.dtype | None = None,
                   block: int = 32) -> torch.Tensor:
    """alpha * a @ b for (batch, M, K) and (batch, K, N) tensors of any strides."""
    (batch, M, K), N = a.shape, b.size(-1)
    c = torch.empty(batch, M, N, dtype=out_dtype or a.dtype, device=a.device)
    block_k = max(16, min(block, triton.next_power_of_2(K)))
    grid = (triton.cdiv(M, block), triton.cdiv(N, block), batch)
    _batched_matmul[grid](a, b, c, M, N, K, alpha, *a.stride(), *b.stride(), *c.stride(),
                          DOT=dot_dtype(a.dtype), BLOCK_M=block, BLOCK_N=block, BLOCK_K=block_k)
    return c


class NaiveAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool) -> torch.Tensor:
        B, H, T, D = q.shape
        q3, k3, v3 = (x.reshape(B * H, T, D) for x in (q, k, v))
        scale = 1.0 / math.sqrt(D)
        scores = batched_matmul(q3, k3.transpose(1, 2), alpha=scale, out_dtype=torch.float32)
        probs = softmax_forward(scores, causal=causal, out_dtype=q.dtype)
        out = batched_matmul(probs, v3)
        ctx.save_for_backward(q3, k3, v3, probs)
        ctx.scale = scale
        return out.view(B, H, T, D)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        q3, k3, v3, probs = ctx.saved_tensors
        B, H, T, D = grad_out.shape
        do = grad_out.reshape(B * H, T, D)
        dv = batched_matmul(probs.transpose(1, 2), do, out_dtype=v3.dtype)
        dprobs = batched_matmul(do, v3.transpose(1, 2), out_dtype=torch.float32)
        dscores = softmax_backward(probs, dprobs, out_dtype=torch.float32)
        dq = batched_matmul(dscores, k3, alpha=ctx.scale, out_dtype=q3.dtype)
        dk = batched_matmul(dscores.transpose(1, 2), q3, alpha=ctx.scale, out_dtype=k3.dtype)
        return dq.view(B, H, T, D), dk.view(B, H, T, D), dv.view(B, H, T, D), None


def naive_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = True,
                    dropout_p: float = 0.0) -> torch.Tensor:
    check_can_run("kernel=triton_naive", q, k, v)
    if dropout_p > 0:
        raise ValueError("the Triton attention kernels have no attention dropout: use dropout 0, or eager/sdpa")
    return NaiveAttention.apply(q, k, v, causal)
