"""Configuration of the Transformer-XL baseline: a decoder with a cached memory of earlier segments' hidden states."""

from huggingface_hub.dataclasses import strict
from transformers import PreTrainedConfig

from ..inputs import check_minimums


@strict
class TransfoXLConfig(PreTrainedConfig):
    """Transformer-XL (Dai et al., 2019) as a segment-recurrent causal LM built on x-transformers.

    Field names follow GPT-2's so that the tasks can set ``vocab_size`` the same way for every model.

    Fields:
        vocab_size: number of token ids.
        n_positions: longest segment the model accepts. Positions are relative, so this is only a guard.
        n_embd: width of the hidden states (d_model).
        n_layer: number of decoder layers.
        n_head: number of attention heads; ``n_embd`` must be divisible by it.
        n_inner: width of the feed-forward layer; a multiple of ``n_embd`` is not required, but
            ``n_inner / n_embd * n_embd`` must round back to ``n_inner``. None: 4 * ``n_embd``.
        mem_len: how many earlier positions each layer keeps in memory (the paper's M), per row.
        rel_pos_num_buckets: number of learned relative-position biases per head (shared by all layers).
        rel_pos_max_distance: distance beyond which every key shares the last bucket; distances up to it are
            bucketed logarithmically (T5's scheme).
        embd_pdrop: dropout on the token embeddings.
        attn_pdrop: dropout on the attention weights.
        resid_pdrop: dropout inside the feed-forward layer.
        initializer_range: standard deviation of the normal initialisation of linear and embedding weights.
        tie_word_embeddings: whether the LM head shares its weights with the token embeddings.
    """

    model_type = "memoria_transfo_xl"
    attribute_map = {
        "hidden_size": "n_embd",
        "num_attention_heads": "n_head",
        "num_hidden_layers": "n_layer",
        "max_position_embeddings": "n_positions",
    }

    vocab_size: int = 50257
    n_positions: int = 1024
    n_embd: int = 768
    n_layer: int = 12
    n_head: int = 12
    n_inner: int | None = None
    mem_len: int = 1024
    rel_pos_num_buckets: int = 32
    rel_pos_max_distance: int = 2048
    embd_pdrop: float | int = 0.1
    attn_pdrop: float | int = 0.1
    resid_pdrop: float | int = 0.1
    initializer_range: float = 0.02
    tie_word_embeddings: bool = True

    def validate_sizes(self) -> None:
        """Rejects sizes the model cannot be built with."""
        sizes = ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head", "rel_pos_num_buckets")
        check_minimums(self, {**dict.fromkeys(sizes, 1), "mem_len": 0})
        if self.n_embd % self.n_head != 0:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head})")
        inner = self.inner_dim
        if int(self.n_embd * (inner / self.n_embd)) != inner:
            raise ValueError(f"n_inner ({inner}) is not reachable as a multiple of n_embd ({self.n_embd})")

    @property
    def inner_dim(self) -> int:
        """Width of the feed-forward layer."""
        return self.n_inner if self.n_inner is not None else 4 * self.n_embd
