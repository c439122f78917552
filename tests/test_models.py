"""Every phase: shapes, parameter counts from the architecture's formula, causality, initial loss, sampling;
and the attention backends against a float64 reference computed position by position."""

import math

import pytest
import torch

import gpt.config
import kernels
from gpt.models import GPT, BigramLM, BlockLM, MultiHeadAttentionLM, SingleHeadAttentionLM
from kernels.triton_runtime import INTERPRETING

V, T, C, H, L = 37, 24, 32, 4, 3


def build(phase: str, backend: str = "eager", dropout: float = 0.0):
    common = dict(vocab_size=V, block_size=T)
    attn = dict(n_embd=C, dropout=dropout, backend=backend)
    return {
        "bigram": lambda: BigramLM(**common),
        "attention": lambda: SingleHeadAttentionLM(**common, **attn),
        "multihead": lambda: MultiHeadAttentionLM(**common, **attn, n_head=H),
        "block": lambda: BlockLM(**common, **attn, n_head=H),
        "gpt": lambda: GPT(**common, **attn, n_head=H, n_layer=L),
        "modern": lambda: GPT(**common, **attn, n_head=H, n_layer=L, **PHASE_7),
    }[phase]()


def extend(model, prompt: torch.Tensor, new_tokens: int, **sampling) -> torch.Tensor:
    """The prompt followed by the tokens LanguageModel.stream draws after it."""
    return torch.cat([prompt, *model.stream(prompt, new_tokens, **sampling)], dim=1)


# phase 7's switches, all on but the zero-initialised projections: with those, attention would not reach the
# logits at initialisation and the tests below could not see it (tests/test_modern.py tests the zero init)
PHASE_7 = dict(pos="rope", qk_norm=True, mlp="relu2", zero_init_proj=False, tie_embeddings=False, logit_softcap=15.0,
               value_embeddings=True)  # fmt: skip


PHASES = list(gpt.config.PHASES)
ATTENTION_PHASES = PHASES[1:]


def expected_params(phase: str) -> int:
    embeddings = V * C + T * C
    attention = (C * 3 * C + 3 * C) + (C * C + C)  # qkv and output projection, with biases
    block = 2 * (2 * C) + attention + (C * 4 * C + 4 * C) + (4 * C * C + C)  # two LayerNorms, attention, MLP
    head = V * C
    return {
        "bigram": V * V,
        "attention": embeddings + attention + head,
        "multihead": embeddings + attention + head,  # heads split the same channels
        "block": embeddings + block + head,
        "gpt": embeddings + L * block + 2 * C,  # final LayerNorm; the head is tied to the token embedding
        # no position table (rotary), an untied head, a value embedding table and 2 mixing weights per layer
        "modern": V * C + L * (block + V * C + 2) + 2 * C + head,
    }[phase]


@pytest.mark.parametrize("phase", PHASES)
def test_shapes_and_parameter_count(phase):
    model = build(phase)
    idx = torch.randint(V, (2, T))
    logits, loss = model(idx, idx)
    assert logits.shape == (2, T, V) and loss.shape == ()
    assert model.num_params() == expected_params(phase)


@pytest.mark.parametrize("backend", ["eager", "sdpa"])
@pytest.mark.parametrize("phase", PHASES)
def test_future_tokens_never_change_the_past(phase, backend):
    torch.manual_seed(0)
    model = build(phase, backend).double().eval()
    idx = torch.randint(V, (2, T))
    logits = model(idx)[0]
    for t in (0, T // 2, T - 2):
        changed = idx.clone()
        changed[:, t + 1 :] = torch.randint(V, (2, T - t - 1))
        assert not torch.equal(changed, idx)
        assert torch.equal(model(changed)[0][:, : t + 1], logits[:, : t + 1]), f"position <= {t} saw the future"


@pytest.mark.parametrize("phase", PHASES)
def test_initial_loss_is_near_uniform(phase):
    torch.manual_seed(0)
    model = build(phase)
    idx, targets = torch.randint(V, (8, T)), torch.randint(V, (8, T))
    _, loss = model(idx, targets)
    assert abs(loss.item() - math.log(V)) < 0.1, f"{loss.item():.3f} vs ln({V}) = {math.log(V):.3f}"


def test_gpt_residual_projections_are_scaled_by_depth():
    torch.manual_seed(0)
    model = GPT(vocab_size=V, block_size=T, n_layer=8, n_embd=128, n_head=4, dropout=0.0, backend="eager")
    expected = 0.02 / math.sqrt(2 * 8)
    for name, param in model.named_parameters():
        if name.endswith("proj.weight"):
            assert param.std().item() == pytest.approx(expected, rel=0.05), name
        elif name.endswith("fc.weight") or name.endswith("qkv.weight"):
            assert param.std().item() == pytest.approx(0.02, rel=0.05), name
        elif name.endswith(".bias") and "ln_" not in name:  # the linear layers' biases start at zero
            assert not param.any(), name
    assert model.head.weight is model.tok_emb.weight


def naive_attention(q, k, v):
    """Causal attention one query at a time, in float64 (independent of both backends' code paths)."""
    out = torch.empty_like(q)
    for t in range(q.size(2)):
        scores = (q[:, :, t : t + 1] @ k[:, :, : t + 1].transpose(-1, -2)) / math.sqrt(q.size(-1))
        out[:, :, t] = (torch.softmax(scores, dim=-1) @ v[:, :, : t + 1]).squeeze(2)
    return out


@pytest.mark.parametrize("backend", ["eager", "sdpa"])
@pytest.mark.parametrize("shape", [(1, 1, 1, 16), (2, 3, 17, 16), (2, 2, 64, 32)])
def test_backends_match_a_float64_reference(backend, shape):
    q, k, v = (torch.randn(shape, dtype=torch.float64, requires_grad=True) for _ in range(3))
    out = kernels.attention(q, k, v, backend=backend)
    ref = naive_attention(q, k, v)
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-10)
    grad_out = torch.randn_like(out)
    grads = torch.autograd.grad(out, (q, k, v), grad_out)
    ref_grads = torch.autograd.grad(ref, (q, k, v), grad_out)
    for got, want in zip(grads, ref_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10)


