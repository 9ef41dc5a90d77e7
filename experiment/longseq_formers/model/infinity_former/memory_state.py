"""What the infinity-former carries from one segment to the next, per layer and per row."""

from dataclasses import dataclass, field
from typing import List, Optional

import torch


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

    def forget_rows(self, rows: torch.Tensor) -> None:
        """Forgets the chosen rows exactly: their coefficients become zero and their memories invalid.

        Args:
            rows: row indices shaped [NumRows] or a bool mask shaped [BatchSize].
        """
        batch_size = self.batch_size
        if batch_size is None:
            return
        chosen = row_mask(rows, batch_size, self.short_term_valid.device if self.short_term_valid is not None else None)
        if self.short_term_valid is not None:
            self.short_term_valid = self.short_term_valid & ~chosen
        if self.has_long_term is not None:
            chosen = chosen.to(self.has_long_term.device)
            self.has_long_term = self.has_long_term & ~chosen
            self.coefficients = [torch.where(chosen[:, None, None], 0.0, layer) for layer in self.coefficients]


def row_mask(rows: torch.Tensor, batch_size: int, device: Optional[torch.device]) -> torch.Tensor:
    """The bool mask [BatchSize] of ``rows`` (indices [NumRows] or a bool mask [BatchSize]), checked.

    Raises:
        ValueError: when ``rows`` is neither a bool mask of length BatchSize nor indices in [-BatchSize, BatchSize).
    """
    rows = torch.as_tensor(rows)
    if rows.dtype == torch.bool:
        if rows.shape != (batch_size,):
            raise ValueError(f"rows as a bool mask must be shaped [BatchSize] = [{batch_size}], got {list(rows.shape)}")
        return rows.to(device)
    if rows.dtype.is_floating_point or rows.dim() > 1:
        raise ValueError(f"rows must be integer indices shaped [NumRows] or a bool mask, got {rows.dtype} {rows.shape}")
    rows = rows.reshape(-1)
    if rows.numel() and (rows.min() < -batch_size or rows.max() >= batch_size):
        raise ValueError(f"rows must be indices in [-{batch_size}, {batch_size}), got {rows.tolist()}")
    mask = torch.zeros(batch_size, dtype=torch.bool, device=device)
    mask[rows.to(mask.device)] = True
    return mask
