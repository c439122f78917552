"""The comparison report of any sweep or folder of runs: `python -m gpt.report DIR` (also `gpt-report`,
`make report DIR=...`). What it holds: gpt/reporting.py."""

from __future__ import annotations

from pathlib import Path

from gpt.errors import OneLineArgumentParser, UserError
from gpt.reporting import write_report
from gpt.run_dirs import check_folder


def main(argv: list[str] | None = None) -> None:
    parser = OneLineArgumentParser(prog="python -m gpt.report", description=__doc__.splitlines()[0])
    parser.add_argument("dir", type=Path, help="a sweep dir (multirun/...), a run dir, or any folder of runs")
    args = parser.parse_args(argv)
    try:
        check_folder(args.dir)
        print(write_report(args.dir))
    except (UserError, FileNotFoundError) as exc:
        parser.exit(2, f"error: {exc}\n")


if __name__ == "__main__":
    main()
