"""One measurement in its own process: one implementation, one configuration.

Run by :mod:`benchmarks.run` and :mod:`benchmarks.sweep`, which start a fresh interpreter per measurement so that
peak memory belongs to that measurement alone. ``python -m benchmarks.worker CONFIG.json RESULT.json``.
"""

import json
import os
import statistics
import sys
import time
from contextlib import nullcontext
from typing import Any, Dict, List, Optional

import torch

from benchmarks.measure import STEP_LABEL, PeakMemory, PhaseTimer, count_runtime_calls, synchronize
from benchmarks.settings import Setting
from benchmarks.whole_step import CudaGraphStep, Step, eager_step, make_step
from benchmarks.workload import (
    Workload,
    build_memoria,
    census,
    implementation_kwargs,
    implementation_version,
    load_implementation,
)

WHOLE_STEP_IMPLEMENTATIONS = ("ours-static-compile", "ours-static-cudagraph")
"""Implementations timed as one callable per step (benchmarks/whole_step.py); warm-up steps them eagerly."""


def step(memoria: Any, workload: Workload, phase: str, index: int, profiled: bool = False) -> Dict[str, float]:
    """One model step: add working memory, remind, adjust lifespans with attention-like deltas.

    Returns:
        ``seconds``: time of ``add_working_memory`` + ``remind`` + ``adjust_lifespan_and_memories`` (the deltas'
        computation between them is not counted); ``reminded``: mean non-padding indices per row.
    """
    device = workload.device
    label = (lambda: torch.profiler.record_function(STEP_LABEL)) if profiled else nullcontext
    hidden = workload.hidden_states(phase, index)  # [B, W, D]
    logits = workload.delta_logits(phase, index)  # [B, R_max]
    synchronize(device)
    start = time.perf_counter()
    with label():
        memoria.add_working_memory(hidden)
        _, indices = memoria.remind()  # [B, R]
    synchronize(device)
    reminded_at = time.perf_counter()
    delta = Workload.lifespan_delta(indices, logits)  # [B, R]
    synchronize(device)
    adjust_at = time.perf_counter()
    with label():
        memoria.adjust_lifespan_and_memories(indices, delta)
    synchronize(device)
    end = time.perf_counter()
    reminded = float((indices >= 0).sum().item() / max(indices.shape[0], 1)) if indices.numel() else 0.0
    return {"seconds": (reminded_at - start) + (end - adjust_at), "reminded": reminded}


def whole_step(run: Step, workload: Workload, phase: str, index: int) -> Dict[str, float]:
    """One model step through a whole-step callable; ``seconds`` is the time of the call, which includes the
    lifespan deltas' computation (a handful of small ops)."""
    device = workload.device
    hidden = workload.hidden_states(phase, index)  # [B, W, D]
    logits = workload.delta_logits(phase, index)  # [B, R_max]
    synchronize(device)
    start = time.perf_counter()
    indices = run(hidden, logits)  # [B, R]
    synchronize(device)
    end = time.perf_counter()
    reminded = float((indices >= 0).sum().item() / max(indices.shape[0], 1)) if indices.numel() else 0.0
    return {"seconds": end - start, "reminded": reminded}


def prepare_whole_step(memoria: Any, impl: str, workload: Workload, backend: Optional[str] = None) -> Dict[str, Any]:
    """Build ``impl``'s whole-step callable and run it once (compiling and capturing it): ``{"step", "seconds",
    "note"}``. The steps this takes change the memory like warm-up steps. If compiling fails (a machine without a C
    compiler for Triton, say), ``ours-static-cudagraph`` captures the eager step instead and ``note`` says so.

    Args:
        backend: the ``torch.compile`` backend (default inductor).
    """
    started = time.perf_counter()
    hidden, logits = workload.hidden_states("prepare", 0), workload.delta_logits("prepare", 0)
    note = None
    try:
        run = make_step(memoria, impl, hidden, logits, backend)
    except Exception as error:  # a failed compile changes no memory: the eager capture starts from the same state
        if impl != "ours-static-cudagraph":
            raise
        run = CudaGraphStep(eager_step(memoria), hidden, logits)
        note = f"eager step captured, compile failed: {type(error).__name__}: {str(error)[:200]}"
    run(workload.hidden_states("prepare", 1), workload.delta_logits("prepare", 1))
    synchronize(workload.device)
    return {"step": run, "seconds": time.perf_counter() - started, "note": note}


