"""Instruments: a synchronising clock, peak memory of this process, per-phase times and CUDA launch counts."""

import functools
import re
import resource
import threading
import time
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List, Optional

import torch

PHASES = ("add", "recall_stm", "seed_ltm", "walk_ltm", "select_ltm", "fire", "adjust")
"""Phases of one step, in order. ``adjust`` is the lifespan update plus compaction; time not inside any phase
(the rest of ``remind``: deduplication, gathering the returned data) is reported as ``other``."""

_OURS_LABELS = {f"memoria.{phase}": phase for phase in PHASES if phase != "add"}

_REFERENCE_METHODS = {
    "add_working_memory": "add",
    "_calculate_memory_weight": "recall_stm",
    "_find_initial_longterm_memory": "seed_ltm",
    "_search_longterm_memories_with_initials": "walk_ltm",
    "_select_final_ltms": "select_ltm",
    "adjust_lifespan_and_memories": "adjust",
}


def synchronize(device: torch.device) -> None:
    """Wait for queued work on ``device`` (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _proc_status_kib(field: str) -> Optional[int]:
    try:
        with open("/proc/self/status") as status:
            match = re.search(rf"^{field}:\s+(\d+)\s+kB", status.read(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1)) if match else None


def current_rss_bytes() -> int:
    """Resident set size of this process now."""
    kib = _proc_status_kib("VmRSS")
    if kib is not None:
        return kib * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakMemory:
    """Peak memory of this process over a window, in bytes above a baseline.

    On CUDA it is the caching allocator's ``max_memory_allocated`` after ``reset_peak_memory_stats``. On CPU it is
    the kernel's high-water mark of resident memory (``VmHWM``), reset at the window's start by writing 5 to
    ``/proc/self/clear_refs``; where that reset is refused, a thread samples ``VmRSS`` every millisecond instead
    (which can miss a short spike) and ``method`` says so.

    Args:
        device: the device whose memory is measured.
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.baseline = self.current()
        self.method = "cuda max_memory_allocated" if device.type == "cuda" else "VmHWM (clear_refs reset)"
        self._sampled_peak = 0
        self._sampler: Optional[threading.Thread] = None
        self._stop = threading.Event()

    def current(self) -> int:
        """Memory in use now (allocated CUDA memory, or resident set size on CPU)."""
        if self.device.type == "cuda":
            return torch.cuda.memory_allocated(self.device)
        return current_rss_bytes()

    def start(self) -> None:
        """Begin a window: reset the peak."""
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        try:
            with open("/proc/self/clear_refs", "w") as clear_refs:
                clear_refs.write("5")
        except OSError:
            self.method = "VmRSS sampled every 1 ms"
            self._sampled_peak = current_rss_bytes()
            self._stop.clear()
            self._sampler = threading.Thread(target=self._sample, daemon=True)
            self._sampler.start()

    def _sample(self) -> None:
        while not self._stop.wait(0.001):
            self._sampled_peak = max(self._sampled_peak, current_rss_bytes())

    def stop(self) -> int:
        """End the window: the peak during it, in bytes, minus the baseline taken at construction."""
        if self.device.type == "cuda":
            return torch.cuda.max_memory_allocated(self.device) - self.baseline
        if self._sampler is not None:
            self._stop.set()
            self._sampler.join()
            self._sampler = None
            return max(self._sampled_peak, current_rss_bytes()) - self.baseline
        hwm = _proc_status_kib("VmHWM")
        return (hwm * 1024 if hwm is not None else current_rss_bytes()) - self.baseline


