"""Scaling sweep: step time, per-phase time and peak memory as live engrams per row grow.

``python -m benchmarks.sweep [--sizes 250,500,...,16000] [--impl both|ours|reference] [--device cpu|cuda]``

Uses the language-modelling setting (B=8, W=50, D=768, STM capacity 400, 50 + 50 reminded, depth 10) with a
lifespan long enough that nothing dies, so memory can be grown to a chosen size: each point starts a fresh process,
fills memory in large chunks of working engrams (adjusted with nothing reminded, so they become short-term and the
overflow long-term), then times full steps. An implementation stops growing when its next point is predicted (from
its last one, scaling as N^2) to exceed the time or memory cap, or when a point fails; the JSON records where and
why. Writes ``outputs/benchmarks/sweep-DEVICE.json`` and a log-log plot ``sweep-DEVICE.png`` (``--json`` for
another path).
"""

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from benchmarks.harness import machine, mib, run_worker, source_fingerprint, source_snapshot
from benchmarks.run import IMPLEMENTATIONS, OUTPUT_DIR
from benchmarks.settings import SETTINGS

LIFESPAN = 1_000_000
"""Initial lifespan during the sweep: no engram dies, so memory size is set by how much was added."""

PHASE_GROUPS = {
    "recall (STM)": ("recall_stm",),
    "walk (seed + walk LTM)": ("seed_ltm", "walk_ltm"),
    "select LTM": ("select_ltm",),
    "firing": ("fire",),
    "compaction (adjust)": ("adjust",),
}


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="250,500,1000,2000,4000,8000,16000", help="target live engrams per row")
    parser.add_argument("--impl", choices=sorted(IMPLEMENTATIONS), default="both")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--warmup", type=int, default=2, help="full steps before timing, at each size")
    parser.add_argument("--steps", type=int, default=3, help="timed steps at each size")
    parser.add_argument("--phases", type=int, default=2, help="instrumented steps for per-phase times")
    parser.add_argument("--chunk", type=int, default=1000, help="working engrams added per build-up call")
    parser.add_argument("--max-step-seconds", type=float, default=30.0, help="skip sizes predicted to step slower")
    parser.add_argument(
        "--max-memory-gib",
        type=float,
        default=None,
        help="skip sizes predicted to peak higher (default: 12 on CPU, " "80%% of the GPU's memory on CUDA)",
    )
    parser.add_argument("--timeout", type=float, default=1200.0, help="seconds allowed per point (process)")
    parser.add_argument("--json", type=Path, default=None, help="output (default outputs/benchmarks/sweep-DEVICE.json)")
    args = parser.parse_args(argv)
    if args.max_memory_gib is None:
        if args.device.startswith("cuda"):
            args.max_memory_gib = 0.8 * torch.cuda.get_device_properties(torch.device(args.device)).total_memory / 2**30
        else:
            args.max_memory_gib = 12.0
    return args


def point_config(args: argparse.Namespace, impl: str, size: int) -> Dict[str, Any]:
    """Worker configuration for one implementation at one memory size."""
    return {
        "impl": impl,
        "device": args.device,
        "seed": args.seed,
        "setting": SETTINGS["lm"].to_dict(),
        "overrides": {"initial_lifespan": LIFESPAN},
        "build_target": size,
        "build_chunk": args.chunk,
        "build_budget_s": args.timeout / 2,
        "warmup": args.warmup,
        "steps": args.steps,
        "phase_steps": args.phases,
    }


def growth_exponent(points: List[Dict[str, Any]], key: str) -> float:
    """How ``key`` scaled with live engrams between the last two points (log-log slope, clamped to [1, 2]);
    2 when there is only one point."""
    if len(points) < 2:
        return 2.0
    (n0, v0), (n1, v1) = ((p["engrams_per_row"]["live"], value_of(p, key)) for p in points[-2:])
    if min(n0, n1, v0, v1) <= 0 or n1 <= n0:
        return 2.0
    return min(max(math.log(v1 / v0) / math.log(n1 / n0), 1.0), 2.0)


def value_of(point: Dict[str, Any], key: str) -> float:
    """Median step seconds (``key="time"``) or peak memory bytes (``key="memory"``) of a point."""
    return point["step_seconds"]["median"] if key == "time" else float(point["peak_memory_bytes"])


def too_big(points: List[Dict[str, Any]], size: int, args: argparse.Namespace) -> Optional[str]:
    """Why ``size`` should be skipped, extrapolating from the points measured so far, or None."""
    last = points[-1]
    ratio = size / max(last["engrams_per_row"]["live"], 1.0)
    step = value_of(last, "time") * ratio ** growth_exponent(points, "time")
    memory = value_of(last, "memory") * ratio ** growth_exponent(points, "memory") / 2**30
    if step > args.max_step_seconds:
        return f"predicted step {step:.0f} s > {args.max_step_seconds:.0f} s"
    if memory > args.max_memory_gib:
        return f"predicted peak {memory:.1f} GiB > {args.max_memory_gib:.1f} GiB"
    return None


