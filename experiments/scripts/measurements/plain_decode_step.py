"""A measurement recorded in experiments/measurements-2026-11-26.md, which links to this file.

Run from the repository root: python experiments/scripts/measurements/plain_decode_step.py
"""

import math
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, ".")
sys.argv = ["x"]
from experiments.scripts.bench_sampling import characters_per_second, default_model

m = default_model(None).eval()
torch.set_num_threads(2)
L = len(m.body)
C = 128
H = 4
D = 32
B = 128


def minimal(n):
    g = torch.Generator().manual_seed(0)
    K = torch.zeros(L, H, B, D)
    V = torch.zeros(L, H, B, D)
    tok = torch.zeros(1, dtype=torch.long)
    t0 = time.perf_counter()
    with torch.inference_mode():
        for pos in range(n):
            x = m.tok_emb.weight[tok] + m.pos_emb.weight[pos]  # (1, C)
            for l, blk in enumerate(m.body):
                a = blk.attn
                h = F.layer_norm(x, (C,), blk.ln_1.weight, blk.ln_1.bias)
                qkv = F.linear(h, a.qkv.weight, a.qkv.bias).view(3, H, 1, D)
                K[l, :, pos] = qkv[1, :, 0]
                V[l, :, pos] = qkv[2, :, 0]
                att = (qkv[0] @ K[l, :, : pos + 1].transpose(-1, -2)).mul_(1 / math.sqrt(D)).softmax(-1)
                y = (att @ V[l, :, : pos + 1]).view(1, C)
                x = x + F.linear(y, a.proj.weight, a.proj.bias)
                h = F.layer_norm(x, (C,), blk.ln_2.weight, blk.ln_2.bias)
                x = x + F.linear(
                    F.gelu(F.linear(h, blk.mlp.fc.weight, blk.mlp.fc.bias)), blk.mlp.proj.weight, blk.mlp.proj.bias
                )
            logits = F.linear(F.layer_norm(x, (C,), m.ln_f.weight, m.ln_f.bias), m.head.weight)
            tok = torch.multinomial((logits / 0.8).softmax(-1), 1, generator=g)[0]
    return n / (time.perf_counter() - t0)


minimal(50)
for r in range(3):
    print(
        "minimal",
        minimal(127),
        "module kv",
        characters_per_second(m, 127, True),
        "recompute",
        characters_per_second(m, 127, False),
    )
