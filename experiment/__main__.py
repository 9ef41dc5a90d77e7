"""The front door: ``python -m experiment <verb> <task> [options]``.

    python -m experiment --help                       # verbs and tasks
    python -m experiment compare sorting --help       # every option of a command, with its default
    python -m experiment compare sorting --quick      # a smoke test of the whole pipeline
    python -m experiment train sorting --data outputs/sorting/data/....json \\
        --model-config experiment/configs/memoria-gpt2-sort-small.json --output-dir outputs/my-run

Options may also come from a JSON file (``--settings FILE.json``, keys as the option names with underscores);
options on the command line override it. Only the named task's module is imported, so ``--help`` is fast.
"""

import argparse
import sys
from typing import Any, List, Optional

from .recipes import TASKS, VERBS, load_task
from .settings import add_arguments, flag, settings_from, shown


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the description's line breaks (its examples)."""


def _overview() -> str:
    verbs = "\n".join(f"  {verb:10s} {text}" for verb, text in VERBS.items())
    tasks = "\n".join(f"  {name:18s} {summary}" for name, (_, summary) in TASKS.items())
    return f"verbs:\n{verbs}\n\ntasks:\n{tasks}\n\n{__doc__}"


def main(argv: Optional[List[str]] = None) -> Any:
    """Parses ``<verb> <task> [options]`` and runs the task's verb; returns what it returned."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="python -m experiment",
        usage="%(prog)s <verb> <task> [options]",
        description=_overview(),
        formatter_class=_Formatter,
    )
    parser.add_argument("verb", choices=list(VERBS), help=argparse.SUPPRESS)
    parser.add_argument("task", choices=list(TASKS), help=argparse.SUPPRESS)
    if not argv or argv[0] in ("-h", "--help"):
        parser.print_help()
        return parser.exit(0)
    if len(argv) < 2 or argv[1].startswith("-"):
        parser.error(f"name a verb and a task: {', '.join(VERBS)}; {', '.join(TASKS)}")
    head = parser.parse_args(argv[:2])
    task = load_task(head.task)
    if head.verb not in task.verbs:
        parser.error(f"{head.task} has no {head.verb!r}; its verbs: {', '.join(task.verbs)}")
    settings_class, function = task.verbs[head.verb]
    command = argparse.ArgumentParser(
        prog=f"python -m experiment {head.verb} {head.task}",
        usage="%(prog)s [options]",
        description=f"{VERBS[head.verb]}: {task.summary}.\n\n{sys.modules[settings_class.__module__].__doc__ or ''}",
        formatter_class=_Formatter,
    )
    add_arguments(command, settings_class)
    if head.verb == "compare":
        quick = ", ".join(f"{flag(name)} {shown(value)}" for name, value in task.quick.items())
        command.epilog = f"models: {', '.join(task.models)}\n--quick sets: {quick}"
    try:
        settings = settings_from(settings_class, command.parse_args(argv[2:]))
    except ValueError as error:
        command.error(str(error))
    if head.verb == "compare":
        from .recipes.compare import compare

        return compare(task, settings)
    return function(settings)


if __name__ == "__main__":
    main()
