"""The Triton kernels against float64 PyTorch references, forward and backward, over shapes and dtypes.

They run compiled on a CUDA GPU and through Triton's interpreter elsewhere (tests/conftest.py), to the same
tolerances: under the interpreter the kernels round their matmul operands as the GPU's matrix units read
them (kernels/triton_runtime.py), so both compute what a GPU computes. Each test draws its inputs from a
seed derived from its own id (a failure reproduces; different tests see different numbers), and every
output buffer the kernels allocate is filled with NaN first, so an element a kernel forgets to write fails
the comparison. Errors are relative norms ||out - ref|| / ||ref||, the reference in float64 from the same
(rounded) inputs.
"""

import math
import zlib

import numpy as np
import pytest
import torch
import triton

import kernels
import kernels.flash_attention as flash
from kernels.flash_attention import BACKWARD, FORWARD, descriptors_usable, flash_attention, usable
from kernels.interpreter import interpreter_problem
from kernels.softmax import MAX_ROW, softmax
from kernels.triton_runtime import INTERPRETING, MAX_HEAD_DIM, cdiv, next_power_of_2

DEVICE = "cuda" if not INTERPRETING and torch.cuda.is_available() else "cpu"
CAPABILITY = torch.cuda.get_device_capability() if DEVICE == "cuda" else (9, 0)  # the interpreter: as sm_90

# Tolerances derived from the GPU's arithmetic, not from what passes. eps is the relative error with which the
# matrix units read one operand: the unit roundoff of its format (bf16 2^-8, fp16 2^-11), TF32 truncated to
# 10 mantissa bits 2^-10, three-pass TF32 2^-21 (the dropped lo*lo term and the truncated low parts), fp32
# 2^-24. The longest chain in the backward, dK = scale * (P * (dO V^T - delta))^T Q with P = exp(Q K^T - lse),
# passes through 4 matrix products of 2 rounded operands each: 8 eps. fp32 accumulation adds at most
# n * 2^-24 for the longest sum here (n <= 128 terms: T or head_dim).
ACCUMULATION = 128 * 2.0**-24
MODES = {  # name: (dtype, torch.get_float32_matmul_precision(), eps)
    "fp32": (torch.float32, "highest", 2.0**-24),
    "fp32-tf32x3": (torch.float32, "high", 2.0**-21),
    "fp32-tf32": (torch.float32, "medium", 2.0**-10),
    "bf16": (torch.bfloat16, "highest", 2.0**-8),
    "fp16": (torch.float16, "highest", 2.0**-11),
}
TOLERANCE = {mode: 8 * eps + ACCUMULATION for mode, (_, _, eps) in MODES.items()}


@pytest.fixture(autouse=True)
def seeded_and_poisoned(request, monkeypatch):
    """Seed from the test's id; make every torch.empty / empty_like a kernel asks for start out as NaN."""
    torch.manual_seed(zlib.crc32(request.node.nodeid.encode()))
    real_empty, real_empty_like = torch.empty, torch.empty_like

    def poison(tensor):
        return tensor.fill_(float("nan")) if tensor.is_floating_point() else tensor

    monkeypatch.setattr(torch, "empty", lambda *a, **k: poison(real_empty(*a, **k)))
    monkeypatch.setattr(torch, "empty_like", lambda *a, **k: poison(real_empty_like(*a, **k)))


@pytest.fixture
def mode(request):
    """(dtype, tolerance) of one numeric mode, with torch's fp32 matmul precision set for it."""
    dtype, precision, _ = MODES[request.param]
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(precision)
    yield dtype, TOLERANCE[request.param]
    torch.set_float32_matmul_precision(before)


def relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    assert not got.isnan().any(), "NaN in output: an element was never written"
    error = (got.double() - want).norm()
    # an exactly-zero reference (dQ when T = 1: a softmax over one element has no gradient) has no scale
    return (error / want.norm() if want.norm() > 0 else error).item()


def reference_attention(q, k, v, causal):
    """Float64 attention from the definition, with an explicit mask."""
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.size(-1))
    if causal:
        T = q.size(-2)
        scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool, device=q.device).triu(1), float("-inf"))
    return scores.softmax(dim=-1) @ v


