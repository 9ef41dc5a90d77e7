"""What the infinity-former carries from one segment to the next, per layer and per row, and how a segment is
written into it."""

from dataclasses import dataclass, field
from typing import List, Optional

import torch

from ..inputs import Rows, rows_to_mask
from ..segment_recurrent import carried_type
from .configuration_infinity_former import InfinityFormerConfig
from .continuous_signal import GaussianBasis, attention_histogram, even_positions, sample_positions


@dataclass
class BlockReadout:
    """What a block hands back besides its output.

    Args:
        normed: the block's normalised inputs, detached, shaped [BatchSize, SegmentLength, HiddenDim]: what this
            layer's memories store.
        mu: the long-term Gaussians' means shaped [BatchSize, NumHeads, SegmentLength], or None without a
            long-term memory.
        variance: their variances, shaped like ``mu``, or None.
    """

    normed: torch.Tensor
    mu: Optional[torch.Tensor] = None
    variance: Optional[torch.Tensor] = None


@carried_type
@dataclass
class InfinityFormerMemory:
    """The memories of every layer, all detached.

    Attributes:
        short_term: per layer, the normalised layer inputs of the previous segment, each shaped
            [BatchSize, ShortTermLength, HiddenDim]; empty when there is no short-term memory yet.
        short_term_valid: True for rows whose short-term memory belongs to the current stream, shaped [BatchSize].
        coefficients: per layer, the long-term signal's basis coefficients B, each shaped
            [BatchSize, NumBasis, HiddenDim] (float32); empty before anything entered the long-term memory.
        has_long_term: True for rows whose long-term memory holds something, shaped [BatchSize].
    """

    short_term: List[torch.Tensor] = field(default_factory=list)
    short_term_valid: Optional[torch.Tensor] = None
    coefficients: List[torch.Tensor] = field(default_factory=list)
    has_long_term: Optional[torch.Tensor] = None

    @property
    def batch_size(self) -> Optional[int]:
        """The number of rows held, or None while the memory is empty."""
        for rows in (self.short_term_valid, self.has_long_term):
            if rows is not None:
                return rows.numel()
        return None

    def forget_rows(self, rows: Rows) -> None:
        """Forgets the chosen rows exactly: their coefficients become zero and their memories invalid.

        Args:
            rows: row indices shaped [NumRows] or a bool mask shaped [BatchSize].
        """
        held = self.short_term_valid if self.short_term_valid is not None else self.has_long_term
        chosen = rows_to_mask(rows, self.batch_size, None if held is None else held.device)
        if chosen is None:
            return
        if self.short_term_valid is not None:
            self.short_term_valid = self.short_term_valid & ~chosen
        if self.has_long_term is not None:
            chosen = chosen.to(self.has_long_term.device)
            self.has_long_term = self.has_long_term & ~chosen
            self.coefficients = [torch.where(chosen[:, None, None], 0.0, layer) for layer in self.coefficients]

    @torch.no_grad()
    def write(self, readouts: List[BlockReadout], basis: GaussianBasis, config: InfinityFormerConfig) -> None:
        """Moves a segment's states into the memories: into the short-term memory, and what leaves it (or the
        segment itself, without a short-term memory) into the long-term self.

        Args:
            readouts: one per layer, from the segment just read.
            basis: the long-term signal's basis functions.
            config: the model's configuration (memory fields).
        """
        batch_size = readouts[0].normed.size(0)
        device = readouts[0].normed.device
        all_rows = torch.ones(batch_size, dtype=torch.bool, device=device)
        if config.short_term_memory:
            incoming = self.short_term or None
            incoming_valid = self.short_term_valid
            self.short_term = [readout.normed for readout in readouts]
            self.short_term_valid = all_rows
        else:
            incoming, incoming_valid = [readout.normed for readout in readouts], all_rows
        if incoming is None:
            return
        if not self.coefficients:
            self.coefficients = [None] * len(readouts)
            self.has_long_term = torch.zeros(batch_size, dtype=torch.bool, device=device)
        self.coefficients = [
            updated_long_term(
                basis, config, self.coefficients[layer], self.has_long_term, states, incoming_valid, readout
            )
            for layer, (states, readout) in enumerate(zip(incoming, readouts))
        ]
        self.has_long_term = self.has_long_term | incoming_valid


def updated_long_term(
    basis: GaussianBasis,
    config: InfinityFormerConfig,
    coefficients: Optional[torch.Tensor],
    has_long_term: torch.Tensor,
    incoming: torch.Tensor,
    incoming_valid: torch.Tensor,
    readout: BlockReadout,
) -> torch.Tensor:
    """One layer's new coefficients: old signal sampled into [0, tau] and ``incoming`` on [tau, 1], re-fitted.

    Rows without a long-term memory fit ``incoming`` alone over [0, 1]; rows whose ``incoming`` is invalid
    (reset since it was stored) keep their coefficients.

    Args:
        basis: the long-term signal's basis functions.
        config: the model's configuration (memory fields).
        coefficients: B shaped [BatchSize, NumBasis, HiddenDim], or None when no row has any.
        has_long_term: shaped [BatchSize].
        incoming: the states entering the memory shaped [BatchSize, P, HiddenDim].
        incoming_valid: shaped [BatchSize].
        readout: this layer's readout of the segment (the attention histogram of sticky memories).

    Returns:
        shaped [BatchSize, NumBasis, HiddenDim], float32.
    """
    device = incoming.device
    num_incoming = incoming.size(1)
    fresh = basis.fit(incoming, even_positions(0.0, 1.0, num_incoming), config.ltm_ridge_penalty)
    if coefficients is None:
        return torch.where(incoming_valid[:, None, None], fresh, 0.0)

    num_samples = config.ltm_num_samples or num_incoming
    if config.ltm_sticky_memories and readout.mu is not None:
        histogram = attention_histogram(readout.mu, readout.variance, config.ltm_sticky_bins)  # [B, Bins]
        sample_at = sample_positions(histogram, num_samples)  # [B, M]
    else:
        sample_at = even_positions(0.0, 1.0, num_samples, device).expand(incoming.size(0), -1)  # [B, M]
    old = basis.reconstruct(coefficients, sample_at)  # [B, M, D]
    positions = torch.cat(
        [even_positions(0.0, config.ltm_tau, num_samples), even_positions(config.ltm_tau, 1.0, num_incoming)]
    )
    continued = basis.fit(torch.cat([old, incoming.float()], dim=1), positions, config.ltm_ridge_penalty)
    updated = torch.where(has_long_term[:, None, None], continued, fresh)
    return torch.where(incoming_valid[:, None, None], updated, coefficients)
