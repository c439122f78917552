"""A measurement recorded in experiments/measurements-2026-11-26.md, which links to this file.

Run from the repository root: python experiments/scripts/measurements/compiled_decode_step.py
"""

import math
import sys
import time

import torch
import torch._inductor.config
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from gpt.config import CONFIG_DIR, register_configs

register_configs()
with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
    model = instantiate(compose("config").model, vocab_size=111).eval()  # the default model, fresh weights
blocks, C, T = list(model.body), model.tok_emb.weight.size(1), model.block_size
H = blocks[0].attn.n_head
keys, values = torch.zeros(2, len(blocks), H, T, C // H)  # static buffers: one shape for every position
slots = torch.arange(T)


def step(token, position):  # one position through phase 5's GPT, its keys and values written into the buffers
    x = model.tok_emb.weight[token] + model.pos_emb.weight[position]
    for i, b in enumerate(blocks):
        q, k, v = F.linear(F.layer_norm(x, (C,), b.ln_1.weight, b.ln_1.bias), b.attn.qkv.weight, b.attn.qkv.bias).view(
            3, H, 1, C // H
        )
        keys[i].index_copy_(1, position, k)
        values[i].index_copy_(1, position, v)
        scores = (q @ keys[i].transpose(-1, -2) / math.sqrt(C // H)).masked_fill(slots > position, float("-inf"))
        x = x + F.linear((scores.softmax(-1) @ values[i]).reshape(1, C), b.attn.proj.weight, b.attn.proj.bias)
        h = F.gelu(F.linear(F.layer_norm(x, (C,), b.ln_2.weight, b.ln_2.bias), b.mlp.fc.weight, b.mlp.fc.bias))
        x = x + F.linear(h, b.mlp.proj.weight, b.mlp.proj.bias)
    return F.linear(F.layer_norm(x, (C,), model.ln_f.weight, model.ln_f.bias), model.head.weight)


def chars_per_second(next_logits) -> float:  # one full block from a one-character prompt, sampled as gpt.sample
    generator, token = torch.Generator().manual_seed(0), torch.zeros(1, dtype=torch.long)
    start = time.perf_counter()
    for t in range(T - 1):
        probs = (next_logits(token, torch.tensor([t])) / 0.8).softmax(-1)
        token = torch.multinomial(probs, 1, generator=generator).view(1)
    return (T - 1) / (time.perf_counter() - start)


def stream(kv_cache: bool) -> float:
    generator, start = torch.Generator().manual_seed(0), time.perf_counter()
    for _ in model.stream(torch.zeros(1, 1, dtype=torch.long), T - 1, 0.8, generator=generator, kv_cache=kv_cache):
        pass
    return (T - 1) / (time.perf_counter() - start)


torch._inductor.config.cpp_wrapper = "cpp" in sys.argv  # the compiled graph called from C++, not Python
with torch.inference_mode():
    start = time.perf_counter()
    compiled = torch.compile(step, fullgraph=True, dynamic=False)
    chars_per_second(compiled)
    print(f"compiled in {time.perf_counter() - start:.1f} s")
    for _ in range(3):  # alternating
        print(
            f"recompute {stream(False):.0f}, KV cache {stream(True):.0f}, the step above eager "
            f"{chars_per_second(step):.0f}, compiled {chars_per_second(compiled):.0f} chars/s"
        )