def check_against_reference(fn, inputs, reference, tolerance):
    """Compare fn's output and input-gradients (for one random output gradient) with the float64 reference."""
    out = fn(*inputs)
    grad_out = torch.randn_like(out)
    grads = torch.autograd.grad(out, inputs, grad_out)
    exact = [x.detach().double().requires_grad_() for x in inputs]
    ref = reference(*exact)
    ref_grads = torch.autograd.grad(ref, exact, grad_out.double())
    assert out.dtype == inputs[0].dtype and out.shape == ref.shape
    assert relative_error(out, ref) < tolerance, "forward"
    for name, got, want in zip("qkv", grads, ref_grads, strict=False):  # softmax has one input
        assert got.dtype == inputs[0].dtype
        assert relative_error(got, want) < tolerance, f"d{name}"


# (batch, heads, T, head_dim): T = 1, odd T, T below and above the tiles, head dims 8 to 128
SHAPES = [(1, 1, 1, 16), (2, 3, 37, 16), (1, 2, 70, 64), (2, 1, 45, 128), (1, 2, 33, 48), (3, 2, 19, 8), (1, 1, 64, 32)]
CASES = [(shape, mode) for mode in ("fp32", "bf16") for shape in SHAPES] + [
    (shape, mode) for mode in ("fp32-tf32x3", "fp32-tf32", "fp16") for shape in SHAPES[2:4]
]


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("shape, mode", CASES, indirect=["mode"])
@pytest.mark.parametrize("backend", ["triton_naive", "triton"])
def test_attention_kernels_match_float64(backend, shape, mode, causal):
    dtype, tolerance = mode
    q, k, v = (torch.randn(shape, device=DEVICE, dtype=dtype, requires_grad=True) for _ in range(3))
    check_against_reference(
        lambda q, k, v: kernels.attention(q, k, v, backend=backend, causal=causal),
        (q, k, v),
        lambda q, k, v: reference_attention(q, k, v, causal),
        tolerance,
    )


def candidates(kernel) -> list:
    """Every config the kernel's autotuner may choose from: on a GPU its list. Interpreted: its one square tile,
    and one whose owned side (query rows; the backward's own keys and queries) is two steps long, as most GPU
    configs' are (a causal band of two steps; the backward's own and step tiles of different shapes), each read
    and written by the threads' own loads and through TMA descriptors."""
    if DEVICE == "cuda":
        return kernel.autotuner.configs
    (config,) = kernel.autotuner.configs
    owned = "BLOCK_M" if "BLOCK_M" in config.kwargs else "TILE"
    return [
        triton.Config({**config.kwargs, owned: config.kwargs[owned] * steps, "TMA": tma})
        for tma in (False, True)
        for steps in (1, 2)
    ]


def use_only(tiles: str, monkeypatch) -> None:
    """Run the flash kernels with only the configs whose tiles move through the threads' own loads and stores
    ("pointers"), or only those that use TMA descriptors ("descriptors", tried at any T)."""
    monkeypatch.setattr(flash, "TMA_MIN_T", 0)
    for kernel in (FORWARD, BACKWARD):
        chosen = [c for c in candidates(kernel) if c.kwargs["TMA"] == (tiles == "descriptors")]
        if DEVICE == "cpu":  # one: the interpreter's autotuner would time numpy to choose
            chosen = chosen[:1]
        monkeypatch.setattr(kernel.autotuner, "configs", chosen)
        monkeypatch.setattr(kernel, "tuned", {})  # no choice remembered from another test's configs


# on a GPU, descriptors for bf16 only (fp32 runs one small tile) and from sm_90 on
TILE_PATHS = ["pointers", "descriptors"] if DEVICE == "cpu" or CAPABILITY >= (9, 0) else ["pointers"]


@pytest.mark.parametrize(
    "mode, tiles",
    [(m, t) for m in ("fp32", "bf16") for t in TILE_PATHS if DEVICE == "cpu" or (m, t) != ("fp32", "descriptors")],
    indirect=["mode"],
)
@pytest.mark.parametrize("T", [47, 100])
def test_flash_attention_on_strided_views_across_many_tiles(T, mode, tiles, monkeypatch):
    """Several query and key tiles, causal tiles skipped, a ragged last tile; q, k, v read as strided views of
    the models' (B, T, 3, H, D) projection, with no copy, by the threads' loads or by TMA descriptors."""
    dtype, tolerance = mode
    use_only(tiles, monkeypatch)
    qkv = torch.randn(2, T, 3, 2, 32, device=DEVICE, dtype=dtype, requires_grad=True)
    views = lambda qkv: qkv.permute(2, 0, 3, 1, 4)
    check_against_reference(
        lambda qkv: kernels.attention(*views(qkv), backend="triton"),
        (qkv,),
        lambda qkv: reference_attention(*views(qkv), causal=True),
        tolerance,
    )


