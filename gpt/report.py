"""The comparison report of any sweep or folder of runs: `python -m gpt.report DIR` (also `gpt-report`,
`make report DIR=...`). What it holds: gpt/reporting.py."""

from __future__ import annotations

import argparse
from pathlib import Path

from gpt.reporting import write_report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="a sweep dir (multirun/...), a run dir, or any folder of runs")
    args = parser.parse_args(argv)
    if not args.dir.is_dir():
        parser.exit(2, f"error: {args.dir}: no such folder\n")
    try:
        print(write_report(args.dir))
    except FileNotFoundError as exc:
        parser.exit(2, f"error: {exc}\n")


if __name__ == "__main__":
    main()
