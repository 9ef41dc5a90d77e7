"""A whole Memoria step (add -> remind -> adjust) as one callable: eager, ``torch.compile``d, or a CUDA graph.

``static_shapes=True`` makes a step a fixed sequence of tensor operations with no host sync, so
``torch.compile(fullgraph=True, dynamic=False)`` turns it into one graph, and that graph can be captured in a CUDA
graph and replayed with one launch. :func:`make_step` builds the callable that :mod:`benchmarks.worker` times for
the ``ours-static``, ``ours-static-compile`` and ``ours-static-cudagraph`` implementations.
"""

from typing import Any, Callable, Optional

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