def test_descriptors_are_used_only_where_tma_can_address_every_tile(monkeypatch):
    """A TMA descriptor needs each head's first element 16-byte aligned, rows 16 bytes apart and adjacent
    elements within a row (Hopper's tensor-map rules), and pays only from TMA_MIN_T on."""
    T = flash.TMA_MIN_T

    def views(dtype, H, D, T=T):  # q, k, v as the models pass them: split off one (B, T, 3, H, D) projection
        return torch.empty(1, T, 3, H, D, dtype=dtype).permute(2, 0, 3, 1, 4)

    assert descriptors_usable(T, *views(torch.bfloat16, 2, 64))  # rows of 3 * 2 * 64 * 2 bytes, heads 128 apart
    assert descriptors_usable(T, *views(torch.float32, 1, 4))  # rows 48 bytes apart, heads 16
    assert not descriptors_usable(T - 1, *views(torch.bfloat16, 2, 64))  # too short to pay
    assert not descriptors_usable(T, *views(torch.bfloat16, 1, 4))  # k starts 8 bytes after q
    assert not descriptors_usable(T, *views(torch.bfloat16, 2, 12))  # rows 144 bytes apart, but heads 24
    assert not descriptors_usable(T, *views(torch.float32, 1, 2))  # rows 24 bytes apart
    q = torch.empty(1, 2, 8, T, dtype=torch.bfloat16).transpose(-1, -2)  # elements of a row 2 * T bytes apart
    assert not descriptors_usable(T, q)
    q = torch.empty(2 * 2 * T * 64 + 1, dtype=torch.bfloat16)[1:].view(2, 2, T, 64)  # starts 2 bytes in
    assert not descriptors_usable(T, q)


def test_flash_attention_makes_no_copy_of_strided_inputs(monkeypatch):
    """Forward and backward read q, k, v through their strides: nothing calls .contiguous()."""
    qkv = torch.randn(1, 40, 3, 2, 16, device=DEVICE, requires_grad=True)
    real_contiguous = torch.Tensor.contiguous
    copies = []
    monkeypatch.setattr(
        torch.Tensor, "contiguous", lambda self, *a, **k: copies.append(self.shape) or real_contiguous(self, *a, **k)
    )
    kernels.attention(*qkv.permute(2, 0, 3, 1, 4), backend="triton").sum().backward()
    assert copies == []


# lengths spanning several of the largest tiles with a ragged end (shorter under the interpreter: 16 x 16 tiles)
LENGTHS = [(300, 64), (200, 128)] if DEVICE == "cuda" else [(90, 64), (45, 128)]
TUNING = [(i, T, D) for i in range(max(len(candidates(k)) for k in (FORWARD, BACKWARD))) for T, D in LENGTHS]


@pytest.mark.parametrize("mode", ["bf16", "fp32"], indirect=True)
@pytest.mark.parametrize("index, T, D", TUNING)
def test_every_autotune_config_matches_float64(index, T, D, mode, monkeypatch):
    """Each kernel run with the index-th of its configs usable here (`candidates`; those with TMA descriptors
    tried at any T), causal, T spanning several tiles with a ragged end."""
    dtype, tolerance = mode
    monkeypatch.setattr(flash, "TMA_MIN_T", 0)
    for kernel in (FORWARD, BACKWARD):
        configs = usable(candidates(kernel), dtype.itemsize, D, CAPABILITY, descriptors=True)
        monkeypatch.setattr(kernel.autotuner, "configs", [configs[index % len(configs)]])
        monkeypatch.setattr(kernel, "tuned", {})  # no choice remembered from another test's configs
    q, k, v = (torch.randn(2, 2, T, D, device=DEVICE, dtype=dtype, requires_grad=True) for _ in range(3))
    check_against_reference(
        lambda q, k, v: flash_attention(q, k, v, causal=True),
        (q, k, v),
        lambda q, k, v: reference_attention(q, k, v, True),
        tolerance,
    )


