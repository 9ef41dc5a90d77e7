"""The Compressive Transformer (Rae et al., 2020): Transformer-XL plus a compressed memory of what it forgets.

For each segment the model
  1. lets every layer attend causally over [compressed memory; memory; segment] (x-transformers' decoder, as in
     the Transformer-XL baseline, with the relative-position bias running over all three);
  2. appends the segment's per-layer inputs to the memory; the oldest slots beyond ``mem_len`` are evicted, a
     multiple of the compression rate c at a time;
  3. compresses each layer's evicted slots with that layer's 1-D convolution (kernel and stride c) into
     ``NumEvicted / c`` slots and appends them to the compressed memory (at most ``cmem_len``, oldest dropped);
  4. returns the attention-reconstruction loss of step 3 as ``aux_loss``: for every layer, the squared
     difference between content-based attention of the segment's queries over the evicted slots and over their
     compression, with the attention's parameters and all inputs but the compression frozen, so that this loss
     trains only the convolutions (and the language-model loss never reaches them: the compressed memory is
     stored detached).

A compressed slot is real when any of the c slots it stands for was real; the slots that were not are zeros.
"""

from typing import List, Optional, Tuple

import torch
from torch import nn
from torch.func import functional_call
from x_transformers import TransformerWrapper
from x_transformers.x_transformers import Attention

from ..transfo_xl.memory import SegmentMemory
from ..transfo_xl.modeling_transfo_xl import TransfoXLLMHeadModel, TransfoXLModel
from .configuration_compressive import CompressiveTransformerConfig


class MemoryCompression(nn.Module):
    """One 1-D convolution per layer, with kernel and stride ``compression_rate`` (the paper's best choice)."""

    def __init__(self, config: CompressiveTransformerConfig) -> None:
        super().__init__()
        rate = config.compression_rate
        self.convs = nn.ModuleList(
            [nn.Conv1d(config.n_embd, config.n_embd, kernel_size=rate, stride=rate) for _ in range(config.n_layer)]
        )

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        """Compresses every layer's slots c to 1.

        Args:
            states: shaped [NumLayers, BatchSize, NumEvicted, HiddenDim]; NumEvicted a multiple of c.

        Returns:
            shaped [NumLayers, BatchSize, NumEvicted / c, HiddenDim].
        """
        compressed = [conv(layer.transpose(1, 2)).transpose(1, 2) for conv, layer in zip(self.convs, states)]
        return torch.stack(compressed)


