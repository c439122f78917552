"""Flash attention in Triton (`kernel=triton`): attention without ever storing the (T x T) matrix.

Forward (one program per BLOCK_M query rows of one head). Keys and values stream past in BLOCK_N tiles while
each row keeps a running max m, a running normaliser l and an unnormalised output acc (online softmax):

    s = q k^T * scale;   m' = max(m, rowmax(s));   p = exp(s - m')
    l = l * exp(m - m') + rowsum(p);   acc = acc * exp(m - m') + p v;   m = m'
    out = acc / l;   lse = m + log(l)          (saved: only out and the per-row log-sum-exp)

With causal masking, the key tiles entirely to the right of a query tile's diagonal are never visited; only
tiles crossing the diagonal are masked element-wise. Exponentials use exp2 with log2(e) folded into the scale.

Backward recomputes p = exp(q k^T * scale - lse) tile by tile from Q, K, V and lse, with
delta = rowsum(dO * O) (= rowsum(P * dP), precomputed per row):

    dV = P^T dO,   dP = dO V^T,   dS = P * (dP - delta),   dQ = scale * dS K,   dK = scale * dS^T Q

one program per key tile for dK, dV (looping over query tiles) and one per query tile for dQ (looping over
key tiles), so no atomics and no (T x T) buffer. Memory is O(T) beyond the inputs and outputs.
"""

from __future__ import annotations

import math

import torch

from kernels.triton_runtime import INTERPRETING, check_can_run, dot_dtype, tl, triton

LOG2_E = 1.4426950408889634

