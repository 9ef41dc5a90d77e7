"""Counting what a step asks of the device: dispatched aten ops and host synchronisations.

On a GPU, a Memoria step is bound by kernel launches and host-device synchronisations, not by arithmetic. Both
can be counted on the CPU: :class:`DispatchCounter` sees every aten op that PyTorch dispatches (each one a kernel
launch on CUDA, except views, which launch nothing) and flags the ops that make the host wait for the device
(``.item()``, ``int(t)``, ``bool(t)``, ``if t.any():``, ``.tolist()``, ``nonzero``, ``unique``, ``masked_select``,
boolean-mask indexing, ``torch.equal``, ``repeat_interleave`` without ``output_size``).

Run ``python -m benchmarks.counting --setting lm --impl both`` to count a steady-state step of ours and of
memoria-pytorch 1.0.0 side by side (``--impl all`` adds ours with ``static_shapes=True``, ``ours-static``). Ours
takes CPU-tuned variants on a CPU (``memoria.utils.tuned_for_cpu``); ``--path accelerator`` counts, still on the
CPU, the path a CUDA device takes, which is the figure that matters for GPUs (``--path both`` prints the two).
"""

import argparse
import contextlib
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

import torch
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten

SYNC_OPS = {
    aten._local_scalar_dense.default,  # .item(), int(t), float(t), bool(t), if t:
    aten.nonzero.default,
    aten.nonzero.out,
    aten._unique2.default,
    aten.unique_dim.default,
    aten.unique_consecutive.default,
    aten.unique_dim_consecutive.default,
    aten.masked_select.default,
    aten.equal.default,
}
"""Ops whose output size or value the host must read before it can go on."""

_INDEX_OPS = {aten.index.Tensor, aten.index_put.default, aten.index_put_.default, aten._index_put_impl_.default}


def _is_sync(func: Any, args: tuple, kwargs: Dict[str, Any]) -> bool:
    if func in SYNC_OPS:
        return True
    if func in _INDEX_OPS:  # boolean-mask indexing runs nonzero inside the kernel
        indices = args[1] if len(args) > 1 else kwargs.get("indices", ())
        return any(isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) for i in indices)
    if func is aten.repeat_interleave.Tensor:  # without output_size the output length is read from the device
        return kwargs.get("output_size") is None
    return False


@dataclass
class Counts:
    """What a block of code dispatched.

    Attributes:
        ops: non-view aten ops (kernel launches on CUDA).
        syncs: host-device synchronisations.
        by_op: non-view ops by name.
        sync_ops: synchronisations by name (``tolist`` for ``Tensor.tolist``).
    """

    ops: int = 0
    syncs: int = 0
    by_op: Counter = field(default_factory=Counter)
    sync_ops: Counter = field(default_factory=Counter)

    def __add__(self, other: "Counts") -> "Counts":
        return Counts(
            self.ops + other.ops, self.syncs + other.syncs, self.by_op + other.by_op, self.sync_ops + other.sync_ops
        )

    def scaled(self, factor: float) -> Dict[str, Any]:
        """Per-unit figures (for example per step) as a JSON-ready dict, the most frequent ops first."""
        return {
            "ops": self.ops * factor,
            "syncs": self.syncs * factor,
            "by_op": {name: n * factor for name, n in self.by_op.most_common()},
            "sync_ops": {name: n * factor for name, n in self.sync_ops.most_common()},
        }


class DispatchCounter(TorchDispatchMode):
    """A dispatch mode that counts non-view aten ops and host synchronisations while it is active.

    Ops of other namespaces (``profiler::_record_function_enter_new`` of ``torch.profiler.record_function``) mark
    ranges for a profiler and launch nothing: they are not counted.

    ``Tensor.tolist`` does not dispatch an aten op, so it is counted by wrapping the method while the mode is on.

    Example:
        >>> with DispatchCounter() as counter:
        ...     step()
        >>> counter.counts.ops, counter.counts.syncs
    """

    def __init__(self) -> None:
        super().__init__()
        self.counts = Counts()
        self._tolist: Optional[Callable] = None

    def __enter__(self) -> "DispatchCounter":
        self._tolist = torch.Tensor.tolist
        counts, tolist = self.counts, self._tolist

        def counted_tolist(tensor: torch.Tensor) -> Any:
            counts.syncs += 1
            counts.sync_ops["tolist"] += 1
            return tolist(tensor)

        torch.Tensor.tolist = counted_tolist  # type: ignore[method-assign]
        return super().__enter__()

    def __exit__(self, *exc: Any) -> None:
        torch.Tensor.tolist = self._tolist  # type: ignore[method-assign]
        return super().__exit__(*exc)

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: Optional[Dict[str, Any]] = None):
        kwargs = kwargs or {}
        if not func.is_view and func.namespace == "aten":  # not profiler ranges, which launch nothing
            name = str(func.overloadpacket).removeprefix("aten.")
            self.counts.ops += 1
            self.counts.by_op[name] += 1
            if _is_sync(func, args, kwargs):
                self.counts.syncs += 1
                self.counts.sync_ops[name] += 1
        return func(*args, **kwargs)


def count(fn: Callable[[], Any]) -> Counts:
    """Runs ``fn()`` once and returns what it dispatched."""
    with DispatchCounter() as counter:
        fn()
    return counter.counts


