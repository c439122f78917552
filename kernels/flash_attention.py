"""Flash attention in Triton (`kernel=triton`): attention without ever storing the (T x T) matrix.

Forward (one program per BLOCK_M query rows of one head). Keys and values stream past in BLOCK_N tiles while
each row keeps a running max m, a running normaliser l and an unnormalised output acc (online softmax).
Scores are kept in base-2 units, s = q k^T * scale * log2(e), so that exp(x) is the cheaper exp2:

    m' = max(m, rowmax(s));   p = exp2(s - m')
    l = l * exp2(m - m') + rowsum(p);   acc = acc * exp2(m - m') + p v;   m = m'
    out = acc / l;   lse = m + log2(l)          (saved: only out and the per-row log-sum-exp, base 2)

s itself is never formed: with c = scale * log2(e) > 0, rowmax(s) = c * rowmax(q k^T) (rounding commutes with a
positive scale, so this is exact), and s - m' is one fma per score, fma(q k^T, c, -m'); the backward's s - lse too.
One multiply per score fewer than forming s (a GPU's loop is issue-bound at these tiles), and the rounding of one
fma wherever it runs, whatever Triton's default for fusing a multiply and an add.

Causal masking in two stages: key tiles wholly left of a query tile's diagonal are visible to every row and
run without any mask; only the diagonal band (BLOCK_M keys) applies `col <= row`; tiles to its right are
never visited. Without causality, only a ragged last key tile (T not a multiple of BLOCK_N) is masked.

Backward recomputes p = exp2(s - lse) tile by tile from Q, K, V and lse, with delta = rowsum(dO * O)
(= rowsum(P * dP), precomputed per row):

    dV = P^T dO,   dP = dO V^T,   dS = P * (dP - delta),   dQ = scale * dS K,   dK = scale * dS^T Q

in one kernel: program i of a head computes dK, dV of key tile i (looping over the query tiles that see it),
then dQ of query tile i (looping over the key tiles it sees). No atomics and no (T x T) buffer: memory is O(T)
beyond the inputs and outputs. With causality the two loops are complementary (key tile i is seen by the
query tiles from i on, query tile i sees the key tiles up to i), so every program does the same work. Padded
rows and columns (past T) load as zeros, which contribute exactly nothing to dQ, dK, dV, so the backward masks
only the causal band.

Tiles are autotuned per (T rounded up to a power of two, head_dim, dtype, causality, fp32 precision, whether
descriptors may be used) on a GPU, once per key: later calls launch the chosen config directly
(triton_runtime.TunedKernel). Under Triton's interpreter one small fixed tile is used. A training step's call
costs three launches: the forward; delta and the backward.

Tiles move between global and shared memory in one of two ways, each a set of autotune candidates: the
threads' own masked loads (pipelined by Triton with cp.async where the sizes let it prove them contiguous), or,
on Hopper (sm_90) from TMA_MIN_T on, the tensor memory accelerator through tensor descriptors built on the GPU
(whole tiles copied by one instruction, zeros past T and head_dim; fewer registers spent on addresses). The
autotuner measures which wins for each key (`experiments/scripts/bench_attention.py` writes its choices).
"""

from __future__ import annotations

import math

import torch

import kernels
from kernels.custom_op import attention_op
from kernels.triton_runtime import (
    MAX_HEAD_DIM,
    TunedKernel,
    cdiv,
    check_can_run,
    check_dtype,
    dot_precision,
    launch_configs,
    mma,
    next_power_of_2,
    tl,
    triton,
)

TMA_MIN_T = 1024  # tensor descriptors are tried from this T on (see `descriptors_usable`)


