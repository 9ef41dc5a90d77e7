"""Configuration of the infinity-former: GPT-2 plus a continuous, unbounded long-term memory."""

from dataclasses import field
from typing import List, Optional

from huggingface_hub.dataclasses import strict
from transformers import GPT2Config

from ..inputs import check_minimums


@strict
class InfinityFormerConfig(GPT2Config):
    """GPT-2's configuration plus the fields of the infinity-former's memories (Martins et al., 2022).

    Every GPT-2 field (``n_layer``, ``n_embd``, ``n_head``, ``n_inner``, ``n_positions``, ``vocab_size``, the
    dropouts, ...) keeps its meaning. ``n_positions`` only needs to cover one segment, because each segment
    starts again at position 0.

    Memory fields:
        short_term_memory: each layer also attends, like Transformer-XL, to its own normalised inputs of the
            previous segment (a short-term memory one segment long: memory length = segment length); a segment
            enters the long-term memory when it leaves the short-term one. False:
            no short-term memory; each segment enters the long-term memory right after it is read.
        ltm_num_basis: N, the number of Gaussian radial basis functions the long-term memory is fitted onto
            (its size: N coefficient vectors per layer and row, whatever the length of the past).
        ltm_basis_widths: the widths (standard deviations) of the basis functions; N is split evenly between
            them, and each width's centres lie on an even grid over [0, 1] (the paper: 0.005 and 0.01).
        ltm_ridge_penalty: lambda, the ridge-regression penalty of the fit (the paper: 0.5).
        ltm_tau: tau in (0, 1): the old signal is contracted into [0, tau] and the new states fill [tau, 1].
        ltm_num_samples: M, how many points of the old signal are sampled to re-fit it; None: as many as the
            states entering the memory (one segment), so old and new points are equally dense.
        ltm_sticky_memories: sample those points from the histogram of the attention the memory received
            (sticky memories); False: sample them evenly over [0, 1].
        ltm_sticky_bins: the number of histogram bins over [0, 1] (the paper: 128).
        ltm_kl_weight: weight of the KL regulariser between each query's Gaussian and the reference Gaussian
            N(mu, ltm_kl_reference_std^2), returned as ``aux_loss`` (the paper: 1e-6).
        ltm_kl_reference_std: sigma_0, the standard deviation of the reference Gaussian.
    """

    model_type = "infinity_former"

    short_term_memory: bool = True
    ltm_num_basis: int = 1024
    ltm_basis_widths: List[float] = field(default_factory=lambda: [0.005, 0.01])
    ltm_ridge_penalty: float = 0.5
    ltm_tau: float = 0.5
    ltm_num_samples: Optional[int] = None
    ltm_sticky_memories: bool = True
    ltm_sticky_bins: int = 128
    ltm_kl_weight: float = 1e-6
    ltm_kl_reference_std: float = 0.05

    def validate_infinity_former(self) -> None:
        """Raises ValueError naming the first memory field out of range."""
        widths = list(self.ltm_basis_widths)
        if not widths or any(width <= 0 for width in widths):
            raise ValueError(f"ltm_basis_widths must be positive numbers, got {self.ltm_basis_widths}")
        if self.ltm_num_basis <= 0 or self.ltm_num_basis % len(widths) != 0:
            raise ValueError(
                f"ltm_num_basis must be a positive multiple of len(ltm_basis_widths) = {len(widths)}, "
                f"got {self.ltm_num_basis}"
            )
        if not 0 < self.ltm_tau < 1:
            raise ValueError(f"ltm_tau must lie in (0, 1), got {self.ltm_tau}")
        if self.ltm_ridge_penalty <= 0:
            raise ValueError(f"ltm_ridge_penalty must be positive, got {self.ltm_ridge_penalty}")
        check_minimums(self, {"ltm_num_samples": 1, "ltm_sticky_bins": 1}, may_be_none=("ltm_num_samples",))
        if self.ltm_kl_weight < 0 or self.ltm_kl_reference_std <= 0:
            raise ValueError(
                f"ltm_kl_weight must be >= 0 and ltm_kl_reference_std > 0, got {self.ltm_kl_weight} and "
                f"{self.ltm_kl_reference_std}"
            )
