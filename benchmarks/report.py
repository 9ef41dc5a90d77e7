"""Print the Markdown tables of saved results: ``python -m benchmarks.report RESULTS.json [...]``.

Takes the JSON files written by :mod:`benchmarks.run` and :mod:`benchmarks.sweep` (this is how BENCHMARKS.md's
tables are made), and the machine each was measured on.
"""

import json
import sys
from pathlib import Path
from typing import List

from benchmarks import run, sweep


def describe(path: Path) -> str:
    """The tables of one results file, headed by its machine and options."""
    report = json.loads(path.read_text())
    machine = report["machine"]
    lines = [f"### {path.name}", "", "machine: " + ", ".join(f"{key} {value}" for key, value in machine.items())]
    if "source" in report:
        lines.append("source: " + ", ".join(f"{key} {value}" for key, value in report["source"].items()))
    lines.append("")
    if "points" in report:
        lines.append(sweep.format_table(report))
        return "\n".join(lines)
    lines.append(run.format_table(report["results"], report["comparisons"]))
    for table in (run.format_phases(report["results"]), run.format_profile(report["results"])):
        if table:
            lines += ["", table]
    return "\n".join(lines)


def main(argv: List[str]) -> None:
    """Print every file's tables."""
    print("\n\n".join(describe(Path(name)) for name in argv))


if __name__ == "__main__":
    main(sys.argv[1:])
