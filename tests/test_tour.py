"""experiments/tour.ipynb: committed without outputs (always checked), and run top to bottom in a real Jupyter
kernel on the real corpus (`make tour`, marker `tour`: about a minute on 2 cores)."""

import json
from pathlib import Path

import pytest
from conftest import REPO

TOUR = REPO / "experiments" / "tour.ipynb"


def test_the_committed_tour_carries_no_outputs():
    """So that its diffs show only what was written: outputs are made by running it."""
    notebook = json.loads(TOUR.read_text())
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert code and all(cell["outputs"] == [] and cell["execution_count"] is None for cell in code)


@pytest.mark.tour
def test_the_tour_runs_top_to_bottom_in_a_jupyter_kernel(tmp_path, war_and_peace, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(TOUR, as_version=4)
    monkeypatch.setenv("GPT_DATA", str(war_and_peace))  # the kernel inherits it; no download
    NotebookClient(notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": tmp_path}}).execute()
    summaries = sorted(Path(tmp_path).rglob("summary.json"), key=lambda path: path.stat().st_mtime)
    runs = [(s["phase"], s["kernel"]) for s in map(json.loads, map(Path.read_text, summaries))]
    assert runs == [  # every phase once, then the tiny GPT through two kernels
        ("bigram", "eager"), ("attention", "eager"), ("multihead", "eager"), ("block", "eager"), ("gpt", "eager"),
        ("modern", "eager"), ("gpt", "eager"), ("gpt", "triton"),
    ]  # fmt: skip
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    figures = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(figures) == 3  # the phases' curves, an attention map, eager against triton
    assert len(list(Path(tmp_path, "multirun").glob("*/report.md"))) == 1  # the kernels' sweep, with its report
    progress = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert len(progress) == len(runs)  # Lightning's (rich) progress bar, rendered as a Jupyter widget
