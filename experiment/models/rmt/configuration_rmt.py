"""Configuration of the Recurrent Memory Transformer baseline (Bulatov et al., 2022)."""

from typing import Optional

from huggingface_hub.dataclasses import strict
from transformers import PretrainedConfig

from ..inputs import check_minimums


@strict
class RMTConfig(PretrainedConfig):
    """The fields of lucidrains' ``RecurrentMemoryTransformer`` core plus how memory is carried between segments.

    The GPT-2 names ``n_positions``, ``n_embd``, ``n_layer`` and ``n_head`` read (and write) ``max_segment_length``,
    ``hidden_size``, ``num_hidden_layers`` and ``num_attention_heads``, so a harness written for GPT-2 configs can
    ask for them.

    Transformer fields:
        vocab_size: number of token ids.
        hidden_size: model width D.
        num_hidden_layers: number of Transformer blocks.
        num_attention_heads: attention heads per block.
        head_dim: width of one head; None: ``hidden_size // num_attention_heads``.
        ff_mult: feed-forward expansion. The library's feed-forward block is a GEGLU whose inner width is
            ``int(hidden_size * ff_mult * 2 / 3)``, so ``ff_mult`` 4 has the parameters of a plain
            ``4 * hidden_size`` MLP.
        max_segment_length: the longest segment one call may take (the size of the absolute position table).
        attn_dropout: dropout on the attention weights.
        ff_dropout: dropout inside the feed-forward block.
        rotary_pos_emb: use rotary position embeddings in attention; required with ``use_xl_memories``. The core
            places the XL keys before the segment's own (memory tokens at position 0), so a segment's tokens tell
            the previous segment's cached keys from their own by distance.
        abs_pos_emb: add learned absolute position embeddings to the tokens. They restart at 0 in every segment, so
            alone they give an XL key exactly the key of the same token at the same position of the segment: the
            first layer cannot tell what the segment holds from what the previous one held (on sorting, the RMT
            then never learnt not to repeat a symbol it had emitted).
        num_residual_streams: hyper-connection residual streams of the library; 1 is a plain pre-norm residual.

    Memory fields:
        num_memory_tokens: M, the memory tokens read at the start of a segment and written at its end.
        use_xl_memories: also carry each layer's keys and values of the previous segment (Transformer-XL memory).
        xl_mem_len: how many positions of keys and values each layer keeps; at most ``max_segment_length``
            (the library's limit). The kept positions are the last ones of [read memory, segment, write memory]:
            the last ``num_memory_tokens`` of them are the written memory tokens, so the XL memory covers the
            previous segment's last ``xl_mem_len - num_memory_tokens`` tokens.
        enhanced_xl_recurrence: the library's option to feed each layer the next layer's XL memory.
        memory_not_causal: let the write memory tokens attend to the whole segment, as in the RMT paper.
        bptt_segments: how many segment boundaries the loss of a segment reaches back through the memory tokens
            in training (truncated backpropagation through time; the RMT paper unrolls a few segments). The model
            keeps the memory tokens in the graph until ``detach_memory()``; the experiment tasks build the graph of
            the ``bptt_segments`` segments before each segment with a loss and cut the memory before them. 0
            detaches the memory tokens at every boundary, which leaves the memory-writing path without gradient:
            what a segment writes is then never trained. XL memories are always detached.
        embedding_init_std: None keeps the library's initialisation of the token and position embeddings (a
            standard normal, whose rows' norm sqrt(D) dwarfs what the first layers add to the residual stream); a
            number draws them from a normal of that standard deviation (0.02: GPT-2's, the pretrained models the
            RMT paper starts from).
        emb_gradient_frac: the fraction of the gradient that reaches the token and position embeddings (the
            library's CogView trick, default 0.1 there); 1.0, the full gradient, is how the RMT paper trains.
        tie_word_embeddings: False: the core keeps separate token embeddings and output layer.
    """

    model_type = "memoria_rmt"
    attribute_map = {
        "n_positions": "max_segment_length",
        "max_position_embeddings": "max_segment_length",
        "n_embd": "hidden_size",
        "n_layer": "num_hidden_layers",
        "n_head": "num_attention_heads",
    }

    vocab_size: int = 50257
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    head_dim: Optional[int] = None
    ff_mult: float | int = 4.0
    max_segment_length: int = 1024
    attn_dropout: float | int = 0.0
    ff_dropout: float | int = 0.0
    rotary_pos_emb: bool = True
    abs_pos_emb: bool = False
    num_residual_streams: int = 1
    num_memory_tokens: int = 128
    use_xl_memories: bool = True
    xl_mem_len: int = 896
    enhanced_xl_recurrence: bool = False
    memory_not_causal: bool = True
    bptt_segments: int = 1
    emb_gradient_frac: float | int = 1.0
    embedding_init_std: Optional[float] = None
    tie_word_embeddings: bool = False

    def validate_rmt_fields(self) -> None:
        """Rejects sizes the library cannot build, naming the field."""
        sizes = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "head_dim")
        sizes += ("max_segment_length", "num_memory_tokens", "num_residual_streams")
        check_minimums(self, {**dict.fromkeys(sizes, 1), "bptt_segments": 0}, may_be_none=("head_dim",))
        if self.ff_mult <= 0:
            raise ValueError(f"ff_mult must be positive, got {self.ff_mult}")
        if self.use_xl_memories and not 1 <= self.xl_mem_len <= self.max_segment_length:
            raise ValueError(
                f"xl_mem_len must be in [1, max_segment_length={self.max_segment_length}], got {self.xl_mem_len}"
            )
        if not 0.0 <= self.emb_gradient_frac <= 1.0:
            raise ValueError(f"emb_gradient_frac must be in [0, 1], got {self.emb_gradient_frac}")
        if self.embedding_init_std is not None and self.embedding_init_std <= 0:
            raise ValueError(f"embedding_init_std must be positive or None, got {self.embedding_init_std}")
        if not self.abs_pos_emb and not self.rotary_pos_emb:
            raise ValueError("at least one of abs_pos_emb and rotary_pos_emb must be True: tokens need positions")
        if self.use_xl_memories and not self.rotary_pos_emb:
            raise ValueError(
                "use_xl_memories needs rotary_pos_emb=True: absolute positions restart in every segment, so without "
                "rotary positions the XL keys are those of the segment's own tokens at the same positions"
            )

    @property
    def total_memory(self) -> int:
        """Vectors of memory a row carries between segments: memory tokens plus XL positions per layer."""
        return self.num_memory_tokens + (self.xl_mem_len if self.use_xl_memories else 0)