def count_library_step(
    impl: str, setting_name: str, warmup: int, steps: int, seed: int = 0, path: str = "cpu"
) -> Dict[str, Any]:
    """Counts steady-state steps (add -> remind -> adjust) of one implementation at one benchmark setting.

    Args:
        impl: "ours", "ours-static" (``static_shapes=True``, eager) or "reference" (memoria-pytorch 1.0.0).
        setting_name: a :data:`benchmarks.settings.SETTINGS` name.
        warmup: uncounted steps first, so that memory reaches its steady state.
        steps: counted steps; the result is their mean.
        path: for ours, "cpu" (what a CPU runs) or "accelerator" (what a CUDA device runs, counted on the CPU
            under ``memoria.utils.accelerator_path``); 1.0.0 has one path.

    Returns:
        ``{"impl", "path", "setting", "steps", "per_step": {"ops", "syncs", "by_op", "sync_ops"}, "phases":
        {phase: {"ops", "syncs"}}}``.
    """
    with _path(impl, path):
        result = _count_steps(impl, setting_name, warmup, steps, seed)
    return {"impl": impl, "path": path if impl == "ours" else "-", **result}


def _path(impl: str, path: str) -> Any:
    if path not in ("cpu", "accelerator"):
        raise ValueError(f"path must be 'cpu' or 'accelerator', got {path!r}")
    if impl == "ours" and path == "accelerator":
        from memoria.utils import accelerator_path

        return accelerator_path()
    return contextlib.nullcontext()


def _count_steps(impl: str, setting_name: str, warmup: int, steps: int, seed: int) -> Dict[str, Any]:
    from benchmarks.settings import SETTINGS
    from benchmarks.workload import Workload, build_memoria, implementation_kwargs, load_implementation

    setting = SETTINGS[setting_name]
    torch.manual_seed(seed)
    memoria = build_memoria(load_implementation(impl), setting, None, **implementation_kwargs(impl, setting))
    workload = Workload(setting, seed, torch.device("cpu"))
    phases = {"add_working_memory": Counts(), "remind": Counts(), "adjust_lifespan_and_memories": Counts()}
    for index in range(warmup + steps):
        counted = index >= warmup
        hidden = workload.hidden_states("warmup", index)
        phases["add_working_memory"] += _maybe_count(lambda: memoria.add_working_memory(hidden), counted)
        reminded: List[Any] = []
        phases["remind"] += _maybe_count(lambda: reminded.append(memoria.remind()), counted)
        indices = reminded[0][1]
        delta = workload.lifespan_delta(indices, workload.delta_logits("warmup", index))
        phases["adjust_lifespan_and_memories"] += _maybe_count(
            lambda: memoria.adjust_lifespan_and_memories(indices, delta), counted
        )
    total = sum(phases.values(), Counts())
    return {
        "setting": setting_name,
        "steps": steps,
        "warmup": warmup,
        "per_step": total.scaled(1 / steps),
        "phases": {name: {"ops": c.ops / steps, "syncs": c.syncs / steps} for name, c in phases.items()},
    }


def _maybe_count(fn: Callable[[], Any], counted: bool) -> Counts:
    if counted:
        return count(fn)
    fn()
    return Counts()


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.counting",
        description="Count dispatched non-view aten ops and host syncs per steady-state Memoria step (CPU is fine).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--setting", default="lm", help="benchmark setting (benchmarks/settings.py)")
    parser.add_argument(
        "--impl",
        choices=("ours", "reference", "ours-static", "both", "all"),
        default="both",
        help="both: reference and ours; all: also ours-static (static_shapes=True)",
    )
    parser.add_argument(
        "--path",
        choices=("cpu", "accelerator", "both"),
        default="both",
        help="ours: the CPU-tuned path, the path a CUDA device takes (counted on CPU), or both",
    )
    parser.add_argument("--warmup", type=int, default=30, help="uncounted steps before counting")
    parser.add_argument("--steps", type=int, default=5, help="counted steps (the figures are their mean)")
    parser.add_argument("--top", type=int, default=15, help="most frequent ops to list")
    parser.add_argument("--json", help="also write the counts to this JSON file")
    args = parser.parse_args(argv)
    impls = {"both": ("reference", "ours"), "all": ("reference", "ours", "ours-static")}.get(args.impl, (args.impl,))
    paths = ("cpu", "accelerator") if args.path == "both" else (args.path,)
    runs = [(impl, path) for impl in impls for path in (paths if impl == "ours" else ("cpu",))]
    results = [count_library_step(impl, args.setting, args.warmup, args.steps, path=path) for impl, path in runs]
    print(f"setting {args.setting}: mean over {args.steps} steps after {args.warmup} warm-up steps")
    print(f"| {'implementation':<14} | {'path':<11} | {'ops/step':>9} | {'syncs/step':>10} | add | remind | adjust |")
    print(f"|{'-' * 16}|{'-' * 13}|{'-' * 11}|{'-' * 12}|-----|--------|--------|")
    for result in results:
        per_step, phases = result["per_step"], result["phases"]
        split = " | ".join(f"{p['ops']:.0f}/{p['syncs']:.0f}" for p in phases.values())
        print(
            f"| {result['impl']:<14} | {result['path']:<11} | {per_step['ops']:>9.1f} | {per_step['syncs']:>10.1f} "
            f"| {split} |"
        )
    print("(add, remind, adjust: ops/syncs per phase)")
    for result in results:
        name = result["impl"] if result["impl"] == "reference" else f"{result['impl']} ({result['path']})"
        top = list(result["per_step"]["by_op"].items())[: args.top]
        print(f"\n{name}: most frequent ops per step: " + ", ".join(f"{n} {c:.0f}" for n, c in top))
        print(
            f"{name}: syncs per step: " + ", ".join(f"{n} {c:.0f}" for n, c in result["per_step"]["sync_ops"].items())
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
