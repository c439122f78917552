"""Two DDP ranks on one corpus: does each hold its own copy of the tokens, or do both read the one page-cached file?

    python experiments/scripts/measurements/ddp_page_cache.py CORPUS [STEPS]

Trains `trainer=ddp` (two CPU processes) on CORPUS (data=text) for STEPS steps of a small model and, while it
trains, reads every rank's /proc/<pid>/smaps: the token cache's mapping (which file, its resident, proportional
and shared pages) and the rank's private (anonymous) memory. A page mapped by both ranks counts half in each one's
Pss: one copy. Linux only. Printed, not written: the figures go into experiments/corpus_size/ by hand.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

corpus = Path(sys.argv[1]).resolve()
steps = int(sys.argv[2]) if len(sys.argv) > 2 else 200
command = [sys.executable, "-m", "gpt.train", "trainer=ddp", "data=text", f"data.path={corpus}",
           f"trainer.max_steps={steps}", "trainer.val_check_interval=100", "model.n_layer=1", "model.n_embd=32",
           "model.n_head=2", "logger=none", "trainer.enable_progress_bar=false", "sample.max_new_tokens=1",
           "inspect.full_val=false", "inspect.attention_maps=false",
           "hydra.run.dir=outputs/ddp_page_cache"]  # fmt: skip
FIELDS = ("Rss", "Pss", "Shared_Clean", "Private_Clean", "Private_Dirty")


def token_mappings(pid: int) -> list[dict]:
    """The smaps entries of pid's mappings of a token cache file (<sha256>-chars.bin), and its RssAnon."""
    try:
        smaps = Path(f"/proc/{pid}/smaps").read_text()
        anon = re.search(r"RssAnon:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    except OSError:
        return []
    found = []
    for block in re.split(r"\n(?=[0-9a-f]+-[0-9a-f]+ )", smaps):
        header = block.split("\n", 1)[0]
        if header.endswith("-chars.bin"):
            entry = {"file": header.split()[-1], "inode": header.split()[4], "perms": header.split()[1]}
            entry |= {f: int(re.search(rf"^{f}:\s+(\d+) kB", block, re.M).group(1)) for f in FIELDS}
            entry["RssAnon"] = int(anon.group(1)) if anon else 0
            found.append(entry)
    return found


process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
last: dict[int, list[dict]] = {}
while process.poll() is None:
    pids = subprocess.run(["pgrep", "-f", f"data.path={corpus}"], capture_output=True, text=True).stdout.split()
    readings = {int(pid): token_mappings(int(pid)) for pid in pids if int(pid) != os.getpid()}
    readings = {pid: entries for pid, entries in readings.items() if entries}
    if len(readings) >= 2:
        last = readings
    time.sleep(0.5)
if process.returncode:
    sys.exit(process.stderr.read()[-2000:])
print(f"corpus {corpus} ({corpus.stat().st_size / 2**30:.2f} GiB), trainer=ddp, {steps} steps; last reading:")
for pid, entries in sorted(last.items()):
    for entry in entries:
        figures = ", ".join(f"{field} {entry[field] / 1024:.1f} MiB" for field in (*FIELDS, "RssAnon"))
        print(f"  pid {pid}: {entry['perms']} inode {entry['inode']} {Path(entry['file']).name}: {figures}")
