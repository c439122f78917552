"""A measurement recorded in experiments/measurements-2026-11-26.md, which links to this file.

Run from the repository root: python experiments/scripts/measurements/bf16_step_profile.py
"""

import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch.profiler import ProfilerActivity, profile

from gpt.config import CONFIG_DIR, register_configs
from gpt.data import RandomWindows
from gpt.module import LanguageModelModule

register_configs()
with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
    cfg = compose("config", ["data.block_size=128", "data.batch_size=32"])
data = instantiate(cfg.data)
data.setup("fit")
m = LanguageModelModule(
    model=OmegaConf.to_container(cfg.model, resolve=True),
    optim=dict(cfg.optim),
    vocab=data.tokenizer.chars,
    max_steps=100,
).model
opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
batches = iter(RandomWindows(data.train_data, 128, 32, 0))


def step():
    x, y = next(batches)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, loss = m(x, y)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
    opt.step()
    opt.zero_grad()


for _ in range(10):
    step()
with profile(activities=[ProfilerActivity.CPU]) as p:
    for _ in range(20):
        step()
print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