def sweep(args: argparse.Namespace, output: Path) -> Dict[str, Any]:
    """Measure every implementation at every size it can reach, rewriting ``output`` after each point."""
    sizes = [int(size) for size in args.sizes.split(",")]
    output.parent.mkdir(parents=True, exist_ok=True)
    with source_snapshot() as root:
        report: Dict[str, Any] = {
            "machine": machine(),
            "source": source_fingerprint(root),
            "args": {k: str(v) for k, v in vars(args).items()},
            "points": [],
            "stopped": {},
        }
        for impl in IMPLEMENTATIONS[args.impl]:
            report["stopped"].update(sweep_implementation(args, impl, sizes, root, report, output))
    output.write_text(json.dumps(report, indent=1))
    return report


def sweep_implementation(
    args: argparse.Namespace, impl: str, sizes: List[int], root: Path, report: Dict[str, Any], output: Path
) -> Dict[str, str]:
    """Measure ``impl`` at each size until it is predicted to pass a cap or fails; append to ``report["points"]``
    and rewrite ``output`` after each point.

    Returns:
        ``{impl: why it stopped}``, or an empty dict when it reached every size.
    """
    measured: List[Dict[str, Any]] = []
    for size in sizes:
        reason = too_big(measured, size, args) if measured else None
        if reason:
            return {impl: f"stopped before {size}: {reason}"}
        started = time.perf_counter()
        result = run_worker(point_config(args, impl, size), args.timeout, root)
        result.update(impl=impl, target=size, wall_seconds=time.perf_counter() - started)
        report["points"].append(result)
        output.write_text(json.dumps(report, indent=1))
        if "error" in result:
            print(f"[{impl} N={size}] failed: {result['error']}", flush=True)
            return {impl: f"stopped at {size}: {result['error']}"}
        live = result["engrams_per_row"]["live"]
        print(
            f"[{impl} N={size}] live {live:.0f}/row, step {result['step_seconds']['median'] * 1e3:.1f} ms, "
            f"peak {mib(result['peak_memory_bytes']):.0f} MiB ({result['wall_seconds']:.0f} s)",
            flush=True,
        )
        measured.append(result)
    return {}


def format_table(report: Dict[str, Any]) -> str:
    """A Markdown table: one row per point, with milliseconds per phase group."""
    header = "| impl | live/row | step ms | peak MiB | " + " | ".join(PHASE_GROUPS) + " |"
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for point in report["points"]:
        if "error" in point:
            lines.append(f"| {point['impl']} | target {point['target']} | failed: {point['error'][:60]} |")
            continue
        phases = point.get("phases", {})
        groups = " | ".join(f"{sum(phases.get(p, 0.0) for p in parts) * 1e3:.1f}" for parts in PHASE_GROUPS.values())
        lines.append(
            f"| {point['impl']} | {point['engrams_per_row']['live']:.0f} | {point['step_seconds']['median'] * 1e3:.1f} "
            f"| {mib(point['peak_memory_bytes']):.0f} | {groups} |"
        )
    for impl, reason in report["stopped"].items():
        lines.append(f"\n{impl}: {reason}")
    return "\n".join(lines)


def plot(report: Dict[str, Any], path: Path) -> None:
    """Log-log plot: step time, time per phase group, and peak memory against live engrams per row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    figure, (ax_step, ax_phase, ax_memory) = plt.subplots(1, 3, figsize=(17, 5))
    styles = {"ours": "-", "reference": "--"}
    colors = dict(zip(PHASE_GROUPS, ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple")))
    for impl in styles:
        points = [p for p in report["points"] if p["impl"] == impl and "error" not in p]
        if not points:
            continue
        live = [p["engrams_per_row"]["live"] for p in points]
        ax_step.plot(live, [p["step_seconds"]["median"] * 1e3 for p in points], styles[impl] + "o", label=impl)
        ax_memory.plot(live, [mib(max(p["peak_memory_bytes"], 1)) for p in points], styles[impl] + "o", label=impl)
        for group, parts in PHASE_GROUPS.items():
            times = [sum(p.get("phases", {}).get(part, 0.0) for part in parts) * 1e3 for p in points]
            ax_phase.plot(
                live, [max(t, 1e-3) for t in times], styles[impl], color=colors[group], label=f"{impl}: {group}"
            )
    for axis, title, unit in (
        (ax_step, "step time (median)", "ms"),
        (ax_phase, "time per phase (solid: ours, dashed: reference)", "ms"),
        (ax_memory, "peak memory during timed steps", "MiB"),
    ):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.xaxis.set_minor_formatter(NullFormatter())
        axis.set_xlabel("live engrams per row")
        axis.set_ylabel(unit)
        axis.set_title(title)
        axis.grid(True, which="both", alpha=0.3)
    ax_step.legend()
    ax_memory.legend()
    ax_phase.legend(fontsize=7)
    figure.suptitle(
        f"Memoria scaling, LM setting (B=8, W=50, D=768), {report['machine']['cpu']}, {report['args']['device']}"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: Optional[List[str]] = None) -> None:
    """Run the sweep, print the table, write the JSON and the plot."""
    args = parse_args(argv)
    output = args.json or OUTPUT_DIR / f"sweep-{args.device.split(':')[0]}.json"
    report = sweep(args, output)
    print()
    print(format_table(report))
    plot(report, output.with_suffix(".png"))
    print(f"\nwrote {output} and {output.with_suffix('.png')}")


if __name__ == "__main__":
    main()
