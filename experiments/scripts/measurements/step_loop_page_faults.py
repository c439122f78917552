"""A measurement recorded in experiments/measurements-2026-11-26.md, which links to this file.

Run from the repository root: python experiments/scripts/measurements/step_loop_page_faults.py
"""

import resource
import sys
import time

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from gpt.config import CONFIG_DIR, register_configs
from gpt.data import RandomWindows
from gpt.optim import build_optimizer

register_configs()
with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
    cfg = compose("config", ["data.block_size=128", "data.batch_size=32", "model.dropout=0.0"])
torch.manual_seed(0)
data = instantiate(cfg.data)
data.setup("fit")
model = instantiate(cfg.model, vocab_size=data.tokenizer.vocab_size)
optimizer = build_optimizer(model, dict(cfg.optim), fused=True)
batches = iter(RandomWindows(data.train_data, 128, 32, 0))


def step():
    x, y = next(batches)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, loss = model(x, y)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    loss.item()


for _ in range(int(sys.argv[1])):
    faults, start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, time.perf_counter()
    for _ in range(10):
        step()
    rate = 10 * 128 * 32 / (time.perf_counter() - start)
    print(f"{rate / 1000:.1f}k/{(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) // 10}", end=" ")
