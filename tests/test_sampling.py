"""Sampling with a KV cache (gpt/models/kv_cache.py): within the block size it samples exactly what recomputing
the context samples; past it, exactly what its own policy (a fresh window on the newest half block whenever the
window is full) computed in float64 from scratch samples."""

import pytest
import torch
from test_models import ATTENTION_PHASES, PHASES, T, V, build, extend

from gpt.inspection import attention_layers
from gpt.models.kv_cache import CachedContext, KVCache, RecomputedContext
from kernels.eager import eager_attention


def float64_model(phase: str, backend: str = "eager"):
    torch.manual_seed(0)
    return build(phase, backend).double().eval()


def sample(logits: torch.Tensor, generator: torch.Generator, temperature: float = 0.8) -> torch.Tensor:
    """The sampler's draw (LanguageModel.stream), written again for the references below."""
    return torch.multinomial((logits.float() / temperature).softmax(dim=-1), num_samples=1, generator=generator)


# the prompt goes through the model's backend, each new token through the textbook math (eager_attention)
@pytest.mark.parametrize("phase, backend", [(phase, "eager") for phase in ATTENTION_PHASES] + [("gpt", "sdpa")])
def test_within_the_block_the_cache_samples_what_recomputing_samples(phase, backend):
    model = float64_model(phase, backend)
    prompt = torch.randint(V, (2, 3))
    runs = [
        extend(model, prompt, T - 3, temperature=0.8, top_k=10, generator=torch.Generator().manual_seed(1),
               kv_cache=kv_cache)
        for kv_cache in (True, False)
    ]  # fmt: skip
    assert runs[0].shape == (2, T) and torch.equal(runs[0], runs[1])


@pytest.mark.parametrize("phase", PHASES)
def test_cached_logits_match_a_forward_pass_over_the_whole_context(phase):
    """Position by position, the cached model's next-token logits are the full forward pass's, to float64
    rounding (bigram: no cache, the same logits)."""
    model = float64_model(phase)
    idx = torch.randint(V, (2, T))
    context = model.sampling_context(idx[:, :4])
    for t in range(4, T + 1):
        torch.testing.assert_close(context.next_logits(), model.logits(idx[:, :t])[:, -1], rtol=1e-12, atol=1e-12)
        if t < T:
            context.append(idx[:, t : t + 1])


@pytest.mark.parametrize("phase", PHASES)
def test_every_model_with_attention_samples_through_the_cache_and_only_those(phase):
    """What `gpt.sample` reports ("with a KV cache" or "recomputing the context") is what the sampler does."""
    model = float64_model(phase)
    idx = torch.randint(V, (1, 4))
    assert model.caches_keys_values == bool(attention_layers(model))
    assert type(model.sampling_context(idx, kv_cache=True)) is (
        CachedContext if attention_layers(model) else RecomputedContext
    )
    assert type(model.sampling_context(idx, kv_cache=False)) is RecomputedContext


def half_block_reference(model, prompt: torch.Tensor, new_tokens: int, generator: torch.Generator) -> torch.Tensor:
    """The policy past the block, from scratch: the context is the window tokens[start:], which starts again at the
    newest half block whenever it would hold more than a block; every step is a full forward pass over it."""
    tokens = prompt
    start = max(0, tokens.size(1) - T)
    for _ in range(new_tokens):
        if tokens.size(1) - start > T:
            start = tokens.size(1) - T // 2
        next_id = sample(model.logits(tokens[:, start:])[:, -1], generator)
        tokens = torch.cat([tokens, next_id], dim=1)
    return tokens


@pytest.mark.parametrize("phase", ATTENTION_PHASES)
@pytest.mark.parametrize("prompt_length", [1, T + 5])
def test_past_the_block_the_cache_follows_its_half_block_policy(phase, prompt_length):
    model = float64_model(phase)
    prompt = torch.randint(V, (2, prompt_length))
    new_tokens = 3 * T + 7  # several fresh windows, the last one part-filled
    with torch.inference_mode():
        want = half_block_reference(model, prompt, new_tokens, torch.Generator().manual_seed(2))
    got = extend(model, prompt, new_tokens, temperature=0.8, generator=torch.Generator().manual_seed(2))
    assert torch.equal(got, want)


@pytest.mark.parametrize("phase", ATTENTION_PHASES)
def test_a_full_window_hands_its_newest_half_block_on(phase):
    """The token after a full block is predicted from the newest half block alone, which is not what the last
    whole block predicts: the policy is a choice, and this is where it shows."""
    model = float64_model(phase)
    idx = torch.randint(V, (2, T + 1))
    context = model.sampling_context(idx[:, :T])
    context.next_logits()
    context.append(idx[:, T:])
    got = context.next_logits()
    torch.testing.assert_close(got, model.logits(idx[:, T + 1 - T // 2 :])[:, -1], rtol=1e-12, atol=1e-12)
    assert (got - model.logits(idx[:, 1:])[:, -1]).abs().max() > 1e-6


def test_the_cached_attention_sees_every_earlier_key_and_no_later_one():
    """Queries at the last t of S positions (bottom-right causal mask) = those rows of the full attention."""
    torch.manual_seed(0)
    q, k, v = torch.randn(3, 2, 4, 9, 8, dtype=torch.float64)
    full = eager_attention(q, k, v)
    for t in (1, 3, 9):
        torch.testing.assert_close(eager_attention(q[:, :, -t:], k, v), full[:, :, -t:], rtol=1e-12, atol=1e-12)


def test_the_cache_refuses_more_positions_than_its_block():
    cache = KVCache(block_size=4)
    layer = torch.nn.Identity()
    k = torch.zeros(1, 1, 3, 2)
    cache.extend(layer, k, k)
    cache.advance(3)
    with pytest.raises(ValueError, match="5 positions are more than the cache's block_size=4"):
        cache.extend(layer, torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2))