class PhaseTimer:
    """Seconds spent in each phase of the steps run inside :meth:`record`.

    The reference is timed by wrapping its methods on the instance (and ``Engrams.fire_together_wire_together`` on
    the reference's own class, since the reference replaces its ``engrams`` object as it goes); the wrappers only
    read the clock. Nested phases count toward the outermost one (the reference's final-LTM selection calls its
    weight function again: that time is ``select_ltm``, not ``recall_stm``). Our library labels its phases with
    ``torch.profiler.record_function``; while phases are recorded, ``torch.profiler.record_function`` is replaced
    by a stand-in that reads the clock on entering and leaving those labels (a profiler's per-operator overhead
    would distort the phases), and ``add_working_memory`` is wrapped as above. On CUDA every phase boundary
    synchronises the device, so these steps run slower than the timed ones; ``other`` is the step time not
    inside any phase.

    Args:
        memoria: the instance whose steps are timed.
        impl: ``"ours"`` or ``"reference"``.
        device: the device it runs on.
    """

    def __init__(self, memoria: Any, impl: str, device: torch.device) -> None:
        self.memoria = memoria
        self.impl = impl
        self.device = device
        self.totals: Dict[str, float] = {phase: 0.0 for phase in PHASES}
        self._depth = 0
        self._active = False
        if impl == "reference":
            self._wrap_reference()
        else:
            memoria.add_working_memory = self._timed("add", memoria.add_working_memory)

    @contextmanager
    def _phase(self, phase: str) -> Iterator[None]:
        """Add the time of this block to ``phase``, unless outside :meth:`record` or nested in another phase."""
        if not self._active or self._depth > 0:
            yield
            return
        synchronize(self.device)
        start = time.perf_counter()
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1
            synchronize(self.device)
            self.totals[phase] += time.perf_counter() - start

    def _timed(self, phase: str, function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self._phase(phase):
                return function(*args, **kwargs)

        return wrapper

    def _wrap_reference(self) -> None:
        for method, phase in _REFERENCE_METHODS.items():
            setattr(self.memoria, method, self._timed(phase, getattr(self.memoria, method)))
        engrams_class = type(self.memoria.engrams)
        if not getattr(engrams_class.fire_together_wire_together, "_benchmark_wrapped", False):
            wrapped = self._timed("fire", engrams_class.fire_together_wire_together)
            wrapped._benchmark_wrapped = True  # type: ignore[attr-defined]
            engrams_class.fire_together_wire_together = wrapped

    @contextmanager
    def record(self) -> Iterator[None]:
        """Attribute the time of the steps run inside this block to phases."""
        self._active = True
        original = torch.profiler.record_function
        if self.impl == "ours":
            torch.profiler.record_function = self._label_timer(original)  # type: ignore[misc]
        try:
            yield
        finally:
            self._active = False
            torch.profiler.record_function = original  # type: ignore[misc]

    def _label_timer(self, original: Callable[..., Any]) -> Callable[..., Any]:
        """A stand-in for ``torch.profiler.record_function`` that times our phase labels and passes others on."""

        @contextmanager
        def record_function(name: str, *args: Any, **kwargs: Any) -> Iterator[None]:
            phase = _OURS_LABELS.get(name)
            if phase is None:
                with original(name, *args, **kwargs):
                    yield
                return
            with self._phase(phase):
                yield

        return record_function


_LAUNCH_CALLS = (
    "cudaLaunchKernel",
    "cudaLaunchKernelExC",
    "cuLaunchKernel",
    "cuLaunchKernelEx",
    "cudaLaunchCooperativeKernel",
)
_COPY_CALLS = ("cudaMemcpyAsync", "cudaMemcpy", "cudaMemsetAsync", "cudaMemset")
_SYNC_CALLS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize", "cudaMemcpy")
STEP_LABEL = "benchmark.memoria_call"
"""Label around each call into Memoria in a profiled step; only runtime calls inside it are counted."""


def count_runtime_calls(events: List[Any]) -> Dict[str, Any]:
    """CUDA runtime/driver calls made inside :data:`STEP_LABEL` spans, and CPU operators at top level there.

    Returns:
        ``kernel_launches``, ``copies_and_memsets``, ``host_syncs`` (stream/device/event synchronisations and
        synchronous copies), ``aten_ops`` (operators called directly by the library, not those nested in them),
        and ``runtime_calls``: every CUDA runtime/driver call by name.
    """
    host = torch.autograd.DeviceType.CPU
    spans = [(e.time_range.start, e.time_range.end) for e in events if e.name == STEP_LABEL and e.device_type == host]

    def inside(event: Any) -> bool:
        return any(start <= event.time_range.start <= end for start, end in spans)

    counts = {"kernel_launches": 0, "copies_and_memsets": 0, "host_syncs": 0, "aten_ops": 0}
    runtime: Dict[str, int] = {}
    for event in events:
        name = event.name
        if name.startswith("cu") and event.device_type == host and inside(event):
            runtime[name] = runtime.get(name, 0) + 1
        if name in _LAUNCH_CALLS and inside(event):
            counts["kernel_launches"] += 1
        if name in _COPY_CALLS and inside(event):
            counts["copies_and_memsets"] += 1
        if name in _SYNC_CALLS and inside(event):
            counts["host_syncs"] += 1
        if name.startswith("aten::") and inside(event):
            parent = event.cpu_parent
            while parent is not None and not parent.name.startswith("aten::") and parent.name != STEP_LABEL:
                parent = parent.cpu_parent
            if parent is None or parent.name == STEP_LABEL:
                counts["aten_ops"] += 1
    return {**counts, "runtime_calls": runtime}