# every attention phase through sdpa; phase 7 (rotary and QK-norm act before kernels.attention) through the
# Triton backends too
BACKEND_CASES = [(phase, "sdpa") for phase in ATTENTION_PHASES] + [("modern", b) for b in kernels.TRITON_BACKENDS]


@pytest.mark.parametrize("phase, backend", BACKEND_CASES)
def test_backends_agree_with_eager_in_forward_and_gradients(phase, backend):
    device = "cuda" if backend in kernels.TRITON_BACKENDS and not INTERPRETING else "cpu"
    torch.manual_seed(0)
    eager = build(phase, "eager").to(device)
    other = build(phase, backend).to(device)
    other.load_state_dict(eager.state_dict())
    idx, targets = torch.randint(V, (4, T), device=device), torch.randint(V, (4, T), device=device)
    (logits_e, loss_e), (logits_o, loss_o) = eager(idx, targets), other(idx, targets)
    torch.testing.assert_close(logits_e, logits_o, rtol=1e-5, atol=1e-5)
    loss_e.backward()
    loss_o.backward()
    for (name, p_e), p_o in zip(eager.named_parameters(), other.parameters(), strict=True):
        torch.testing.assert_close(p_e.grad, p_o.grad, rtol=1e-4, atol=1e-6, msg=name)


def test_unknown_backend_is_refused():
    q = torch.randn(1, 1, 4, 8)
    with pytest.raises(
        kernels.KernelUnavailableError, match="kernel=flash: no such attention backend; allowed: eager, sdpa"
    ):
        kernels.attention(q, q, q, backend="flash")


@pytest.mark.parametrize("phase", PHASES)
def test_generation_extends_the_prompt_and_greedy_matches_argmax(phase):
    torch.manual_seed(0)
    model = build(phase).eval()
    prompt = torch.randint(V, (1, 5))
    out = extend(model, prompt, T + 5, temperature=0.7)
    assert out.shape == (1, 5 + T + 5) and torch.equal(out[:, :5], prompt)
    # top_k=1 must be greedy decoding; check against argmax steps computed here
    greedy = extend(model, prompt, 6, top_k=1)
    idx = prompt
    for _ in range(6):
        next_id = model(idx[:, -T:])[0][:, -1].argmax(-1, keepdim=True)
        idx = torch.cat([idx, next_id], dim=1)
    assert torch.equal(greedy, idx)


def test_dropout_is_active_only_in_training():
    torch.manual_seed(0)
    model = build("gpt", dropout=0.5)
    idx = torch.randint(V, (2, T))
    model.train()
    assert not torch.equal(model(idx)[0], model(idx)[0])
    model.eval()
    assert torch.equal(model(idx)[0], model(idx)[0])


def reference_gpt_logits(model: GPT, idx: torch.Tensor) -> torch.Tensor:
    """Phase 5's logits written out from the definition in float64, reading only the model's weights: token +
    position embeddings; per block, x + proj(causal multi-head attention(LN1(x))), then x + MLP(LN2(x)) with a
    GELU; the final LayerNorm; the head tied to the token embedding."""
    F = torch.nn.functional
    B, T_ = idx.shape
    x = model.tok_emb.weight[idx] + model.pos_emb.weight[:T_]
    future = torch.ones(T_, T_, dtype=torch.bool).triu(1)
    for block in model.body:
        h = F.layer_norm(x, (C,), block.ln_1.weight, block.ln_1.bias)
        q, k, v = (h @ block.attn.qkv.weight.T + block.attn.qkv.bias).split(C, dim=-1)
        q, k, v = (t.view(B, T_, H, C // H).transpose(1, 2) for t in (q, k, v))
        scores = (q @ k.transpose(-1, -2) / math.sqrt(C // H)).masked_fill(future, -math.inf)
        heads = (scores.softmax(-1) @ v).transpose(1, 2).reshape(B, T_, C)
        x = x + heads @ block.attn.proj.weight.T + block.attn.proj.bias
        h = F.layer_norm(x, (C,), block.ln_2.weight, block.ln_2.bias)
        x = x + F.gelu(h @ block.mlp.fc.weight.T + block.mlp.fc.bias) @ block.mlp.proj.weight.T + block.mlp.proj.bias
    return F.layer_norm(x, (C,), model.ln_f.weight, model.ln_f.bias) @ model.tok_emb.weight.T


def test_the_gpt_computes_its_definition():
    """Against reference_gpt_logits: a residual, LayerNorm or tie that went missing would show here (the backends
    are compared with each other elsewhere, which a change to the shared model would not disturb)."""
    torch.manual_seed(0)
    model = build("gpt").double().eval()
    for p in model.parameters():  # off the initialisation (zero biases, unit LayerNorm gains), so each term counts
        torch.nn.init.normal_(p, std=0.3)
    idx = torch.randint(V, (2, T))
    torch.testing.assert_close(model(idx)[0], reference_gpt_logits(model, idx), rtol=1e-10, atol=1e-10)
