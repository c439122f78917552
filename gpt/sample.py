"""Generate text from a checkpoint alone: `python -m gpt.sample ckpt=PATH prompt="..."` (also `gpt-sample`).

The checkpoint carries the model config and the vocabulary, so no corpus is needed. It runs on the GPU where
there is one (device=auto|cpu|cuda), as gpt.evaluate and gpt.attention do (gpt.api.load).
"""

from __future__ import annotations

import sys
import time

from omegaconf import DictConfig

from gpt.api import load_for_command
from gpt.entry import hydra_command
from gpt.errors import counted
from gpt.sampling import for_terminal


@hydra_command("sample")
def main(cfg: DictConfig) -> None:
    model = load_for_command(cfg)
    texts = model.stream(cfg.prompt, cfg.max_new_tokens, cfg.temperature, cfg.top_k, cfg.seed, cfg.kv_cache)
    terminal = sys.stdout.isatty()
    try:  # each character as it comes: Ctrl-C keeps what was written so far on the screen
        print(for_terminal(next(texts), terminal), end="", flush=True)  # the prompt
        start, sampled = time.perf_counter(), 0
        for text in texts:
            print(for_terminal(text, terminal), end="", flush=True)
            sampled += 1
    except KeyboardInterrupt:
        print("\n[stopped by Ctrl-C; the text above is what was sampled]", file=sys.stderr)
        sys.exit(130)
    seconds = time.perf_counter() - start
    how = "with a KV cache" if model.model.samples_with_cache(cfg.kv_cache) else "recomputing the context"
    noun, rate = model.tokenizer.noun, sampled / seconds
    print(f"\n[{counted(sampled, noun)} in {seconds:.2f} s: {rate:,.0f} {noun}s/s, {how}]", file=sys.stderr)


if __name__ == "__main__":
    main()