def _configs(owned: str, step: str, operand_bytes: int, shapes: list[tuple], tma: bool = False) -> list:
    """triton.Configs from (owned tile, step tile, num_warps, num_stages, largest BLOCK_D on sm_90, on sm_80)
    for operands of `operand_bytes` (2: bf16 / fp16, 4: fp32); with `tma`, tiles copied by tensor descriptors
    (sm_90 and later: their sm_80 limit is 0). The owned tile is a multiple of the step, so that the causal
    diagonal band is a whole number of steps. The head-dim limits are where the tile still fits in registers and
    shared memory without spilling: make kernels-compile proves each."""
    configs = []
    for own, stp, warps, stages, sm90, sm80 in shapes:
        config = triton.Config({owned: own, step: stp, "TMA": tma}, num_warps=warps, num_stages=stages)
        config.operand_bytes, config.max_block_d = operand_bytes, {(9, 0): sm90, (8, 0): sm80}
        configs.append(config)
    return configs


def usable(configs: list, element_size: int, block_d: int, capability: tuple[int, int], descriptors: bool) -> list:
    """The configs that fit this GPU at this head_dim and dtype, those with tensor descriptors only where
    `descriptors_usable`. fp32 operands (plain FMAs for "ieee", two or three TF32 passes otherwise) take about
    twice the registers and shared memory of bf16: their tiles are smaller. The interpreter's configs have no
    limits."""
    family = (9, 0) if capability >= (9, 0) else (8, 0)
    return [c for c in configs if getattr(c, "operand_bytes", element_size) == element_size
            and block_d <= getattr(c, "max_block_d", {}).get(family, MAX_HEAD_DIM)
            and (descriptors or not c.kwargs["TMA"])]


def _prune(configs, named_args, **constexprs):
    q = named_args["Q"]
    capability = torch.cuda.get_device_capability(q.device) if q.is_cuda else (9, 0)
    return usable(configs, q.element_size(), constexprs["BLOCK_D"], capability, bool(named_args["TMA_OK"]))


def descriptors_usable(T: int, *tensors: torch.Tensor) -> bool:
    """Whether the kernels may read and write these (batch, heads, T, head_dim) tensors through TMA descriptors,
    and the autotuner try configs that do. A descriptor needs a 16-byte aligned start for every head and rows
    16 bytes apart, elements adjacent within a row. The kernels build their descriptors on the GPU, in a scratch
    buffer each launch allocates: host time that pays only where the kernels' own time dominates, from TMA_MIN_T
    on (at the training block of 256 the host's time to issue a launch already exceeds the GPU's)."""
    return T >= TMA_MIN_T and all(
        x.stride(-1) == 1 and x.data_ptr() % 16 == 0 and all(s * x.element_size() % 16 == 0 for s in x.stride()[:-1])
        for x in tensors
    )


def _descriptor_scratch(size: int, alignment: int, stream) -> torch.Tensor:
    """The global memory Triton asks for where kernels build tensor descriptors on the GPU."""
    return torch.empty(size, dtype=torch.int8, device="cuda")


