"""A measurement recorded in experiments/measurements-2026-11-26.md, which links to this file.

Run from the repository root: python experiments/scripts/measurements/phase7_step_time.py
"""

import time

import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from torch.profiler import ProfilerActivity, profile

from gpt.config import CONFIG_DIR, register_configs
from gpt.module import LanguageModelModule
from gpt.optim import build_optimizer

register_configs()
for phase in ("gpt", "modern"):
    with initialize_config_dir(CONFIG_DIR, version_base="1.3"):
        cfg = compose("config", [f"model={phase}"])
    torch.manual_seed(0)
    optim = OmegaConf.to_container(cfg.optim, resolve=True)
    vocab = "".join(chr(32 + i) for i in range(111))
    m = LanguageModelModule(OmegaConf.to_container(cfg.model, resolve=True), optim, vocab, max_steps=100).model
    opt = build_optimizer(m, optim)
    x, y = torch.randint(111, (64, 128)), torch.randint(111, (64, 128))

    def step():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            _, loss = m(x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        opt.zero_grad()

    for _ in range(5):
        step()
    start = time.perf_counter()
    for _ in range(15):
        step()
    print(phase, (time.perf_counter() - start) / 15 * 1000, "ms/step")
    with profile(activities=[ProfilerActivity.CPU]) as p:
        for _ in range(5):
            step()
    print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=18))