def warm_up(
    memoria: Any, workload: Workload, fixed: int, max_steps: int, min_steps: int, window: int, max_seconds: float
) -> Dict[str, Any]:
    """Step until memory size is steady: the mean live engrams per row set no new high (by more than 1%) during
    the last ``window`` steps, after at least ``min_steps``. A ``fixed`` count >= 0 runs exactly that many.
    Either way it stops after ``max_seconds``; ``steady`` says whether the criterion was met (or the count fixed)."""
    live: List[float] = []
    seconds: List[float] = []
    steady = fixed >= 0
    limit = fixed if fixed >= 0 else max_steps
    deadline = time.perf_counter() + max_seconds
    for index in range(limit):
        if time.perf_counter() > deadline:
            steady = False
            break
        seconds.append(step(memoria, workload, "warmup", index)["seconds"])
        live.append(census(memoria)["live"])
        if fixed < 0 and index + 1 >= max(min_steps, window + 1):
            before, recent = max(live[:-window]), max(live[-window:])
            if recent <= before * 1.01:
                steady = True
                break
    return {"steps": len(live), "steady": steady, "live_trace": live, "step_seconds": seconds}


def summarize(seconds: List[float]) -> Dict[str, float]:
    """Median, quartiles, min and max of step times."""
    ordered = sorted(seconds)
    quartiles = statistics.quantiles(ordered, n=4, method="inclusive") if len(ordered) >= 2 else [ordered[0]] * 3
    return {
        "median": statistics.median(ordered),
        "q1": quartiles[0],
        "q3": quartiles[2],
        "min": ordered[0],
        "max": ordered[-1],
        "steps": len(ordered),
    }


def profile_steps(memoria: Any, workload: Workload, steps: int) -> Dict[str, Any]:
    """Per-step counts of CUDA kernel launches, copies, host synchronisations and top-level operators inside
    Memoria's calls, from ``torch.profiler`` over ``steps`` steps."""
    activities = [torch.profiler.ProfilerActivity.CPU]
    if workload.device.type == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    with torch.profiler.profile(activities=activities) as profile:
        for index in range(steps):
            step(memoria, workload, "profile", index, profiled=True)
    counts = count_runtime_calls(profile.events())
    runtime = counts.pop("runtime_calls")
    per_step = {name: value / steps for name, value in counts.items()}
    per_step["runtime_calls"] = {name: value / steps for name, value in sorted(runtime.items())}
    return per_step


def phase_steps(memoria: Any, impl: str, workload: Workload, steps: int) -> Dict[str, float]:
    """Mean seconds per step in each phase over ``steps`` instrumented steps (``other`` = the rest of the step)."""
    timer = PhaseTimer(memoria, impl, workload.device)
    total = 0.0
    with timer.record():
        for index in range(steps):
            total += step(memoria, workload, "phases", index)["seconds"]
    phases = {phase: seconds / steps for phase, seconds in timer.totals.items()}
    phases["other"] = max(total / steps - sum(phases.values()), 0.0)
    phases["step"] = total / steps
    return phases


def build_up(memoria: Any, workload: Workload, target: int, chunk: int, deadline: float) -> Dict[str, Any]:
    """Grow memory to about ``target`` live engrams per row cheaply: add ``chunk`` working engrams at a time and
    adjust with no reminded indices (working become short-term, the overflow long-term), then one full step so
    the Hebbian graph is not empty. Stops early at ``deadline`` (``time.perf_counter`` seconds)."""
    s = workload.setting
    empty = torch.empty(s.batch_size, 0, dtype=torch.long, device=workload.device)
    index = 0
    start = time.perf_counter()
    while census(memoria)["live"] < target and time.perf_counter() < deadline:
        length = int(min(chunk, target - census(memoria)["live"]))
        memoria.add_working_memory(workload.hidden_states("build", index, length))
        memoria.adjust_lifespan_and_memories(empty, torch.zeros(empty.shape, device=workload.device))
        index += 1
    synchronize(workload.device)
    return {"chunks": index, "seconds": time.perf_counter() - start, "reached": census(memoria)["live"]}


