"""Time our Memoria and the reference (memoria-pytorch 1.0.0) on the paper's settings, side by side.

``python -m benchmarks.run [--settings lm,sorting,enwik8,classification] [--steps N] [--warmup auto|N]
[--device cpu|cuda] [--impl both|ours|reference|static|all|IMPL,IMPL...] [--phases N] [--profile] [--json PATH]``

Each implementation and setting runs in its own process, on the same inputs (same seed, generated identically),
after warm-up to steady-state memory size. Prints a table and writes every measurement to a JSON file.

Implementations (benchmarks/workload.py): ``reference`` (memoria-pytorch 1.0.0), ``ours`` (default settings),
``ours-static`` (``static_shapes=True``, ``mode="paper"``, the setting's ``static_ltm_capacity``),
``ours-static-compile`` (that step as one ``torch.compile``d graph) and ``ours-static-cudagraph`` (the compiled
step replayed from a CUDA graph; CUDA only). Whole-step rows time the whole compiled call, lifespan deltas included;
their compile and capture time is in the JSON (``prepare_seconds``).
"""

import argparse
import json
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from benchmarks.harness import machine, mib, run_worker, source_fingerprint, source_snapshot
from benchmarks.settings import SETTINGS
from benchmarks.workload import IMPLEMENTATIONS as ALL_IMPLEMENTATIONS

OUTPUT_DIR = Path(__file__).resolve().parent.parent / "outputs" / "benchmarks"
IMPLEMENTATIONS = {
    "both": ("reference", "ours"),
    "ours": ("ours",),
    "reference": ("reference",),
    "static": ("ours-static", "ours-static-compile"),
    "all": ("reference", "ours", "ours-static", "ours-static-compile"),
}
"""Groups of implementations for ``--impl`` (a comma-separated list of implementations works too); on CUDA,
``static`` and ``all`` add ``ours-static-cudagraph``."""