# bf16 and fp16 are checked on rows of 100+ elements: on 7-element rows even PyTorch's own bf16 softmax gradient
# strays past 2e-2 from float64 (200 random draws), a property of bf16 rather than of the kernel. Causal cases
# are square (..., T, T) score matrices; rows past 16 columns and past 2048 change the block and the warps.
SOFTMAX_CASES = (
    [(shape, "fp32", False) for shape in [(1, 1), (3, 7), (2, 5, 100), (4, 1000), (2, 2100)]]
    + [(shape, mode, False) for mode in ("bf16", "fp16") for shape in [(2, 5, 100), (4, 1000), (2, 2100)]]
    + [(shape, "fp32", True) for shape in [(1, 1, 1), (2, 7, 7), (1, 130, 130)]]
    + [(shape, mode, True) for mode in ("bf16", "fp16") for shape in [(2, 100, 100), (1, 130, 130)]]
)


@pytest.mark.parametrize("shape, mode, causal", SOFTMAX_CASES, indirect=["mode"])
def test_fused_softmax_matches_float64(shape, mode, causal):
    dtype, tolerance = mode
    x = (torch.randn(shape, device=DEVICE) * 3).to(dtype).requires_grad_()

    def reference(x):
        if causal:
            T = x.size(-1)
            x = x.masked_fill(torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1), float("-inf"))
        return x.softmax(dim=-1)

    check_against_reference(lambda x: softmax(x, causal=causal), (x,), reference, tolerance)
    if causal:  # the masked entries are exactly zero, not merely small
        assert (softmax(x, causal=True).triu(1) == 0).all()


@pytest.mark.parametrize("causal", [False, True])
def test_fused_softmax_is_exact_on_scores_whose_exp_overflows(causal):
    """exp(100) overflows fp32: only the max subtraction keeps [100, 0, 1] from inf / inf = NaN."""
    rows = torch.tensor([[100.0, 0.0, 1.0], [-1000.0, 1000.0, 999.0], [88.0, 89.0, 90.0]], device=DEVICE)
    x = rows if not causal else torch.tensor([[[0.0, 0, 0], [500, 499, 0], [-300, 700, 699]]], device=DEVICE)
    want = x.double() if not causal else x.double().masked_fill(torch.ones(3, 3).triu(1).bool().to(DEVICE), -math.inf)
    assert relative_error(softmax(x, causal=causal), want.softmax(dim=-1)) < TOLERANCE["fp32"]


# The flash backward recomputes P = exp2(s - lse) over the whole tile of the causal band, then zeroes the future:
# there a score hundreds above its row's lse overflows to inf first (as on a GPU, silently) and is replaced by 0.
@pytest.mark.filterwarnings("ignore:overflow encountered in exp2:RuntimeWarning")
@pytest.mark.parametrize("backend", kernels.TRITON_BACKENDS)
def test_attention_is_exact_where_the_scores_are_in_the_hundreds(backend):
    """Scores of several hundred (q and k 20x larger than unit scale), where exp() overflows fp32: the softmax must
    subtract each row's max (online, in flash attention). The output and dV against float64, at a tolerance that
    grows with the scores (each is rounded to within |s| 2^-24, and exp turns that into a relative error of P);
    dQ and dK are only required finite: with P nearly one-hot, dS = P (dP - delta) cancels, even in float64's
    reference, to whatever rounding leaves."""
    q, k, v = (torch.randn(1, 2, 40, 16, device=DEVICE) for _ in range(3))
    q, k = 20 * q, 20 * k
    largest = (q @ k.transpose(-1, -2)).abs().max().item() / math.sqrt(16)
    assert largest > 200
    tolerance = TOLERANCE["fp32"] + 8 * largest * 2.0**-24
    q, k, v = (x.requires_grad_() for x in (q, k, v))
    out = kernels.attention(q, k, v, backend=backend)
    grad_out = torch.randn_like(out)
    dq, dk, dv = torch.autograd.grad(out, (q, k, v), grad_out)
    exact = [x.detach().double().requires_grad_() for x in (q, k, v)]
    ref = reference_attention(*exact, causal=True)
    (ref_dv,) = torch.autograd.grad(ref, exact[2], grad_out.double())
    assert relative_error(out, ref) < tolerance
    assert relative_error(dv, ref_dv) < tolerance
    assert dq.isfinite().all() and dk.isfinite().all()


