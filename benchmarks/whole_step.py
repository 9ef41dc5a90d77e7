"""A whole Memoria step (add -> remind -> adjust) as one callable: eager, ``torch.compile``d, or a CUDA graph.

``static_shapes=True`` makes a step a fixed sequence of tensor operations with no host sync, so
``torch.compile(fullgraph=True, dynamic=False)`` turns it into one graph, and that graph can be captured in a CUDA
graph and replayed with one launch. :func:`make_step` builds the callable that :mod:`benchmarks.worker` times for
the ``ours-static``, ``ours-static-compile`` and ``ours-static-cudagraph`` implementations;
``python -m benchmarks.whole_step`` times them against the default path interleaved in one process (:func:`main`).
"""

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import torch

from benchmarks.workload import Workload

Step = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""``step(hidden [B, W, D], delta_logits [B, max reminded]) -> indices [B, R]``."""


def eager_step(memoria: Any) -> Step:
    """One model step on ``memoria``: add ``hidden``, remind, adjust with attention-like deltas from the logits."""

    def step(hidden: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        memoria.add_working_memory(hidden)
        _, indices = memoria.remind()  # [B, R]
        memoria.adjust_lifespan_and_memories(indices, Workload.lifespan_delta(indices, logits))
        return indices

    return step


def compiled_step(memoria: Any, backend: str = "inductor") -> Step:
    """:func:`eager_step` compiled into one graph (``fullgraph=True``: a graph break is an error)."""
    return torch.compile(eager_step(memoria), backend=backend, fullgraph=True, dynamic=False)


class CudaGraphStep:
    """A step captured in a CUDA graph: each call copies its inputs into the captured ones and replays.

    Capturing first runs ``warmup`` steps on a side stream (they change the memory like any step, and compile
    ``step`` if it is compiled), then records one step without running it.

    Args:
        step: the step to capture (eager or compiled); it must not synchronise with the host.
        hidden, logits: example inputs (their shapes and device are those of every later call).
        warmup: steps run before capture.
    """

    def __init__(self, step: Step, hidden: torch.Tensor, logits: torch.Tensor, warmup: int = 3) -> None:
        if hidden.device.type != "cuda":
            raise ValueError(f"a CUDA graph needs CUDA inputs, got hidden on {hidden.device}")
        self.hidden, self.logits = hidden.clone(), logits.clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(warmup):
                step(self.hidden, self.logits)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.indices = step(self.hidden, self.logits)

    def __call__(self, hidden: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        self.hidden.copy_(hidden)
        self.logits.copy_(logits)
        self.graph.replay()
        return self.indices


def make_step(
    memoria: Any, impl: str, hidden: torch.Tensor, logits: torch.Tensor, backend: Optional[str] = None
) -> Step:
    """The step that ``impl`` times: ``ours-static`` eager, ``ours-static-compile`` compiled,
    ``ours-static-cudagraph`` compiled and captured (example inputs ``hidden``, ``logits``; CUDA only).

    Args:
        backend: the ``torch.compile`` backend (default inductor).
    """
    if impl == "ours-static":
        return eager_step(memoria)
    if impl == "ours-static-compile":
        return compiled_step(memoria, backend or "inductor")
    if impl == "ours-static-cudagraph":
        return CudaGraphStep(compiled_step(memoria, backend or "inductor"), hidden, logits)
    raise ValueError(f"no whole step for implementation {impl!r}")


def interleaved(setting_name: str, device: str, warmup: int, steps: int, seed: int = 0) -> Dict[str, Any]:
    """Step times of ours (default settings), ours-static and ours-static-compile (and ours-static-cudagraph on
    CUDA) in one process, one step of each in turn on the same inputs, after ``warmup`` eager steps each.

    Returns:
        ``{"setting", "device", "warmup", "steps", "prepare_seconds": {impl: s}, "step_seconds": {impl: [s, ...]}}``
        (a step's time includes the lifespan deltas' computation).
    """
    from benchmarks.measure import synchronize
    from benchmarks.settings import SETTINGS
    from benchmarks.workload import build_memoria, implementation_kwargs, load_implementation

    setting, target = SETTINGS[setting_name], torch.device(device)
    impls = ["ours", "ours-static", "ours-static-compile"] + (
        ["ours-static-cudagraph"] if target.type == "cuda" else []
    )
    torch.manual_seed(seed)
    workload = Workload(setting, seed, target)
    memories = {
        impl: build_memoria(load_implementation(impl), setting, target, **implementation_kwargs(impl, setting))
        for impl in impls
    }
    for index in range(warmup):
        hidden, logits = workload.hidden_states("warmup", index), workload.delta_logits("warmup", index)
        for memoria in memories.values():
            eager_step(memoria)(hidden, logits)
    runs: Dict[str, Step] = {"ours": eager_step(memories["ours"])}
    prepare: Dict[str, float] = {}
    example = (workload.hidden_states("prepare", 0), workload.delta_logits("prepare", 0))
    for impl in impls[1:]:
        started = time.perf_counter()
        runs[impl] = make_step(memories[impl], impl, *example)
        runs[impl](*example)
        synchronize(target)
        prepare[impl] = time.perf_counter() - started
    seconds: Dict[str, List[float]] = {impl: [] for impl in impls}
    for index in range(steps):
        hidden, logits = workload.hidden_states("timed", index), workload.delta_logits("timed", index)
        for impl in impls:
            synchronize(target)
            started = time.perf_counter()
            runs[impl](hidden, logits)
            synchronize(target)
            seconds[impl].append(time.perf_counter() - started)
    return {
        "setting": setting_name,
        "device": device,
        "warmup": warmup,
        "steps": steps,
        "prepare_seconds": prepare,
        "step_seconds": seconds,
    }


def main(argv: Optional[List[str]] = None) -> None:
    """``python -m benchmarks.whole_step [--setting lm] [--device cpu] [--warmup N] [--steps N] [--json PATH]``:
    :func:`interleaved`, printed as a table."""
    parser = argparse.ArgumentParser(description=interleaved.__doc__)
    parser.add_argument("--setting", default="lm")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    result = interleaved(args.setting, args.device, args.warmup, args.steps)
    print(f"setting {args.setting} on {args.device}, {args.warmup} warm-up steps, {args.steps} interleaved steps")
    print("| impl | median ms | min-max ms | compile/capture s |")
    print("|---|---|---|---|")
    for impl, seconds in result["step_seconds"].items():
        prepare = result["prepare_seconds"].get(impl)
        print(
            f"| {impl} | {statistics.median(seconds) * 1e3:.1f} | {min(seconds) * 1e3:.1f}-{max(seconds) * 1e3:.1f} | "
            + (f"{prepare:.0f} |" if prepare is not None else " |")
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