def implementations(choice: str, device: str) -> Tuple[str, ...]:
    """The implementations ``--impl choice`` names, in measuring order."""
    if choice in IMPLEMENTATIONS:
        cuda_graph = ("ours-static-cudagraph",) if choice in ("static", "all") and device.startswith("cuda") else ()
        return IMPLEMENTATIONS[choice] + cuda_graph
    return tuple(choice.split(","))


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", default=",".join(SETTINGS), help="comma-separated: " + ", ".join(SETTINGS))
    parser.add_argument("--steps", type=int, default=20, help="timed steps per measurement")
    parser.add_argument(
        "--warmup", default="auto", help="warm-up steps, or 'auto': until live engrams per row stop growing"
    )
    parser.add_argument("--max-warmup", type=int, default=200, help="cap on automatic warm-up steps")
    parser.add_argument(
        "--max-warmup-seconds", type=float, default=900.0, help="cap on warm-up time per measurement (reported)"
    )
    parser.add_argument(
        "--max-timed-seconds", type=float, default=300.0, help="stop timing after this long (at least 3 steps)"
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda (cuda:N)")
    parser.add_argument(
        "--impl",
        default="both",
        help=f"one of {sorted(IMPLEMENTATIONS)}, or a comma-separated list of {ALL_IMPLEMENTATIONS}",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--phases", type=int, default=0, help="extra instrumented steps for per-phase times")
    parser.add_argument(
        "--profile", action="store_true", help="count CUDA kernel launches and host syncs per step (torch.profiler)"
    )
    parser.add_argument("--profile-steps", type=int, default=5, help="steps profiled with --profile")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds allowed per measurement process")
    parser.add_argument(
        "--json", type=Path, default=None, help="output file (default outputs/benchmarks/run-DEVICE.json)"
    )
    args = parser.parse_args(argv)
    unknown = [name for name in args.settings.split(",") if name not in SETTINGS]
    if unknown:
        parser.error(f"unknown settings {unknown}; choose from {list(SETTINGS)}")
    unknown = [impl for impl in implementations(args.impl, args.device) if impl not in ALL_IMPLEMENTATIONS]
    if unknown:
        parser.error(
            f"unknown implementations {unknown}; choose from {sorted(IMPLEMENTATIONS)} or {ALL_IMPLEMENTATIONS}"
        )
    if "ours-static-cudagraph" in implementations(args.impl, args.device) and not args.device.startswith("cuda"):
        parser.error("ours-static-cudagraph needs --device cuda")
    if args.warmup != "auto" and not args.warmup.isdigit():
        parser.error("--warmup takes 'auto' or a number of steps")
    return args


def config_for(args: argparse.Namespace, setting_name: str, impl: str, warmup: Optional[int] = None) -> Dict[str, Any]:
    """The worker configuration of one measurement (``warmup`` overrides ``--warmup``)."""
    if warmup is None:
        warmup = -1 if args.warmup == "auto" else int(args.warmup)
    return {
        "impl": impl,
        "device": args.device,
        "seed": args.seed,
        "setting": SETTINGS[setting_name].to_dict(),
        "warmup": warmup,
        "max_warmup": args.max_warmup,
        "max_warmup_seconds": args.max_warmup_seconds,
        "max_timed_seconds": args.max_timed_seconds,
        "steps": args.steps,
        "phase_steps": args.phases,
        "profile_steps": args.profile_steps if args.profile else 0,
    }


def compare(ours: Dict[str, Any], reference: Dict[str, Any]) -> Dict[str, float]:
    """Speedup (reference median / ours median) and memory ratio (reference peak / ours peak)."""
    return {
        "speedup": reference["step_seconds"]["median"] / ours["step_seconds"]["median"],
        "memory_ratio": reference["peak_memory_bytes"] / max(ours["peak_memory_bytes"], 1),
    }


def format_table(results: List[Dict[str, Any]], comparisons: Dict[str, Dict[str, float]]) -> str:
    """A Markdown table: one row per measurement, ratios against the reference on our rows (from ``comparisons``
    for files that hold only those, else from the setting's reference row)."""
    header = (
        "| setting | impl | median ms | IQR ms | min-max ms | peak MiB | live/row (STM/LTM) | reminded/row | steps warm-up/timed | "
        "speedup | memory ratio |"
    )
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    references = {r["setting_name"]: r for r in results if r["impl"] == "reference" and "error" not in r}
    reference_warmups = {name: r["warmup"] for name, r in references.items() if "warmup" in r}
    for result in results:
        name, impl = result["setting_name"], result["impl"]
        if "error" in result:
            lines.append(f"| {name} | {impl} | failed: {result['error'][:80]} |" + " |" * 8)
            continue
        t = {key: value * 1e3 for key, value in result["step_seconds"].items() if key != "steps"}
        e = result["engrams_per_row"]
        warm = dict(result["warmup"])
        if impl != "reference" and reference_warmups.get(name, {}).get("steps") == warm["steps"]:
            warm["steady"] = reference_warmups[name]["steady"]  # ours replayed the reference's warm-up
        ratio = {}
        if impl != "reference":
            ratio = compare(result, references[name]) if name in references else comparisons.get(name, {})
        lines.append(
            f"| {name} | {impl} {result['version']} | {t['median']:.1f} | {t['q1']:.1f}-{t['q3']:.1f} | "
            f"{t['min']:.1f}-{t['max']:.1f} | {mib(result['peak_memory_bytes']):.0f} | "
            f"{e['live']:.0f} ({e['shortterm']:.0f}/{e['longterm']:.0f}) | {result['reminded_per_row']:.0f} | "
            f"{warm['steps']}{'' if warm['steady'] else ' (not steady)'}/{result['step_seconds']['steps']} | "
            + (f"{ratio['speedup']:.1f}x | {ratio['memory_ratio']:.1f}x |" if ratio else " | |")
        )
    return "\n".join(lines)


def format_phases(results: List[Dict[str, Any]]) -> str:
    """A Markdown table of mean milliseconds per phase, for measurements that have them."""
    rows = [r for r in results if "phases" in r]
    if not rows:
        return ""
    names = list(rows[0]["phases"])
    lines = ["| setting | impl | " + " | ".join(names) + " |", "|" + "---|" * (len(names) + 2)]
    for r in rows:
        cells = " | ".join(f"{r['phases'][n] * 1e3:.1f}" for n in names)
        lines.append(f"| {r['setting_name']} | {r['impl']} | {cells} |")
    return "\n".join(lines)


def format_profile(results: List[Dict[str, Any]]) -> str:
    """A Markdown table of per-step profiler counts, for measurements that have them."""
    rows = [r for r in results if "profile" in r]
    if not rows:
        return ""
    names = [name for name in rows[0]["profile"] if name != "runtime_calls"]
    lines = [
        "| setting | impl | " + " | ".join(n.replace("_", " ") for n in names) + " |",
        "|" + "---|" * (len(names) + 2),
    ]
    for r in rows:
        lines.append(
            f"| {r['setting_name']} | {r['impl']} | " + " | ".join(f"{r['profile'][n]:.1f}" for n in names) + " |"
        )
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> None:
    """Run every requested setting and implementation, print the tables, write the JSON."""
    args = parse_args(argv)
    output = args.json or OUTPUT_DIR / f"run-{args.device.split(':')[0]}.json"
    results: List[Dict[str, Any]] = []
    comparisons: Dict[str, Dict[str, float]] = {}
    with source_snapshot() as root:
        source = source_fingerprint(root)
        for name in args.settings.split(","):
            measure_setting(args, name, root, source, output, results, comparisons)
    write_report(output, args, results, comparisons, source)
    print()
    print(format_table(results, comparisons))
    for table in (format_phases(results), format_profile(results)):
        if table:
            print()
            print(table)
    print(f"\nwrote {output}")


def measure_setting(
    args: argparse.Namespace,
    name: str,
    root: Path,
    source: Dict[str, str],
    output: Path,
    results: List[Dict[str, Any]],
    comparisons: Dict[str, Dict[str, float]],
) -> None:
    """Measure one setting with every requested implementation (the reference first), appending to ``results``
    and ``comparisons`` and rewriting ``output`` after each measurement, so that a long run keeps its part."""
    by_impl: Dict[str, Dict[str, Any]] = {}
    for impl in implementations(args.impl, args.device):
        # Ours replays the reference's warm-up length, so both time the same steps on the same inputs.
        reference = by_impl.get("reference", {})
        warmup = reference["warmup"]["steps"] if impl != "reference" and "warmup" in reference else None
        started = time.perf_counter()
        result = run_worker(config_for(args, name, impl, warmup), args.timeout, root)
        result.update(setting_name=name, impl=impl, wall_seconds=time.perf_counter() - started)
        result.setdefault("version", "?")
        results.append(result)
        by_impl[impl] = result
        status = result.get("error") or f"median {result['step_seconds']['median'] * 1e3:.1f} ms"
        print(f"[{name}/{impl}] {status} ({result['wall_seconds']:.0f} s)", flush=True)
        write_report(output, args, results, comparisons, source)
    if all(impl in by_impl and "error" not in by_impl[impl] for impl in ("ours", "reference")):
        comparisons[name] = compare(by_impl["ours"], by_impl["reference"])


def write_report(
    output: Path,
    args: argparse.Namespace,
    results: List[Dict[str, Any]],
    comparisons: Dict[str, Dict[str, float]],
    source: Dict[str, str],
) -> None:
    """Write the machine, the options, every measurement and the ratios to ``output`` as JSON."""
    output.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "machine": machine(),
        "source": source,
        "args": {key: str(value) for key, value in vars(args).items()},
        "results": results,
        "comparisons": comparisons,
    }
    output.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