def test_the_wrappers_host_arithmetic_is_tritons():
    """The grids, blocks and tuning keys come from plain-Python cdiv and next_power_of_2 (cheaper per call than
    Triton's constexpr functions): the same integers as Triton's and as the arithmetic's definition."""
    for n in range(1, 5000):
        assert next_power_of_2(n) == triton.next_power_of_2(n) == 2 ** math.ceil(math.log2(n))
        for block in (16, 64, 128):
            assert cdiv(n, block) == triton.cdiv(n, block) == math.ceil(n / block)


def test_rows_longer_than_a_program_holds_are_refused_in_one_line():
    x = torch.randn(1, MAX_ROW + 1, device=DEVICE)
    with pytest.raises(ValueError, match=f"rows of up to {MAX_ROW} elements.*got {MAX_ROW + 1}"):
        softmax(x)


def test_all_backends_agree_through_the_interface():
    q, k, v = (torch.randn(2, 2, 29, 16, device=DEVICE) for _ in range(3))
    outs = {b: kernels.attention(q, k, v, backend=b) for b in kernels.BACKENDS}
    for backend, out in outs.items():
        torch.testing.assert_close(out, outs["sdpa"], rtol=1e-5, atol=1e-5, msg=backend)


def counted_flops(backend: str, shape: tuple[int, ...]) -> tuple[int, int]:
    """torch's FlopCounterMode over one attention's forward, then its backward."""
    from torch.utils.flop_counter import FlopCounterMode

    kernels.lookup(backend).load()  # the formulas register on import, and the counter copies them when made
    q, k, v = (torch.randn(shape, device=DEVICE, requires_grad=True) for _ in range(3))
    with FlopCounterMode(display=False) as counter:
        out = kernels.attention(q, k, v, backend=backend)
        forward = counter.get_total_flops()
        out.sum().backward()
    return forward, counter.get_total_flops() - forward


@pytest.mark.parametrize("shape", [(2, 3, 32, 16), (1, 2, 17, 8)])
def test_every_backend_counts_the_flops_of_the_matmuls_it_does(shape):
    """Counted as torch counts the matmuls of eager attention: q k^T and p v forward (2 T^2 head_dim each, causal
    or not); four backward, and a fifth where the scores are recomputed (sdpa's flash kernels, kernel=triton)."""
    B, H, T, D = shape
    matmul = 2 * B * H * T * T * D
    counted = {backend: counted_flops(backend, shape) for backend in kernels.BACKENDS}
    assert counted["eager"] == counted["triton_naive"] == (2 * matmul, 4 * matmul)  # eager's: aten's own counts
    assert counted["sdpa"] == counted["triton"] == (2 * matmul, 5 * matmul)


def test_the_model_summary_counts_attention_through_every_backend():
    """Lightning's model summary (its FLOPs column) runs the module's example input, one sequence of block_size
    tokens: every backend gives the GPT's matmuls, counted by hand."""
    from lightning.pytorch.utilities.model_summary import ModelSummary

    from gpt.module import LanguageModelModule

    flops = {}
    for backend in kernels.BACKENDS:
        config = {"_target_": "gpt.models.GPT", "block_size": 16, "n_embd": 16, "n_head": 2, "n_layer": 2,
                  "dropout": 0.0, "backend": backend}  # fmt: skip
        module = LanguageModelModule(config, optim={}, vocab="abcdefgh", max_steps=1, tokenizer="chars")
        flops[backend] = ModelSummary(module.to(DEVICE)).total_flops
    T, C, vocab = 16, 16, 8
    linear = 2 * T * C * (3 * C + C + 4 * C + 4 * C)  # a block's q k v, its projection, the MLP's two layers
    attention = 2 * (2 * T * T * C)  # q k^T and p v, over all heads (heads x head_dim = C)
    expected = 2 * (linear + attention) + 2 * T * C * vocab  # two blocks and the head
    assert flops == dict.fromkeys(kernels.BACKENDS, expected)


@pytest.mark.parametrize("backend", kernels.TRITON_BACKENDS)
def test_triton_backends_refuse_attention_dropout(backend):
    q = torch.randn(1, 1, 8, 16, device=DEVICE)
    with pytest.raises(
        kernels.KernelUnavailableError, match=rf"kernel={backend}: it has no attention dropout.*kernel=eager\|sdpa"
    ):
        kernels.attention(q, q, q, backend=backend, dropout_p=0.1)