def frozen(module: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """Runs ``module`` on ``inputs`` with its parameters detached, so no gradient reaches them."""
    parameters = {name: parameter.detach() for name, parameter in module.named_parameters()}
    return functional_call(module, parameters, (inputs,))


def content_attention(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, key_mask: torch.Tensor
) -> torch.Tensor:
    """Softmax attention without positions over the keys ``key_mask`` keeps; zero for a row with none.

    Args:
        query: shaped [BatchSize, NumHeads, SegmentLength, HeadDim].
        key: shaped [BatchSize, NumHeads, NumKeys, HeadDim].
        value: shaped [BatchSize, NumHeads, NumKeys, HeadDim].
        key_mask: True at real keys shaped [BatchSize, NumKeys].

    Returns:
        shaped [BatchSize, NumHeads, SegmentLength, HeadDim].
    """
    scores = query @ key.transpose(-1, -2) * query.size(-1) ** -0.5  # [B, H, L, K]
    keep = key_mask[:, None, None, :]  # [B, 1, 1, K]
    weights = scores.masked_fill(~keep, torch.finfo(scores.dtype).min).softmax(dim=-1) * keep
    return weights @ value


def attention_layers(decoder: TransformerWrapper) -> List[Tuple[nn.Module, Attention]]:
    """Each decoder layer's pre-attention norm and self-attention module, bottom to top."""
    return [(norms[0], block) for norms, block, _ in decoder.attn_layers.layers if isinstance(block, Attention)]


def attention_reconstruction_loss(
    decoder: TransformerWrapper,
    layer_inputs: torch.Tensor,
    valid: torch.Tensor,
    evicted: torch.Tensor,
    evicted_mask: torch.Tensor,
    compressed: torch.Tensor,
    compressed_mask: torch.Tensor,
) -> torch.Tensor:
    """The paper's attention-reconstruction loss, averaged over layers; its gradient reaches only ``compressed``.

    Args:
        decoder: the model's decoder, whose attention parameters are used frozen.
        layer_inputs: the segment's input to every layer shaped [NumLayers, BatchSize, SegmentLength, HiddenDim].
        valid: True at the segment's real positions shaped [BatchSize, SegmentLength].
        evicted: the slots leaving the memory shaped [NumLayers, BatchSize, NumEvicted, HiddenDim].
        evicted_mask: True at real evicted slots shaped [BatchSize, NumEvicted].
        compressed: their compression shaped [NumLayers, BatchSize, NumCompressed, HiddenDim].
        compressed_mask: True at real compressed slots shaped [BatchSize, NumCompressed].

    Returns:
        a scalar: the mean over layers of the squared error averaged over the real query positions of the rows
        that evicted something real, and over heads and channels.
    """
    counted = (valid & evicted_mask.any(dim=-1, keepdim=True)).to(layer_inputs.dtype)  # [B, L]
    losses = []
    for (norm, attention), inputs, old, new in zip(attention_layers(decoder), layer_inputs, evicted, compressed):
        num_heads = attention.heads

        def heads(projection: nn.Module, states: torch.Tensor) -> torch.Tensor:
            projected = frozen(projection, frozen(norm, states))  # [B, T, H * Dh]
            return projected.view(*projected.shape[:2], num_heads, -1).transpose(1, 2)  # [B, H, T, Dh]

        query = heads(attention.to_q, inputs.detach())
        target = content_attention(query, heads(attention.to_k, old), heads(attention.to_v, old), evicted_mask)
        estimate = content_attention(query, heads(attention.to_k, new), heads(attention.to_v, new), compressed_mask)
        error = (target - estimate).pow(2).mean(dim=(1, 3))  # [B, L]
        losses.append((error * counted).sum() / counted.sum().clamp_min(1.0))
    return torch.stack(losses).mean()


class CompressiveTransformerModel(TransfoXLModel):
    """The Compressive Transformer's body: Transformer-XL's, with a compressed memory and its compression."""

    memory_attributes = ("memory", "compressed_memory")

    config_class = CompressiveTransformerConfig

    def build_memory(self, config: CompressiveTransformerConfig) -> None:
        """Creates the memory, the compressed memory and the per-layer compression."""
        self.memory = SegmentMemory(config.mem_len)
        self.compressed_memory = SegmentMemory(config.cmem_len)
        self.compression = MemoryCompression(config)

    @property
    def memory_rows(self) -> Optional[int]:
        """Rows the memories hold, or None while both are empty."""
        rows = [memory.batch_size for memory in (self.memory, self.compressed_memory)]
        return next((row for row in rows if row is not None), None)

    def forget(self, rows: Optional[torch.Tensor]) -> None:
        """Empties both memories of every row, or of the rows where ``rows`` (bool, [BatchSize]) is True."""
        self.memory.forget(rows)
        self.compressed_memory.forget(rows)

    def read_memory(self) -> Tuple[Optional[List[torch.Tensor]], Optional[torch.Tensor]]:
        """[compressed memory; memory] for each layer, oldest first.

        Returns:
            one tensor per layer shaped [BatchSize, CompressedLength + MemoryLength, HiddenDim] and the mask of
            real slots shaped [BatchSize, CompressedLength + MemoryLength]; (None, None) while both are empty.
        """
        present = [memory for memory in (self.compressed_memory, self.memory) if memory.states is not None]
        if not present:
            return None, None
        states = torch.cat([memory.states for memory in present], dim=2)  # [N, B, C + M, D]
        mask = torch.cat([memory.mask for memory in present], dim=1)  # [B, C + M]
        return list(states.unbind(0)), mask

    def remember(self, layer_inputs: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Appends a segment to the memory and compresses what leaves it into the compressed memory.

        Args:
            layer_inputs: the segment's input to every layer shaped [NumLayers, BatchSize, SegmentLength, HiddenDim].
            valid: True at real positions shaped [BatchSize, SegmentLength].

        Returns:
            the weighted attention-reconstruction loss, a scalar; zero when nothing left the memory.
        """
        rate = self.config.compression_rate
        evicted, evicted_mask = self.memory.append(layer_inputs, valid, evict_multiple=rate)
        if evicted_mask.size(1) == 0:
            return layer_inputs.new_zeros(())
        compressed = self.compression(evicted)  # [N, B, E / c, D]
        compressed_mask = evicted_mask.view(evicted_mask.size(0), -1, rate).any(dim=-1)  # [B, E / c]
        loss = attention_reconstruction_loss(
            self.decoder, layer_inputs, valid, evicted, evicted_mask, compressed, compressed_mask
        )
        self.compressed_memory.append(compressed, compressed_mask)
        return self.config.reconstruction_loss_weight * loss


class CompressiveTransformerLMHeadModel(TransfoXLLMHeadModel):
    """The Compressive Transformer with a language-model head; ``aux_loss`` carries the reconstruction loss."""

    config_class = CompressiveTransformerConfig
    body_class = CompressiveTransformerModel
