"""Transformer-XL (Dai et al., 2019) as a segment-recurrent causal LM, on x-transformers' decoder.

For each segment the model
  1. reads the memory: every layer's input hidden states of earlier segments (at most ``mem_len`` per row), with
     a mask of the slots that are real (not padding, not from before a reset of the row);
  2. runs x-transformers' pre-LayerNorm decoder, each layer attending causally over [memory; segment] with a
     learned relative-position bias;
  3. appends the segment's per-layer inputs to the memory, detached, and evicts the oldest beyond ``mem_len``.

Gradients stop at segment boundaries, as in the paper. The memory lives in the model between calls, in train and
eval mode alike, until :meth:`TransfoXLModel.reset_memory`.
"""

from typing import List, Optional, Tuple

import torch
from transformers import PreTrainedModel
from x_transformers import Decoder, TransformerWrapper

from ..heads import SegmentLMHeadMixin, SegmentModelOutput
from ..inputs import Rows, check_attention_mask, check_batch_size, check_input_ids, rows_to_mask
from ..segment_recurrent import SegmentRecurrentModel
from .configuration_transfo_xl import TransfoXLConfig
from .memory import SegmentMemory


def build_decoder(config: TransfoXLConfig) -> TransformerWrapper:
    """x-transformers' pre-LayerNorm causal decoder with relative-position bias, without absolute positions or head.

    Args:
        config: the model's configuration.

    Returns:
        a ``TransformerWrapper`` that maps token ids shaped [BatchSize, SegmentLength] to final hidden states shaped
        [BatchSize, SegmentLength, HiddenDim].
    """
    return TransformerWrapper(
        num_tokens=config.vocab_size,
        max_seq_len=config.n_positions,
        use_abs_pos_emb=False,
        return_only_embed=True,
        emb_dropout=config.embd_pdrop,
        attn_layers=Decoder(
            dim=config.n_embd,
            depth=config.n_layer,
            heads=config.n_head,
            attn_dim_head=config.n_embd // config.n_head,
            ff_mult=config.inner_dim / config.n_embd,
            attn_dropout=config.attn_pdrop,
            ff_dropout=config.resid_pdrop,
            rel_pos_bias=True,
            rel_pos_num_buckets=config.rel_pos_num_buckets,
            rel_pos_max_distance=config.rel_pos_max_distance,
            verbose=False,
        ),
    )


def check_segment(
    input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor], config: TransfoXLConfig, memory_rows: Optional[int]
) -> torch.Tensor:
    """Validates a segment and returns which of its positions are real.

    Args:
        input_ids: token ids shaped [BatchSize, SegmentLength].
        attention_mask: 1 (or True) at real tokens and 0 at padding, shaped [BatchSize, SegmentLength]; or None.
        config: the model's configuration.
        memory_rows: rows the memory holds, or None while it is empty.

    Returns:
        True at real positions, shaped [BatchSize, SegmentLength].

    Raises:
        ValueError: naming the argument and what was expected.
    """
    check_input_ids(input_ids, config.vocab_size, config.n_positions, "n_positions")
    check_batch_size(memory_rows, input_ids)
    mask = check_attention_mask(attention_mask, input_ids)
    return torch.ones_like(input_ids, dtype=torch.bool) if mask is None else mask


class TransfoXLPreTrainedModel(PreTrainedModel):
    """Weight initialisation and loading shared by the Transformer-XL models."""

    config_class = TransfoXLConfig
    base_model_prefix = "transformer"


