"""What a model does to Memoria each step, generated identically for every implementation.

Hidden states are LayerNorm outputs of Gaussian noise (each vector has mean 0 and variance 1 across D),
and lifespan deltas are what a model's attention gives: softmax weights over the reminded engrams of a
row, summing to 1, times the number reminded, times ``alpha``. Every tensor is drawn from its own
generator seeded by (seed, phase, step), so the inputs of a step do not depend on what an implementation
did before it, nor on how many warm-up steps it took.
"""

from typing import Any, Dict, Optional

import torch
import torch.nn.functional as F

from benchmarks.settings import Setting

ALPHA = 8.0
"""Lifespan scale of the paper's configs."""

_PHASE_CODES = {"warmup": 1, "timed": 2, "phases": 3, "build": 4, "profile": 5, "prepare": 6}

IMPLEMENTATIONS = ("reference", "ours", "ours-static", "ours-static-compile", "ours-static-cudagraph")
"""What a benchmark can measure: memoria-pytorch 1.0.0; ours (default settings); ours with ``static_shapes=True``
(``mode="paper"``, the setting's ``static_ltm_capacity``), stepped eagerly, as one ``torch.compile``d step, or as
that compiled step captured in a CUDA graph and replayed (CUDA only; benchmarks/whole_step.py)."""


def load_implementation(impl: str) -> Any:
    """The ``memoria`` module under test: this repository's for every ``"ours..."`` implementation, or
    memoria-pytorch 1.0.0 for ``"reference"``."""
    if impl not in IMPLEMENTATIONS:
        raise ValueError(f"unknown implementation {impl!r}: expected one of {IMPLEMENTATIONS}")
    if impl == "reference":
        from tools.oracle import load_reference

        return load_reference("1.0.0")
    import memoria

    return memoria


def implementation_kwargs(impl: str, setting: Setting) -> Dict[str, Any]:
    """Constructor arguments beyond the setting's that ``impl`` needs (the static-shape ones for ``ours-static*``)."""
    return setting.static_kwargs() if impl.startswith("ours-static") else {}


def implementation_version(module: Any) -> str:
    """The module's ``__version__``, or ``"unknown"``."""
    return str(getattr(module, "__version__", "unknown"))


def _generator(seed: int, phase: str, step: int) -> torch.Generator:
    generator = torch.Generator()
    generator.manual_seed(seed * 1_000_003 + _PHASE_CODES[phase] * 100_003 + step)
    return generator


class Workload:
    """Inputs for one setting: hidden states per step and lifespan deltas for the indices ``remind`` returns.

    Args:
        setting: shapes and configuration.
        seed: the seed every input is derived from.
        device: where inputs are placed (generation always happens on CPU, so every device sees the same numbers).
    """

    def __init__(self, setting: Setting, seed: int, device: torch.device) -> None:
        self.setting = setting
        self.seed = seed
        self.device = device
        self.max_reminded = setting.num_reminded_stm + setting.num_final_ltms + 1

    def hidden_states(self, phase: str, step: int, length: Optional[int] = None) -> torch.Tensor:
        """LayerNorm-scale hidden states shaped [B, W, D] (W = ``length`` or the setting's working length)."""
        s = self.setting
        noise = torch.randn(
            s.batch_size, length or s.working_length, s.hidden_dim, generator=_generator(self.seed, phase, step)
        )
        return F.layer_norm(noise, (s.hidden_dim,)).to(self.device)  # [B, W, D]

    def delta_logits(self, phase: str, step: int) -> torch.Tensor:
        """Attention logits for the reminded engrams, shaped [B, max reminded]; slice to the width ``remind`` gave."""
        generator = _generator(self.seed, phase, step + 50_000)
        return torch.randn(self.setting.batch_size, self.max_reminded, generator=generator).to(self.device)

    @staticmethod
    def lifespan_delta(indices: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """Attention-like lifespan deltas for ``indices`` shaped [B, R]: per row, softmax over the non-padding
        entries, times their number, times ``ALPHA``; padding (-1) gets 0. Runs on the indices' device with no
        host synchronisation."""
        width = indices.shape[1]
        if logits.shape[1] < width:
            repeats = -(-width // logits.shape[1])
            logits = logits.repeat(1, repeats)
        valid = indices >= 0  # [B, R]
        scores = logits[:, :width].masked_fill(~valid, float("-inf"))
        weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)  # rows with nothing reminded give 0
        count = valid.sum(dim=-1, keepdim=True).to(weights.dtype)
        return weights * count * ALPHA  # [B, R]


def build_memoria(module: Any, setting: Setting, device: Optional[torch.device], **overrides: Any) -> Any:
    """A ``Memoria`` of ``module`` configured by ``setting`` (``overrides`` replace constructor arguments)."""
    kwargs = {**setting.memoria_kwargs(), **overrides}
    return module.Memoria(**kwargs, device=device)


def census(memoria: Any) -> Dict[str, float]:
    """Engrams per row, averaged over rows: live, working, short-term, long-term; and the padded length N."""
    engrams = memoria.store if hasattr(memoria, "store") else memoria.engrams  # ours: EngramStore; 1.0.0: Engrams
    types = engrams.engrams_types if engrams is not None else None  # [B, N]
    if types is None or types.numel() == 0:
        return {"live": 0.0, "working": 0.0, "shortterm": 0.0, "longterm": 0.0, "padded_length": 0}
    rows = types.shape[0]
    counts = torch.stack([(types == kind).sum() for kind in (1, 2, 3)]).tolist()
    working, shortterm, longterm = (c / rows for c in counts)
    return {
        "live": working + shortterm + longterm,
        "working": working,
        "shortterm": shortterm,
        "longterm": longterm,
        "padded_length": int(types.shape[1]),
    }