if triton is not None:

    @triton.jit
    def _load_tile(base, rows, dims, stride_t, stride_d, T, D):
        """The (rows x dims) tile of a (T x D) matrix at base, zeros where it hangs over the edge."""
        return tl.load(base + rows[:, None] * stride_t + dims[None, :] * stride_d,
                       mask=(rows[:, None] < T) & (dims[None, :] < D), other=0.0)

    @triton.jit
    def _flash_forward(Q, K, V, O, LSE, stride_qb, stride_qh, stride_qt, stride_qd, stride_kb, stride_kh, stride_kt,
                       stride_kd, stride_vb, stride_vh, stride_vt, stride_vd, stride_ob, stride_oh, stride_ot,
                       stride_od, H, T, D, scale, CAUSAL: tl.constexpr, DOT: tl.constexpr,
                       BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
        start_m, bh = tl.program_id(0), tl.program_id(1)
        b, h = (bh // H).to(tl.int64), (bh % H).to(tl.int64)
        Q += b * stride_qb + h * stride_qh
        K += b * stride_kb + h * stride_kh
        V += b * stride_vb + h * stride_vh
        rows = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
        dims = tl.arange(0, BLOCK_D)
        q = _load_tile(Q, rows, dims, stride_qt, stride_qd, T, D).to(DOT)
        m = tl.full((BLOCK_M,), -float("inf"), dtype=tl.float32)
        l = tl.zeros((BLOCK_M,), dtype=tl.float32)
        acc = tl.zeros((BLOCK_M, BLOCK_D), dtype=tl.float32)
        qk_scale = scale * 1.4426950408889634  # exp(x) = exp2(x * log2(e))
        end = tl.minimum((start_m + 1) * BLOCK_M, T) if CAUSAL else T  # skip tiles right of the diagonal
        for start_n in range(0, end, BLOCK_N):
            cols = start_n + tl.arange(0, BLOCK_N)
            k = _load_tile(K, cols, dims, stride_kt, stride_kd, T, D).to(DOT)
            s = tl.dot(q, tl.trans(k)) * qk_scale
            visible = cols[None, :] < T
            if CAUSAL:
                visible = visible & (cols[None, :] <= rows[:, None])
            s = tl.where(visible, s, -float("inf"))
            m_new = tl.maximum(m, tl.max(s, axis=1))  # finite: column 0 of the first tile is visible to every row
            correction = tl.exp2(m - m_new)
            p = tl.exp2(s - m_new[:, None])
            l = l * correction + tl.sum(p, axis=1)
            v = _load_tile(V, cols, dims, stride_vt, stride_vd, T, D).to(DOT)
            acc = acc * correction[:, None] + tl.dot(p.to(DOT), v)
            m = m_new
        out = acc / l[:, None]
        O += b * stride_ob + h * stride_oh
        tl.store(O + rows[:, None] * stride_ot + dims[None, :] * stride_od, out.to(O.dtype.element_ty),
                 mask=(rows[:, None] < T) & (dims[None, :] < D))
        tl.store(LSE + bh.to(tl.int64) * T + rows, (m + tl.log2(l)) / 1.4426950408889634, mask=rows < T)

    @triton.jit
    def _flash_backward_delta(O, DO, DELTA, stride_ob, stride_oh, stride_ot, stride_od, stride_dob, stride_doh,
                              stride_dot, stride_dod, H, T, D, BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr):
        """delta_i = sum_d dO_id * O_id, which equals rowsum(P * dP) for row i."""
        start_m, bh = tl.program_id(0), tl.program_id(1)
        b, h = (bh // H).to(tl.int64), (bh % H).to(tl.int64)
        rows = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
        dims = tl.arange(0, BLOCK_D)
        o = _load_tile(O + b * stride_ob + h * stride_oh, rows, dims, stride_ot, stride_od, T, D).to(tl.float32)
        do = _load_tile(DO + b * stride_dob + h * stride_doh, rows, dims, stride_dot, stride_dod, T, D).to(tl.float32)
        tl.store(DELTA + bh.to(tl.int64) * T + rows, tl.sum(o * do, axis=1), mask=rows < T)

    @triton.jit
    def _flash_backward_dkdv(Q, K, V, DO, LSE, DELTA, DK, DV, stride_b, stride_h, stride_t, stride_d,
                             stride_dob, stride_doh, stride_dot, stride_dod, H, T, D, scale,
                             CAUSAL: tl.constexpr, DOT: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                             BLOCK_D: tl.constexpr):
        """dK and dV for one tile of BLOCK_N keys, visiting every query tile that can see them.
        Q, K, V, DK, DV share one contiguous (B, H, T, D) layout; DO has its own strides."""
        start_n, bh = tl.program_id(0), tl.program_id(1)
        b, h = (bh // H).to(tl.int64), (bh % H).to(tl.int64)
        head = b * stride_b + h * stride_h
        cols = start_n * BLOCK_N + tl.arange(0, BLOCK_N)
        dims = tl.arange(0, BLOCK_D)
        DO += b * stride_dob + h * stride_doh
        k = _load_tile(K + head, cols, dims, stride_t, stride_d, T, D).to(DOT)
        v = _load_tile(V + head, cols, dims, stride_t, stride_d, T, D).to(DOT)
        dk = tl.zeros((BLOCK_N, BLOCK_D), dtype=tl.float32)
        dv = tl.zeros((BLOCK_N, BLOCK_D), dtype=tl.float32)
        start = (start_n * BLOCK_N // BLOCK_M) * BLOCK_M if CAUSAL else 0  # earlier queries can't see these keys
        for start_m in range(start, T, BLOCK_M):
            rows = start_m + tl.arange(0, BLOCK_M)
            q = _load_tile(Q + head, rows, dims, stride_t, stride_d, T, D).to(DOT)
            do = _load_tile(DO, rows, dims, stride_dot, stride_dod, T, D).to(DOT)
            lse = tl.load(LSE + bh.to(tl.int64) * T + rows, mask=rows < T, other=0.0)
            delta = tl.load(DELTA + bh.to(tl.int64) * T + rows, mask=rows < T, other=0.0)
            # everything transposed, (keys x queries), so that dK and dV come out as (keys x dims)
            sT = tl.dot(k, tl.trans(q)) * scale
            visible = (cols[:, None] < T) & (rows[None, :] < T)
            if CAUSAL:
                visible = visible & (cols[:, None] <= rows[None, :])
            pT = tl.where(visible, tl.exp(sT - lse[None, :]), 0.0)
            dv += tl.dot(pT.to(DOT), do)
            dpT = tl.dot(v, tl.trans(do))
            dsT = pT * (dpT - delta[None, :])
            dk += tl.dot(dsT.to(DOT), q)
        key_mask = (cols[:, None] < T) & (dims[None, :] < D)
        tl.store(DK + head + cols[:, None] * stride_t + dims[None, :] * stride_d, (dk * scale).to(DK.dtype.element_ty),
                 mask=key_mask)
        tl.store(DV + head + cols[:, None] * stride_t + dims[None, :] * stride_d, dv.to(DV.dtype.element_ty),
                 mask=key_mask)

    @triton.jit
    def _flash_backward_dq(Q, K, V, DO, LSE, DELTA, DQ, stride_b, stride_h, stride_t, stride_d,
                           stride_dob, stride_doh, stride_dot, stride_dod, H, T, D, scale,
                           CAUSAL: tl.constexpr, DOT: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                           BLOCK_D: tl.constexpr):
        """dQ for one tile of BLOCK_M queries, visiting every key tile they can see."""
        start_m, bh = tl.program_id(0), tl.program_id(1)
        b, h = (bh // H).to(tl.int64), (bh % H).to(tl.int64)
        head = b * stride_b + h * stride_h
        rows = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
        dims = tl.arange(0, BLOCK_D)
        q = _load_tile(Q + head, rows, dims, stride_t, stride_d, T, D).to(DOT)
        do = _load_tile(DO + b * stride_dob + h * stride_doh, rows, dims, stride_dot, stride_dod, T, D).to(DOT)
        lse = tl.load(LSE + bh.to(tl.int64) * T + rows, mask=rows < T, other=0.0)
        delta = tl.load(DELTA + bh.to(tl.int64) * T + rows, mask=rows < T, other=0.0)
        dq = tl.zeros((BLOCK_M, BLOCK_D), dtype=tl.float32)
        end = tl.minimum((start_m + 1) * BLOCK_M, T) if CAUSAL else T
        for start_n in range(0, end, BLOCK_N):
            cols = start_n + tl.arange(0, BLOCK_N)
            k = _load_tile(K + head, cols, dims, stride_t, stride_d, T, D).to(DOT)
            v = _load_tile(V + head, cols, dims, stride_t, stride_d, T, D).to(DOT)
            s = tl.dot(q, tl.trans(k)) * scale
            visible = (rows[:, None] < T) & (cols[None, :] < T)
            if CAUSAL:
                visible = visible & (cols[None, :] <= rows[:, None])
            p = tl.where(visible, tl.exp(s - lse[:, None]), 0.0)
            ds = p * (tl.dot(do, tl.trans(v)) - delta[:, None])
            dq += tl.dot(ds.to(DOT), k)
        tl.store(DQ + head + rows[:, None] * stride_t + dims[None, :] * stride_d, (dq * scale).to(DQ.dtype.element_ty),
                 mask=(rows[:, None] < T) & (dims[None, :] < D))


def _tiles(D: int, block_m: int | None, block_n: int | None) -> dict:
    default = 32 if INTERPRETING else 64
    return {"BLOCK_M": block_m or default, "BLOCK_N": block_n or default,
            "BLOCK_D": max(16, triton.next_power_of_2(D))}  # tl.dot needs >= 16; extra dims are masked to 0


class FlashAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, causal: bool, block_m: int | None, block_n: int | None):
        B, H, T, D = q.shape
        tiles = _tiles(D, block_m, block_n)
        out = torch.empty_like(q, memory_format=torch.contiguous_format)
        lse = torch.empty(B * H, T, dtype=torch.float32, device=q.device)
        scale = 1.0 / math.sqrt(D)
        grid = (triton.cdiv(T, tiles["BLOCK_M"]), B * H)
        _flash_forward[grid](q, k, v, out, lse, *q.stride(), *k.stride(), *v.stride(), *out.stride(), H, T, D, scale,
                             CAUSAL=causal, DOT=dot_dtype(q.dtype), **tiles)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.causal, ctx.scale, ctx.tiles = causal, scale, tiles
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, out, lse = ctx.saved_tensors
        q, k, v = q.contiguous(), k.contiguous(), v.contiguous()  # one shared layout for the backward kernels
        B, H, T, D = q.shape
        tiles = ctx.tiles
        delta = torch.empty_like(lse)
        _flash_backward_delta[(triton.cdiv(T, tiles["BLOCK_M"]), B * H)](
            out, grad_out, delta, *out.stride(), *grad_out.stride(), H, T, D,
            BLOCK_M=tiles["BLOCK_M"], BLOCK_D=tiles["BLOCK_D"])
        dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
        common = (lse, delta)
        _flash_backward_dkdv[(triton.cdiv(T, tiles["BLOCK_N"]), B * H)](
            q, k, v, grad_out, *common, dk, dv, *q.stride(), *grad_out.stride(), H, T, D, ctx.scale,
            CAUSAL=ctx.causal, DOT=dot_dtype(q.dtype), **tiles)
        _flash_backward_dq[(triton.cdiv(T, tiles["BLOCK_M"]), B * H)](
            q, k, v, grad_out, *common, dq, *q.stride(), *grad_out.stride(), H, T, D, ctx.scale,
            CAUSAL=ctx.causal, DOT=dot_dtype(q.dtype), **tiles)
        return dq, dk, dv, None, None, None


def flash_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = True, dropout_p: float = 0.0,
                    block_m: int | None = None, block_n: int | None = None) -> torch.Tensor:
    """Attention over (batch, heads, T, head_dim) tensors of any strides; memory O(T), not O(T^2)."""
    check_can_run("kernel=triton", q, k, v)
    if dropout_p > 0:
        raise ValueError("the Triton attention kernels have no attention dropout: use dropout 0, or eager/sdpa")
    return FlashAttention.apply(q, k, v, causal, block_m, block_n)
