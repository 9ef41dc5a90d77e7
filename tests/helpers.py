"""Shared test helpers."""

import io
from typing import Any

import torch

from memoria import Memoria


def reference_kernel(working: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """The reference's exact Gaussian kernel formula (broadcast difference), for bit-exact comparisons."""
    return torch.exp(-((working[:, :, None] - keys[:, None]) ** 2).sum(-1))


def small_memory_settings(width: int) -> dict:
    """``memoria.nn`` settings for a few segments of tests: ``width`` working memories, reminded STM and LTM per
    segment, an STM of twice that, walks of depth 2, lifespan 3."""
    return dict(
        num_working_memories=width,
        stm_capacity=2 * width,
        num_reminded_stm=width,
        num_reminded_ltm=width,
        ltm_search_depth=2,
        initial_lifespan=3,
    )


def rewarded_steps(memoria: Memoria, steps: int, batch_size: int, width: int, hidden_size: int) -> Memoria:
    """``steps`` steps of uniform random working memories shaped [batch_size, width, hidden_size] (drawn from torch's
    generator), every reminded engram rewarded 1; returns ``memoria``."""
    for _ in range(steps):
        memoria.add_working_memory(torch.rand(batch_size, width, hidden_size))
        _, indices = memoria.remind()
        memoria.adjust_lifespan_and_memories(indices, torch.ones(indices.shape))
    return memoria


def saved_and_loaded(state: Any) -> Any:
    """``state`` through ``torch.save`` and back with ``torch.load(..., weights_only=True)``, in memory."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)