class TransfoXLModel(TransfoXLPreTrainedModel, SegmentRecurrentModel):
    """Transformer-XL's body: token embeddings, the decoder, and the per-row memory of earlier segments.

    Subclasses change what the layers read from memory and how a segment is remembered by overriding
    :meth:`build_memory`, :meth:`read_memory`, :meth:`remember` and :meth:`forget`.
    """

    memory_attributes = ("memory",)

    def __init__(self, config: TransfoXLConfig) -> None:
        super().__init__(config)
        self.decoder = build_decoder(config)
        self.build_memory(config)
        self.post_init()

    def build_memory(self, config: TransfoXLConfig) -> None:
        """Creates the memory and whatever modules maintain it (none for Transformer-XL)."""
        self.memory = SegmentMemory(config.mem_len)

    def get_input_embeddings(self) -> torch.nn.Embedding:
        return self.decoder.token_emb.emb

    def set_input_embeddings(self, embeddings: torch.nn.Embedding) -> None:
        self.decoder.token_emb.emb = embeddings

    @property
    def memory_rows(self) -> Optional[int]:
        """Rows the memory holds, or None while it is empty."""
        return self.memory.batch_size

    def reset_memory(self, rows: Optional[Rows] = None) -> None:
        """Forgets every row's memory, or only the chosen rows' (the others stay bit-identical).

        Args:
            rows: row indices shaped [NumRows] or a bool mask shaped [BatchSize]; None resets every row.
        """
        self.forget(None if rows is None else rows_to_mask(rows, self.memory_rows, self.device))

    def forget(self, rows: Optional[torch.Tensor]) -> None:
        """Empties the memory of every row, or of the rows where ``rows`` (bool, [BatchSize]) is True."""
        self.memory.forget(rows)

    def read_memory(self) -> Tuple[Optional[List[torch.Tensor]], Optional[torch.Tensor]]:
        """What each layer attends to before the segment.

        Returns:
            one tensor per layer shaped [BatchSize, MemoryLength, HiddenDim] and the mask of real slots shaped
            [BatchSize, MemoryLength]; (None, None) while the memory is empty.
        """
        return self.memory.layer_states(), self.memory.mask

    def remember(self, layer_inputs: torch.Tensor, valid: torch.Tensor) -> Optional[torch.Tensor]:
        """Appends a segment to the memory.

        Args:
            layer_inputs: the segment's input to every layer shaped [NumLayers, BatchSize, SegmentLength, HiddenDim].
            valid: True at real positions shaped [BatchSize, SegmentLength].

        Returns:
            the weighted auxiliary loss of remembering, or None (Transformer-XL has none).
        """
        self.memory.append(layer_inputs, valid)
        return None

    def _check_runnable(
        self, input_ids: torch.Tensor, memory_states: Optional[List[torch.Tensor]], padded: bool
    ) -> None:
        """Rejects a memory left on another device, and padding in a model cast below float32."""
        if memory_states is not None and memory_states[0].device != input_ids.device:
            raise ValueError(
                f"the memory is on {memory_states[0].device} but input_ids on {input_ids.device}; "
                "call reset_memory() after moving the model"
            )
        if padded and self.dtype != torch.float32 and not torch.is_autocast_enabled(input_ids.device.type):
            raise ValueError(
                f"attention_mask with padding needs float32 weights (x-transformers 2.31.10 mixes dtypes there), "
                f"but the model is {self.dtype}: keep it float32 and use torch.autocast for lower precision"
            )

    def forward(self, input_ids: torch.LongTensor, attention_mask: Optional[torch.Tensor] = None) -> SegmentModelOutput:
        """Runs the next segment of every row, reading from and writing to memory.

        Args:
            input_ids: token ids shaped [BatchSize, SegmentLength]; SegmentLength at most ``n_positions``.
            attention_mask: 1 at real tokens and 0 at padding shaped [BatchSize, SegmentLength], or None (all
                real). Padded positions are never attended to, now or from later segments, but they take a memory
                slot and count in relative distances. Their own outputs are meaningless and must not be scored.

        Returns:
            the final hidden states and the auxiliary loss (None for Transformer-XL).
        """
        valid = check_segment(input_ids, attention_mask, self.config, self.memory_rows)
        padded = not bool(valid.all())
        memory_states, memory_mask = self.read_memory()
        self._check_runnable(input_ids, memory_states, padded)
        hidden, intermediates = self.decoder(
            input_ids,
            mask=valid if padded else None,
            mems=memory_states,
            mem_masks=None if memory_mask is None else [memory_mask] * self.config.n_layer,
            return_intermediates=True,
        )
        layer_inputs = torch.stack(intermediates.hiddens[: self.config.n_layer])  # [N, B, L, D]
        aux_loss = self.remember(layer_inputs, valid)
        return SegmentModelOutput(last_hidden_state=hidden, aux_loss=aux_loss)


class TransfoXLLMHeadModel(SegmentLMHeadMixin, TransfoXLPreTrainedModel):
    """Transformer-XL with a language-model head (tied to the token embeddings unless configured otherwise); takes
    ``labels`` and generates as :mod:`experiment.models.heads` describes."""

    body_class = TransfoXLModel
    _tied_weights_keys = {"lm_head.weight": "transformer.decoder.token_emb.emb.weight"}