def test_head_dims_past_the_shared_memory_limit_are_refused_in_one_line():
    q = torch.randn(1, 1, 8, MAX_HEAD_DIM + 1, device=DEVICE)
    too_wide = f"head_dim up to {MAX_HEAD_DIM}.*got head_dim {MAX_HEAD_DIM + 1}"
    with pytest.raises(kernels.KernelUnavailableError, match=too_wide):
        kernels.attention(q, q, q, backend="triton")


@pytest.mark.parametrize("backend", kernels.TRITON_BACKENDS)
def test_unsupported_dtypes_are_refused_in_one_line(backend):
    q = torch.randn(1, 1, 8, 16, device=DEVICE, dtype=torch.float64)
    with pytest.raises(kernels.KernelUnavailableError, match=r"float32, bfloat16 or float16.*torch\.float64"):
        kernels.attention(q, q, q, backend=backend)


@pytest.mark.parametrize("backend", kernels.BACKENDS)
def test_q_k_v_of_different_dtypes_are_refused_by_every_backend(backend):
    """sdpa refuses them; a Triton kernel would read all three as q's dtype, so the interface refuses for all."""
    q = torch.randn(1, 1, 8, 16, device=DEVICE)
    with pytest.raises(ValueError, match=r"one dtype and device; got torch\.float32 on .*torch\.float16 on"):
        kernels.attention(q, q.half(), q, backend=backend)


@pytest.mark.parametrize("backend", kernels.BACKENDS)
@pytest.mark.parametrize("shape", [(0, 2, 5, 16), (1, 2, 0, 16)])
def test_empty_batches_and_sequences_give_empty_outputs_and_gradients(backend, shape):
    q, k, v = (torch.randn(shape, device=DEVICE, requires_grad=True) for _ in range(3))
    out = kernels.attention(q, k, v, backend=backend)
    grads = torch.autograd.grad(out, (q, k, v), torch.ones_like(out))
    assert out.shape == shape and all(g.shape == shape for g in grads)


def numpy_refuses_int_of_a_one_element_array() -> bool:
    """What Triton 3.6's interpreter trips on: its `int(handle.data)` of a loop bound held as a (1,)-shaped array."""
    try:
        int(np.array([3], dtype=np.int32))
    except TypeError:
        return True
    return False


@pytest.mark.parametrize("version", ["3.5.1", "3.6.0", "3.6.0+git9844da9", "3.7.0", "3.9.0", "3.10.0rc1", "main"])
def test_an_interpreter_that_cannot_run_beside_this_numpy_is_named(version):
    problem = interpreter_problem(version)
    if version.startswith(("3.5.", "3.6.")) and numpy_refuses_int_of_a_one_element_array():
        assert f"Triton {version}'s interpreter" in problem and f"NumPy {np.__version__}" in problem
        assert "triton>=3.7" in problem and "\n" not in problem
    else:
        assert problem is None


def test_the_interpreters_problem_is_a_one_line_error_for_every_kernel(monkeypatch):
    monkeypatch.setattr("kernels.triton_runtime.INTERPRETING", True)
    problem = "this interpreter cannot run here"
    monkeypatch.setattr("kernels.triton_runtime.INTERPRETER_PROBLEM", problem)
    q = torch.randn(1, 1, 8, 16)
    for backend in kernels.TRITON_BACKENDS:
        with pytest.raises(kernels.KernelUnavailableError, match=rf"^kernel={backend}: {problem}$"):
            kernels.attention(q, q, q, backend=backend)
    with pytest.raises(kernels.KernelUnavailableError, match=problem):
        softmax(q)


def test_no_gpu_and_no_interpreter_is_a_clear_error(monkeypatch):
    monkeypatch.setattr("kernels.triton_runtime.INTERPRETING", False)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    q = torch.randn(1, 1, 8, 16)
    for backend in kernels.TRITON_BACKENDS:
        with pytest.raises(kernels.KernelUnavailableError, match=r"TRITON_INTERPRET=1.*interpreter"):
            kernels.attention(q, q, q, backend=backend)
    with pytest.raises(kernels.KernelUnavailableError, match="CUDA GPU"):
        softmax(q)