def measure(config: Dict[str, Any]) -> Dict[str, Any]:
    """Run the measurement ``config`` describes (see :mod:`benchmarks.run` and :mod:`benchmarks.sweep`)."""
    impl = config["impl"]
    device = torch.device(config["device"])
    setting = Setting(**config["setting"])
    torch.manual_seed(config["seed"])
    module = load_implementation(impl)
    workload = Workload(setting, config["seed"], device)
    workload.hidden_states("warmup", 0)  # first allocation and kernel loads before the baseline
    synchronize(device)
    peak = PeakMemory(device)
    overrides = {**implementation_kwargs(impl, setting), **config.get("overrides", {})}
    memoria = build_memoria(module, setting, device, **overrides)
    result: Dict[str, Any] = {
        "impl": impl,
        "version": implementation_version(module),
        "setting": setting.to_dict(),
        "overrides": config.get("overrides", {}),
        "device": str(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "seed": config["seed"],
        "load_average_start": os.getloadavg(),
    }
    if config.get("build_target"):
        deadline = time.perf_counter() + config.get("build_budget_s", 600.0)
        # Aim below the target by what the warm-up and the first timed steps will add.
        target = config["build_target"] - setting.working_length * (max(config.get("warmup", 0), 0) + 1)
        result["build"] = build_up(memoria, workload, target, config.get("build_chunk", 500), deadline)
    result["warmup"] = warm_up(
        memoria,
        workload,
        fixed=config.get("warmup", -1),
        max_steps=config.get("max_warmup", 300),
        min_steps=config.get("min_warmup", 2 * setting.initial_lifespan),
        window=config.get("warmup_window", max(10, setting.initial_lifespan)),
        max_seconds=config.get("max_warmup_seconds", float("inf")),
    )
    run = None
    if impl in WHOLE_STEP_IMPLEMENTATIONS:
        prepared = prepare_whole_step(memoria, impl, workload, config.get("compile_backend"))
        run, result["prepare_seconds"] = prepared["step"], prepared["seconds"]
        if prepared["note"]:
            result["version"] += " (eager step captured: compile failed)"
            result["prepare_note"] = prepared["note"]
    peak.start()
    seconds: List[float] = []
    censuses: List[Dict[str, float]] = []
    reminded: List[float] = []
    deadline = time.perf_counter() + config.get("max_timed_seconds", float("inf"))
    for index in range(config["steps"]):
        if index >= 3 and time.perf_counter() > deadline:
            break
        outcome = step(memoria, workload, "timed", index) if run is None else whole_step(run, workload, "timed", index)
        seconds.append(outcome["seconds"])
        reminded.append(outcome["reminded"])
        censuses.append(census(memoria))
    result["peak_memory_bytes"] = peak.stop()
    result["memory_after_bytes"] = peak.current() - peak.baseline
    result["memory_method"] = peak.method
    result["step_seconds"] = summarize(seconds)
    result["step_seconds_all"] = seconds
    result["reminded_per_row"] = statistics.mean(reminded)
    result["engrams_per_row"] = {key: statistics.mean(c[key] for c in censuses) for key in censuses[0]}
    result["load_average_end"] = os.getloadavg()
    if config.get("phase_steps", 0) > 0 and run is None:
        result["phases"] = phase_steps(memoria, impl, workload, config["phase_steps"])
    if config.get("profile_steps", 0) > 0 and run is None:
        result["profile"] = profile_steps(memoria, workload, config["profile_steps"])
    return result


def main(argv: List[str]) -> None:
    """``python -m benchmarks.worker CONFIG.json RESULT.json``."""
    with open(argv[0]) as config_file:
        config = json.load(config_file)
    result = measure(config)
    with open(argv[1], "w") as result_file:
        json.dump(result, result_file, indent=1)


if __name__ == "__main__":
    main(sys.argv[1:])