if triton is not None:
    LOG2_E = tl.constexpr(1.4426950408889634)  # exp(x) = exp2(x * log2(e)): every kernel scales by scale * LOG2_E

    # Autotune candidates for a GPU, each compiled for sm_80 and sm_90 by make kernels-compile (those with
    # descriptors for sm_90). Under the interpreter, one 16 x 16 tile, so that the tests' short sequences span
    # several tiles.
    # fp32: 16 x 16 tiles. 32 x 32 already spills at some head dims in ieee or tf32x3 (make kernels-compile).
    # Tiles copied by TMA spend no registers on addresses (10-30% fewer here): larger ones fit at head_dim 128.
    FORWARD_TUNING = _configs("BLOCK_M", "BLOCK_N", 2, [(128, 64, 8, 3, 128, 64), (128, 128, 8, 3, 64, 64),
                                                        (128, 64, 4, 4, 64, 32), (64, 64, 4, 3, 128, 64),
                                                        (64, 32, 4, 4, 128, 128)]) + \
        _configs("BLOCK_M", "BLOCK_N", 2, [(128, 64, 8, 3, 128, 0), (128, 128, 8, 3, 128, 0),
                                           (64, 64, 4, 3, 128, 0)], tma=True) + \
        _configs("BLOCK_M", "BLOCK_N", 4, [(16, 16, 4, 2, 128, 128)])
    # The backward: one program owns a TILE of keys (for dK, dV), then the same TILE of queries (for dQ), and
    # steps through the other side STEP at a time. It holds twice the forward's accumulators (dK and dV, or dQ
    # with q and dO): its tiles are smaller or have more warps. More warps have a price on Hopper: 8 warps on a
    # 64-row tile are two warpgroups splitting the columns, and each needs every probability of the tile (the
    # whole of wgmma's register operand), so both compute all of them: twice the exp2 and elementwise work per
    # tile (experiments/kernels_compile/flash-loop-sass.md). The 4-warp 64 x 64 tiles do not, where they fit.
    BACKWARD_TUNING = _configs("TILE", "STEP", 2, [(128, 64, 8, 3, 32, 32), (64, 64, 8, 2, 64, 64),
                                                   (64, 64, 4, 2, 32, 32), (64, 32, 8, 3, 64, 64),
                                                   (32, 32, 4, 3, 64, 64), (32, 32, 8, 3, 128, 128)]) + \
        _configs("TILE", "STEP", 2, [(128, 64, 8, 3, 64, 0), (64, 64, 8, 2, 128, 0), (64, 64, 4, 3, 128, 0),
                                     (64, 32, 8, 3, 128, 0)], tma=True) + \
        _configs("TILE", "STEP", 4, [(16, 16, 4, 2, 64, 64), (16, 16, 8, 2, 128, 128)])
    FORWARD_CONFIGS = launch_configs(FORWARD_TUNING, triton.Config({"BLOCK_M": 16, "BLOCK_N": 16, "TMA": False}))
    BACKWARD_CONFIGS = launch_configs(BACKWARD_TUNING, triton.Config({"TILE": 16, "STEP": 16, "TMA": False}))
    DELTA_ROWS = 64  # rows per program of the delta kernel
    # the autotuner adds the tensors' dtypes
    TUNING_KEY = ["T_BUCKET", "TMA_OK", "BLOCK_D", "CAUSAL", "PRECISION"]

    @triton.jit
    def _tiles(X, T, D, stride_t, stride_d, ROWS: tl.constexpr, BLOCK_D: tl.constexpr, TMA: tl.constexpr):
        """Where the (ROWS x BLOCK_D) tiles of the (T x D) matrix at X are read from and written to: with TMA, a
        tensor descriptor (Hopper's tensor memory accelerator copies a whole tile, zeros past T and D);
        otherwise X itself, for the threads' own masked loads and stores."""
        if TMA:
            X = tl.make_tensor_descriptor(X, [T, D], [stride_t, stride_d], [ROWS, BLOCK_D])
        return X

    @triton.jit
    def _load_tile(tiles, start, rows, dims, stride_t, stride_d, T, D, TMA: tl.constexpr):
        """The tile of rows `rows` (start, start + 1, ...) of a (T x D) matrix, zeros where it hangs over the edge."""
        if TMA:
            tile = tiles.load([start, 0])
        else:
            tile = tl.load(tiles + rows[:, None] * stride_t + dims[None, :] * stride_d,
                           mask=(rows[:, None] < T) & (dims[None, :] < D), other=0.0)
        return tile

    @triton.jit
    def _store_tile(tiles, start, rows, dims, stride_t, stride_d, T, D, tile, TMA: tl.constexpr):
        """Write the tile of rows `rows` (start, start + 1, ...), leaving out what hangs over the edge."""
        if TMA:
            tiles.store([start, 0], tile)
        else:
            tl.store(tiles + rows[:, None] * stride_t + dims[None, :] * stride_d, tile,
                     mask=(rows[:, None] < T) & (dims[None, :] < D))

    @triton.jit
    def _query_tile(CAUSAL: tl.constexpr):
        """This program's query tile. With causality the last tiles see the most keys: hand them out first,
        so that the long programs start early and the short ones fill in behind them."""
        if CAUSAL:
            tile = tl.num_programs(0) - 1 - tl.program_id(0)
        else:
            tile = tl.program_id(0)
        return tile

    @triton.jit
    def _forward_tiles(acc, l, m, q, K, V, rows, dims, lo, hi, stride_kt, stride_kd, stride_vt, stride_vd, T, D,
                       qk_scale, MASK: tl.constexpr, CAUSAL: tl.constexpr, PRECISION: tl.constexpr,
                       BLOCK_N: tl.constexpr, TMA: tl.constexpr):
        """The online-softmax update over key tiles [lo, hi); MASK: apply the causal / past-the-end mask."""
        for start_n in range(lo, hi, BLOCK_N):
            cols = start_n + tl.arange(0, BLOCK_N)
            k = _load_tile(K, start_n, cols, dims, stride_kt, stride_kd, T, D, TMA)
            qk = mma(q, tl.trans(k), tl.zeros((q.shape[0], BLOCK_N), dtype=tl.float32), PRECISION)
            if MASK:
                visible = (cols[None, :] <= rows[:, None]) if CAUSAL else (cols[None, :] < T)
                qk = tl.where(visible, qk, -float("inf"))
            # the scale goes on the row max (it commutes with a max) and into one fma per score: s is never formed
            m_new = tl.maximum(m, tl.max(qk, axis=1) * qk_scale)  # finite: key 0 is visible to every row
            correction = tl.exp2(m - m_new)
            p = tl.exp2(tl.fma(qk, qk_scale, -m_new[:, None]))
            l = l * correction + tl.sum(p, axis=1)
            v = _load_tile(V, start_n, cols, dims, stride_vt, stride_vd, T, D, TMA)
            acc = mma(p.to(v.dtype), v, acc * correction[:, None], PRECISION)
            m = m_new
        return acc, l, m

    @triton.autotune(configs=FORWARD_CONFIGS, key=TUNING_KEY, prune_configs_by={"early_config_prune": _prune})
    @triton.jit
    def _flash_forward(Q, K, V, O, LSE, stride_qb, stride_qh, stride_qt, stride_qd, stride_kb, stride_kh, stride_kt,
                       stride_kd, stride_vb, stride_vh, stride_vt, stride_vd, stride_ob, stride_oh, stride_ot,
                       stride_od, H, T, D, T_BUCKET, TMA_OK, scale, CAUSAL: tl.constexpr, PRECISION: tl.constexpr,
                       BLOCK_D: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, TMA: tl.constexpr):
        start_m, bh = _query_tile(CAUSAL), tl.program_id(1)
        b, h = (bh // H).to(tl.int64), (bh % H).to(tl.int64)
        Q = _tiles(Q + b * stride_qb + h * stride_qh, T, D, stride_qt, stride_qd, BLOCK_M, BLOCK_D, TMA)
        K = _tiles(K + b * stride_kb + h * stride_kh, T, D, stride_kt, stride_kd, BLOCK_N, BLOCK_D, TMA)
        V = _tiles(V + b * stride_vb + h * stride_vh, T, D, stride_vt, stride_vd, BLOCK_N, BLOCK_D, TMA)
        out_type = O.dtype.element_ty
        O = _tiles(O + b * stride_ob + h * stride_oh, T, D, stride_ot, stride_od, BLOCK_M, BLOCK_D, TMA)
        rows = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
        dims = tl.arange(0, BLOCK_D)
        q = _load_tile(Q, start_m * BLOCK_M, rows, dims, stride_qt, stride_qd, T, D, TMA)
        m = tl.full((BLOCK_M,), -float("inf"), dtype=tl.float32)
        l = tl.zeros((BLOCK_M,), dtype=tl.float32)
        acc = tl.zeros((BLOCK_M, BLOCK_D), dtype=tl.float32)
        qk_scale = scale * LOG2_E
        if CAUSAL:  # stage 1: keys left of the diagonal band; stage 2: the band itself
            band_start, end = start_m * BLOCK_M, tl.minimum((start_m + 1) * BLOCK_M, T)
        else:  # stage 1: every whole key tile; stage 2: the ragged last one, if any
            band_start, end = (T // BLOCK_N) * BLOCK_N, T
        acc, l, m = _forward_tiles(acc, l, m, q, K, V, rows, dims, 0, band_start, stride_kt, stride_kd, stride_vt,
                                   stride_vd, T, D, qk_scale, False, CAUSAL, PRECISION, BLOCK_N, TMA)
        acc, l, m = _forward_tiles(acc, l, m, q, K, V, rows, dims, band_start, end, stride_kt, stride_kd, stride_vt,
                                   stride_vd, T, D, qk_scale, True, CAUSAL, PRECISION, BLOCK_N, TMA)
        out = acc / l[:, None]
        _store_tile(O, start_m * BLOCK_M, rows, dims, stride_ot, stride_od, T, D, out.to(out_type), TMA)
        tl.store(LSE + bh.to(tl.int64) * T + rows, m + tl.log2(l), mask=rows < T)

    @triton.jit
    def _flash_backward_delta(O, DO, DELTA, stride_ob, stride_oh, stride_ot, stride_od, stride_dob, stride_doh,
                              stride_dot, stride_dod, H, T, D, BLOCK_M: tl.constexpr, BLOCK_D: tl.constexpr):
        """delta_i = sum_d dO_id * O_id, which equals rowsum(P * dP) for row i."""
        start_m, bh = tl.program_id(0), tl.program_id(1)
        b, h = (bh // H).to(tl.int64), (bh % H).to(tl.int64)
        rows = start_m * BLOCK_M + tl.arange(0, BLOCK_M)
        dims = tl.arange(0, BLOCK_D)
        o = _load_tile(O + b * stride_ob + h * stride_oh, start_m * BLOCK_M, rows, dims, stride_ot, stride_od, T, D,
                       False).to(tl.float32)
        do = _load_tile(DO + b * stride_dob + h * stride_doh, start_m * BLOCK_M, rows, dims, stride_dot, stride_dod,
                        T, D, False).to(tl.float32)
        tl.store(DELTA + bh.to(tl.int64) * T + rows, tl.sum(o * do, axis=1), mask=rows < T)

    @triton.jit
    def _dkdv_tiles(dk, dv, k, v, Q, DO, LSE, DELTA, cols, dims, lo, hi, stride_qt, stride_qd, stride_dot, stride_dod,
                    T, D, qk_scale, MASK: tl.constexpr, PRECISION: tl.constexpr, BLOCK_M: tl.constexpr,
                    TMA: tl.constexpr):
        """Accumulate dK/scale and dV of one key tile over query tiles [lo, hi); MASK: the causal band."""
        for start_m in range(lo, hi, BLOCK_M):
            rows = start_m + tl.arange(0, BLOCK_M)
            q = _load_tile(Q, start_m, rows, dims, stride_qt, stride_qd, T, D, TMA)
            do = _load_tile(DO, start_m, rows, dims, stride_dot, stride_dod, T, D, TMA)
            lse = tl.load(LSE + rows, mask=rows < T, other=0.0)
            delta = tl.load(DELTA + rows, mask=rows < T, other=0.0)
            # everything transposed, (keys x queries), so that dK and dV come out as (keys x dims)
            qkT = mma(k, tl.trans(q), tl.zeros((k.shape[0], BLOCK_M), dtype=tl.float32), PRECISION)
            pT = tl.exp2(tl.fma(qkT, qk_scale, -lse[None, :]))
            if MASK:
                pT = tl.where(cols[:, None] <= rows[None, :], pT, 0.0)
            dv = mma(pT.to(do.dtype), do, dv, PRECISION)
            dpT = mma(v, tl.trans(do), tl.zeros((k.shape[0], BLOCK_M), dtype=tl.float32), PRECISION)
            dsT = pT * (dpT - delta[None, :])
            dk = mma(dsT.to(q.dtype), q, dk, PRECISION)
        return dk, dv

    @triton.jit
    def _dq_tiles(dq, q, do, lse, delta, K, V, rows, dims, lo, hi, stride_kt, stride_kd, stride_vt, stride_vd, T, D,
                  qk_scale, MASK: tl.constexpr, PRECISION: tl.constexpr, BLOCK_N: tl.constexpr, TMA: tl.constexpr):
        """Accumulate dQ/scale of one query tile over key tiles [lo, hi); MASK: the causal band."""
        for start_n in range(lo, hi, BLOCK_N):
            cols = start_n + tl.arange(0, BLOCK_N)
            k = _load_tile(K, start_n, cols, dims, stride_kt, stride_kd, T, D, TMA)
            v = _load_tile(V, start_n, cols, dims, stride_vt, stride_vd, T, D, TMA)
            qk = mma(q, tl.trans(k), tl.zeros((q.shape[0], BLOCK_N), dtype=tl.float32), PRECISION)
            p = tl.exp2(tl.fma(qk, qk_scale, -lse[:, None]))
            if MASK:
                p = tl.where(cols[None, :] <= rows[:, None], p, 0.0)
            dp = mma(do, tl.trans(v), tl.zeros((q.shape[0], BLOCK_N), dtype=tl.float32), PRECISION)
            ds = p * (dp - delta[:, None])
            dq = mma(ds.to(k.dtype), k, dq, PRECISION)
        return dq

    @triton.autotune(configs=BACKWARD_CONFIGS, key=TUNING_KEY, prune_configs_by={"early_config_prune": _prune})
    @triton.jit
    def _flash_backward(Q, K, V, DO, LSE, DELTA, DQ, DK, DV, stride_qb, stride_qh, stride_qt, stride_qd, stride_kb,
                        stride_kh, stride_kt, stride_kd, stride_vb, stride_vh, stride_vt, stride_vd, stride_dob,
                        stride_doh, stride_dot, stride_dod, stride_gb, stride_gh, stride_gt, stride_gd,
                        H, T, D, T_BUCKET, TMA_OK, scale, CAUSAL: tl.constexpr, PRECISION: tl.constexpr,
                        BLOCK_D: tl.constexpr, TILE: tl.constexpr, STEP: tl.constexpr, TMA: tl.constexpr):
        """Program i of a head: dK and dV of key tile i (TILE keys), over the query tiles that see it (STEP
        queries at a time); then dQ of query tile i (TILE queries), over the key tiles it sees (STEP keys at a
        time). With causality the first part shrinks as i grows and the second grows: every program does the
        same work. DQ, DK and DV share one layout (stride_g*); the inputs each have their own strides. With TMA,
        each input is read through two descriptors: this program's own tile, and the steps."""
        tile, bh = tl.program_id(0), tl.program_id(1)
        b, h = (bh // H).to(tl.int64), (bh % H).to(tl.int64)
        Q += b * stride_qb + h * stride_qh
        K += b * stride_kb + h * stride_kh
        V += b * stride_vb + h * stride_vh
        DO += b * stride_dob + h * stride_doh
        LSE += bh.to(tl.int64) * T
        DELTA += bh.to(tl.int64) * T
        grads = b * stride_gb + h * stride_gh
        dims = tl.arange(0, BLOCK_D)
        start = tile * TILE
        own = start + tl.arange(0, TILE)  # this program's keys, then its queries
        qk_scale = scale * LOG2_E

        # dK, dV of keys `own`. Causal stage 1: the diagonal band, masked (earlier queries cannot see these keys
        # at all); stage 2: the queries past the band see every key of the tile.
        k = _load_tile(_tiles(K, T, D, stride_kt, stride_kd, TILE, BLOCK_D, TMA), start, own, dims, stride_kt,
                       stride_kd, T, D, TMA)
        v = _load_tile(_tiles(V, T, D, stride_vt, stride_vd, TILE, BLOCK_D, TMA), start, own, dims, stride_vt,
                       stride_vd, T, D, TMA)
        q_steps = _tiles(Q, T, D, stride_qt, stride_qd, STEP, BLOCK_D, TMA)
        do_steps = _tiles(DO, T, D, stride_dot, stride_dod, STEP, BLOCK_D, TMA)
        dk = tl.zeros((TILE, BLOCK_D), dtype=tl.float32)
        dv = tl.zeros((TILE, BLOCK_D), dtype=tl.float32)
        band_end = start + TILE if CAUSAL else 0
        if CAUSAL:
            dk, dv = _dkdv_tiles(dk, dv, k, v, q_steps, do_steps, LSE, DELTA, own, dims, start, band_end, stride_qt,
                                 stride_qd, stride_dot, stride_dod, T, D, qk_scale, True, PRECISION, STEP, TMA)
        dk, dv = _dkdv_tiles(dk, dv, k, v, q_steps, do_steps, LSE, DELTA, own, dims, band_end, T, stride_qt,
                             stride_qd, stride_dot, stride_dod, T, D, qk_scale, False, PRECISION, STEP, TMA)
        grad_type = DQ.dtype.element_ty
        DK = _tiles(DK + grads, T, D, stride_gt, stride_gd, TILE, BLOCK_D, TMA)
        DV = _tiles(DV + grads, T, D, stride_gt, stride_gd, TILE, BLOCK_D, TMA)
        _store_tile(DK, start, own, dims, stride_gt, stride_gd, T, D, (dk * scale).to(grad_type), TMA)
        _store_tile(DV, start, own, dims, stride_gt, stride_gd, T, D, dv.to(grad_type), TMA)

        # dQ of queries `own`. Stage 1: key tiles left of the diagonal band (all of them without causality);
        # causal stage 2: the band itself, masked.
        q = _load_tile(_tiles(Q, T, D, stride_qt, stride_qd, TILE, BLOCK_D, TMA), start, own, dims, stride_qt,
                       stride_qd, T, D, TMA)
        do = _load_tile(_tiles(DO, T, D, stride_dot, stride_dod, TILE, BLOCK_D, TMA), start, own, dims, stride_dot,
                        stride_dod, T, D, TMA)
        lse = tl.load(LSE + own, mask=own < T, other=0.0)
        delta = tl.load(DELTA + own, mask=own < T, other=0.0)
        k_steps = _tiles(K, T, D, stride_kt, stride_kd, STEP, BLOCK_D, TMA)
        v_steps = _tiles(V, T, D, stride_vt, stride_vd, STEP, BLOCK_D, TMA)
        dq = tl.zeros((TILE, BLOCK_D), dtype=tl.float32)
        band_start = start if CAUSAL else T
        dq = _dq_tiles(dq, q, do, lse, delta, k_steps, v_steps, own, dims, 0, band_start, stride_kt, stride_kd,
                       stride_vt, stride_vd, T, D, qk_scale, False, PRECISION, STEP, TMA)
        if CAUSAL:
            dq = _dq_tiles(dq, q, do, lse, delta, k_steps, v_steps, own, dims, band_start,
                           tl.minimum(band_start + TILE, T), stride_kt, stride_kd, stride_vt, stride_vd, T, D,
                           qk_scale, True, PRECISION, STEP, TMA)
        DQ = _tiles(DQ + grads, T, D, stride_gt, stride_gd, TILE, BLOCK_D, TMA)
        _store_tile(DQ, start, own, dims, stride_gt, stride_gd, T, D, (dq * scale).to(grad_type), TMA)


def launch_args(q: torch.Tensor, causal: bool) -> dict:
    """The compile-time arguments every attention kernel takes for these inputs (make kernels-compile too)."""
    D = q.size(-1)
    return {"CAUSAL": causal, "PRECISION": dot_precision(q.dtype),
            "BLOCK_D": max(16, next_power_of_2(D))}  # tl.dot needs >= 16; dims past D are masked to 0


def check_shape(q: torch.Tensor) -> None:
    """Refuse, in one line, what the kernels cannot compile for."""
    check_dtype("kernel=triton", q)
    kernels.check_head_dim("triton", q.size(-1))


def _tuning_key(q: torch.Tensor, descriptors: bool, constexprs: dict) -> tuple:
    """What the autotuner keys its choice on (TUNING_KEY and the tensors' dtype), and the device."""
    return (next_power_of_2(q.size(-2)), descriptors, *constexprs.values(), q.dtype, q.device)


def _descriptors(T: int, *tensors: torch.Tensor) -> int:
    """TMA_OK for a launch over these tensors, with the scratch allocator set where it may be used."""
    usable = descriptors_usable(T, *tensors)
    if usable and tensors[0].is_cuda:
        triton.set_allocator(_descriptor_scratch)  # per call: a context variable, and backward runs in its own thread
    return int(usable)


if triton is not None:
    FORWARD, BACKWARD = TunedKernel(_flash_forward), TunedKernel(_flash_backward)


def forward_launch(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool) -> tuple:
    """(grid, tuning key, arguments, compile-time arguments) of the forward kernel over fresh outputs out and lse
    (arguments 3 and 4): what `forward` launches, and experiments/scripts/bench_launch_overhead.py times."""
    B, H, T, D = q.shape
    out = torch.empty_like(q, memory_format=torch.contiguous_format)
    lse = torch.empty(B * H, T, dtype=torch.float32, device=q.device)
    constexprs, descriptors = launch_args(q, causal), _descriptors(T, q, k, v, out)
    args = (q, k, v, out, lse, *q.stride(), *k.stride(), *v.stride(), *out.stride(), H, T, D,
            next_power_of_2(T), descriptors, 1.0 / math.sqrt(D))  # fmt: skip
    key = _tuning_key(q, descriptors, constexprs)
    return (lambda meta: (cdiv(T, meta["BLOCK_M"]), B * H)), key, args, constexprs


def forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(out, lse): the attention and each row's log-sum-exp of its scores (base 2), all backward needs besides
    q, k and v. Two launches of nothing else: the outputs' allocation and the kernel."""
    grid, key, args, constexprs = forward_launch(q, k, v, causal)
    FORWARD(grid, key, *args, **constexprs)
    return args[3], args[4]


def fake_forward(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """`forward`'s outputs without the kernel, for torch.compile's tracing."""
    B, H, T, _ = q.shape
    return torch.empty_like(q, memory_format=torch.contiguous_format), q.new_empty(B * H, T, dtype=torch.float32)


def backward(grad_out: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, out: torch.Tensor,
             lse: torch.Tensor, causal: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(dq, dk, dv) in two launches: delta = rowsum(dO * O), then the fused backward."""
    B, H, T, D = q.shape
    constexprs = launch_args(q, causal)
    delta = torch.empty_like(lse)
    _flash_backward_delta[(cdiv(T, DELTA_ROWS), B * H)](
        out, grad_out, delta, *out.stride(), *grad_out.stride(), H, T, D,
        BLOCK_M=DELTA_ROWS, BLOCK_D=constexprs["BLOCK_D"])
    # the gradients share one fresh contiguous layout; q, k, v and dO are read through their own strides
    dq, dk, dv = (torch.empty(q.shape, dtype=q.dtype, device=q.device) for _ in range(3))
    descriptors = _descriptors(T, q, k, v, grad_out, dq)
    BACKWARD(lambda meta: (cdiv(T, meta["TILE"]), B * H), _tuning_key(q, descriptors, constexprs),
             q, k, v, grad_out, lse, delta, dq, dk, dv, *q.stride(), *k.stride(), *v.stride(), *grad_out.stride(),
             *dq.stride(), H, T, D, next_power_of_2(T), descriptors, 1.0 / math.sqrt(D), **constexprs)
    return dq, dk, dv


attend = attention_op("flash_attention", forward, backward, fake_forward)


def flash_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = True) -> torch.Tensor:
    """Attention over (batch, heads, T, head_dim) tensors of any strides; memory O(T), not O(T^2)."""
    check_can_run("kernel=triton", q, k, v)
    check_shape(q)
    return attend(q, k, v, causal)
