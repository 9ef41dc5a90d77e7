"""The whole-step paths that `benchmarks/gpu.sh` times (benchmarks/whole_step.py, worker.py), on the CPU where they
can run there: eager and compiled static steps, and a worker measurement of the compiled row."""

import pytest
import torch

from benchmarks.settings import Setting
from benchmarks.whole_step import CudaGraphStep, eager_step, make_step
from benchmarks.worker import measure
from benchmarks.workload import Workload, build_memoria, implementation_kwargs, load_implementation

TINY = Setting("tiny", 2, 4, 16, 8, 3, 3, 2, 4, 12)


def memoria_for(impl: str, device: str = "cpu"):
    return build_memoria(load_implementation(impl), TINY, torch.device(device), **implementation_kwargs(impl, TINY))


def inputs(workload: Workload, steps: int):
    return [(workload.hidden_states("timed", i), workload.delta_logits("timed", i)) for i in range(steps)]


def test_static_implementations_build_a_static_paper_memoria():
    memoria = memoria_for("ours-static-compile")
    assert memoria.mode == "paper" and memoria.max_ltm_per_row == TINY.static_ltm_capacity
    assert implementation_kwargs("ours", TINY) == {}


def test_the_compiled_step_gives_the_eager_step_results():
    torch._dynamo.reset()
    workload = Workload(TINY, 0, torch.device("cpu"))
    eager, compiled = memoria_for("ours-static"), memoria_for("ours-static-compile")
    steps = inputs(workload, 12)
    run_eager = make_step(eager, "ours-static", *steps[0])
    run_compiled = make_step(compiled, "ours-static-compile", *steps[0], backend="aot_eager")
    for hidden, logits in steps:
        assert torch.equal(run_eager(hidden, logits), run_compiled(hidden, logits))
    assert torch.equal(eager.store.induce_counts, compiled.store.induce_counts)


def test_a_cuda_graph_step_needs_cuda_inputs():
    workload = Workload(TINY, 0, torch.device("cpu"))
    with pytest.raises(ValueError, match="CUDA graph needs CUDA inputs"):
        CudaGraphStep(eager_step(memoria_for("ours-static")), *inputs(workload, 1)[0])


def test_a_worker_measures_the_compiled_row():
    torch._dynamo.reset()
    config = {
        "impl": "ours-static-compile",
        "device": "cpu",
        "seed": 0,
        "setting": TINY.to_dict(),
        "warmup": 5,
        "steps": 4,
        "compile_backend": "aot_eager",
    }
    result = measure(config)
    assert result["step_seconds"]["steps"] == 4 and result["prepare_seconds"] > 0
    assert result["engrams_per_row"]["live"] > 0


@pytest.mark.cuda
def test_the_captured_step_replays_like_the_eager_step():
    workload = Workload(TINY, 0, torch.device("cuda"))
    eager, captured = memoria_for("ours-static", "cuda"), memoria_for("ours-static-cudagraph", "cuda")
    steps = inputs(workload, 12)
    run_eager = eager_step(eager)
    for _ in range(3):  # CudaGraphStep runs its example step three times before capture
        run_eager(*steps[0])
    run_captured = CudaGraphStep(eager_step(captured), *steps[0], warmup=3)
    for hidden, logits in steps[1:]:
        assert torch.equal(run_eager(hidden, logits), run_captured(hidden, logits))
    assert torch.equal(eager.store.induce_counts, captured.store.induce_counts)
