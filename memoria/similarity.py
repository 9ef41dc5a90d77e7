"""Similarity kernels that rank stored engrams against this step's working memory.

A kernel maps working memory shaped [B, W, D] and keys shaped [B, S, D] to per-pair scores shaped [B, W, S];
higher means closer. Recall reduces them over W (see :func:`reduce_scores`). Distances are computed by matrix
products (||w||^2 + ||k||^2 - 2 w.k), never by a broadcast [B, W, S, D] difference.
"""

from typing import Callable, Union

import torch

Kernel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def squared_distance(working: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """Squared euclidean distances.

    Args:
        working: shaped [BatchSize, WorkingLength, HiddenDim].
        keys: shaped [BatchSize, KeyLength, HiddenDim].

    Returns:
        shaped [BatchSize, WorkingLength, KeyLength], clamped at 0 against rounding.
    """
    cross = torch.baddbmm(
        keys.pow(2).sum(-1).unsqueeze(1), working, keys.transpose(1, 2), alpha=-2.0
    )  # [B, W, S] = ||k||^2 - 2 w.k
    return (cross + working.pow(2).sum(-1, keepdim=True)).clamp_(min=0)


def gaussian(working: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """The paper's Gaussian kernel exp(-||w - k||^2), returned in log space: -||w - k||^2.

    The log form ranks exactly like the kernel while staying finite where exp underflows (squared distances
    beyond ~100, which LayerNorm-scale hidden states always reach). Recall averages it with log-mean-exp.
    """
    return -squared_distance(working, keys)


def l2(working: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """Negative squared euclidean distance (what memoria-pytorch 1.1.0 ranks by), averaged arithmetically."""
    return -squared_distance(working, keys)


def cosine(working: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """Cosine similarity; zero vectors (padding) score 0."""
    working = torch.nn.functional.normalize(working, dim=-1)
    keys = torch.nn.functional.normalize(keys, dim=-1)
    return torch.bmm(working, keys.transpose(1, 2))


KERNELS = {"gaussian": gaussian, "l2": l2, "cosine": cosine}


class Similarity:
    """A named or user-supplied kernel together with the way its scores are pooled over working memory.

    Args:
        kernel: "gaussian" (default; log-space Gaussian, pooled by log-mean-exp), "l2" or "cosine" (pooled by
            the mean), or a callable ``f(working [B, W, D], keys [B, S, D]) -> scores [B, W, S]`` pooled by the
            mean, like the reference pools exp(-d^2).
    """

    def __init__(self, kernel: Union[str, Kernel] = "gaussian") -> None:
        if isinstance(kernel, str):
            if kernel not in KERNELS:
                raise ValueError(f"similarity must be one of {sorted(KERNELS)} or a callable, got {kernel!r}")
            self.name = kernel
            self.kernel = KERNELS[kernel]
            self.log_space = kernel == "gaussian"
        elif callable(kernel):
            self.name = getattr(kernel, "__name__", type(kernel).__name__)
            self.kernel = kernel
            self.log_space = False
        else:
            raise TypeError(f"similarity must be a kernel name or a callable, got {type(kernel).__name__}")

    def scores(self, working: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """Pairwise scores shaped [BatchSize, WorkingLength, KeyLength]."""
        scores = self.kernel(working, keys)
        if scores.shape != working.shape[:2] + keys.shape[1:2]:
            raise ValueError(
                f"similarity {self.name} returned shape {tuple(scores.shape)}, expected "
                f"{tuple(working.shape[:2] + keys.shape[1:2])} [BatchSize, WorkingLength, KeyLength]"
            )
        return scores

    def pooled(self, working: torch.Tensor, keys: torch.Tensor, reduce: str = "mean") -> torch.Tensor:
        """Scores pooled over working memory: shaped [BatchSize, KeyLength].

        Args:
            reduce: "mean" (STM recall) or "sum" (final LTM selection), as the reference pools them. Log-space
                kernels are pooled by log-sum-exp, which ranks exactly like the mean or sum of the kernel itself.
        """
        scores = self.scores(working, keys)
        if self.log_space:
            return torch.logsumexp(scores, dim=1)
        return scores.mean(dim=1) if reduce == "mean" else scores.sum(dim=1)

    def __repr__(self) -> str:
        return f"Similarity({self.name})"
