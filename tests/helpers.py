"""Shared test helpers."""

import torch


def reference_kernel(working: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """The reference's exact Gaussian kernel formula (broadcast difference), for bit-exact comparisons."""
    return torch.exp(-((working[:, :, None] - keys[:, None]) ** 2).sum(-1))
