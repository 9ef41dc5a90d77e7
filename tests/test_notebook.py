"""notebooks/tutorial.ipynb runs top to bottom, and its tutorial part prints what README.md's tutorial states."""

import os
import re
from pathlib import Path
from typing import List, Tuple

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")
pytest.importorskip("matplotlib")

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "tutorial.ipynb"


def readme_tutorial() -> Tuple[List[str], List[Tuple[str, str]]]:
    """README.md's "## Tutorial": every code line in order (``>>> `` removed, comments and blank lines dropped),
    and every (expression, printed output) pair of its ``>>>`` examples."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    tutorial = text.split("\n## Tutorial\n", 1)[1].split("\n## ", 1)[0]
    lines, examples = [], []
    for block in re.findall(r"```python\n(.*?)```", tutorial, flags=re.S):
        block_lines = block.rstrip("\n").split("\n")
        for index, line in enumerate(block_lines):
            if line.startswith(">>> "):
                output = []
                for following in block_lines[index + 1 :]:
                    if following.startswith(">>> "):
                        break
                    output.append(following)
                if output:
                    examples.append((line[4:], "\n".join(output)))
                line = line[4:]
            elif block_lines[0].startswith(">>> "):
                continue  # an output line
            if line.strip() and not line.lstrip().startswith("#"):
                lines.append(line)
    return lines, examples


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """The notebook executed in a temporary directory (it writes outputs/ there), with this checkout importable."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    workdir = tmp_path_factory.mktemp("notebook")
    environment = os.environ.get("PYTHONPATH", "")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), environment]))
    try:
        client = nbclient.NotebookClient(
            notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
        )
        client.execute()  # raises CellExecutionError naming the cell if any cell fails
    finally:
        os.environ["PYTHONPATH"] = environment
        if not environment:
            del os.environ["PYTHONPATH"]
    return notebook, workdir


def code_cells(notebook, part: str = "") -> list:
    """Code cells, or only those under the markdown heading that starts with ``part``."""
    cells, inside = [], not part
    for cell in notebook.cells:
        if cell.cell_type == "markdown" and cell.source.startswith("## "):
            inside = not part or cell.source.startswith(part)
        elif cell.cell_type == "code" and inside:
            cells.append(cell)
    return cells


def printed(cell) -> str:
    return "".join(o.text for o in cell.outputs if o.output_type == "stream" and o.name == "stdout")


def test_tutorial_part_runs_the_readme_code_in_order(executed):
    notebook, _ = executed
    readme_lines, _ = readme_tutorial()
    notebook_lines = [
        line
        for cell in code_cells(notebook, "## 1.")
        for line in cell.source.split("\n")
        if line.strip() and not line.lstrip().startswith("#")
    ]
    assert len(readme_lines) > 30
    assert notebook_lines == readme_lines


def test_tutorial_outputs_equal_the_readme(executed):
    notebook, _ = executed
    _, examples = readme_tutorial()
    cells = iter(code_cells(notebook, "## 1."))
    assert len(examples) >= 15
    for expression, expected in examples:
        cell = next(c for c in cells if c.source.split("\n")[-1] == expression)
        (result,) = [o for o in cell.outputs if o.output_type == "execute_result"]
        got = result.data["text/plain"]
        assert [line.rstrip() for line in got.split("\n")] == [
            line.rstrip() for line in expected.split("\n")
        ], f"{expression}: the notebook printed\n{got}\nREADME.md states\n{expected}"


def test_memory_beats_the_same_model_with_memory_erased(executed):
    notebook, _ = executed
    text = "".join(printed(cell) for cell in code_cells(notebook, "## 2."))
    found = re.search(r"accuracy with memory ([\d.]+), memory erased ([\d.]+), chance ([\d.]+)", text)
    with_memory, erased, chance = map(float, found.groups())
    assert chance == pytest.approx(1 / 8, abs=1e-3)
    assert with_memory > 0.9  # the answer is only in memory: the trained model reads it there
    assert erased < 0.3  # without memory, near chance
    assert "row 1 reads 0.0 | weights finite: True | gradient finite: True" in text


def test_analysis_part_draws_figures_and_writes_the_animation(executed):
    notebook, workdir = executed
    cells = code_cells(notebook, "## 3.")
    images = [o for c in cells for o in c.outputs if "data" in o and "image/png" in o.data]
    assert len(images) == 3  # serial position, lag-CRP, one engram frame
    assert any("image/gif" in o.get("data", {}) for c in cells for o in c.outputs)
    assert (workdir / "outputs" / "notebook" / "engrams.gif").stat().st_size > 0
    effects = "".join(printed(cell) for cell in cells)
    for name in ("primacy", "recency", "contiguity"):
        assert re.search(rf"^{name} +[+-][\d.]+ \[[+-][\d.]+, [+-][\d.]+\] +shuffled", effects, flags=re.M)
