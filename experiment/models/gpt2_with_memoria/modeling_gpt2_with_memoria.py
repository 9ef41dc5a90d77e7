"""The Memoria Transformer: a GPT-2-style causal LM that reads segment by segment and remembers through Memoria.

The memory is a ``memoria.nn.MemoriaMemory`` (``model.transformer.memory``) and each block's two memory reads a
``memoria.nn.MemoryReader`` (``block.memory_reader``). For each segment the model
  1. makes working memory: the Abstractor's summary of the previous segment's final hidden states, which are
     detached (or those hidden states themselves when ``memoria_num_memories`` is None);
  2. hands a detached copy to Memoria and gets back the reminded engrams (``memory.read``);
  3. runs every block: causal self-attention, a memory cross-attention to the working memory, the same
     cross-attention module again to the reminded engrams (padding indices masked; each read has its own
     LayerNorm), then the MLP;
  4. gives each reminded engram lifespan from the attention it received, and keeps its final hidden states for
     the next segment (``memory.write``).

That is the paper's architecture. ``memoria_shared_memory_attention: false`` gives each read its own
cross-attention module, and ``memoria_lifespan_delta: "renormalised"`` the renormalised lifespan delta (see
``memoria.nn.lifespan_delta``).

Gradients stop at segment boundaries (the hidden states the Abstractor reads are detached) but reach the
Abstractor and the memory cross-attention through the current segment's loss. ``state_dict()`` holds the memory
(``transformer.memory._extra_state``); ``save_pretrained`` leaves it out. Models saved before the memory parts came
from ``memoria.nn`` load with their old parameter names (``legacy_key_renames``).
"""

import math
from dataclasses import dataclass
from typing import Optional, Tuple, Type

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedConfig, PreTrainedModel
from transformers.activations import ACT2FN

from memoria.nn import Memories, MemoryCrossAttention, MemoryReader

from ..heads import SegmentCausalLMOutput, SegmentLMHeadMixin
from ..inputs import check_attention_mask, check_input_ids
from ..with_memoria import MemoriaModelMixin, MemoriaPreTrainedMixin
from .configuration_gpt2_with_memoria import GPT2WithMemoriaConfig


@dataclass
class GPT2WithMemoriaOutput(SegmentCausalLMOutput):
    """Output of one segment, of the body (``loss`` and ``logits`` None) or of the LM, plus what Memoria reminded;
    ``aux_loss`` is always None.

    Args:
        reminded_indices: Memoria's indices of the reminded engrams shaped [BatchSize, NumReminded]; -1 is padding.
        lifespan_delta: lifespan each reminded engram earned shaped [BatchSize, NumReminded].
    """

    reminded_indices: Optional[torch.LongTensor] = None
    lifespan_delta: Optional[torch.FloatTensor] = None


def gpt2_init_weights(
    config: PreTrainedConfig, module: nn.Module, residual_classes: Tuple[Type[nn.Module], ...]
) -> None:
    """GPT-2's scaling of residual projections: ``module.c_proj`` (``out_proj`` for a memory cross-attention) drawn
    from normal(0, initializer_range / sqrt(2 n_layer)) when ``module`` is one of ``residual_classes`` (the rest is
    transformers' usual init)."""
    if isinstance(module, residual_classes):
        std = config.initializer_range / math.sqrt(2 * config.n_layer)
        projection = module.out_proj if isinstance(module, MemoryCrossAttention) else module.c_proj
        nn.init.normal_(projection.weight, mean=0.0, std=std)


class CausalSelfAttention(nn.Module):
    """GPT-2's masked multi-head self-attention (parameter names and shapes as GPT-2's, in nn.Linear layout)."""

    def __init__(self, config: GPT2WithMemoriaConfig) -> None:
        super().__init__()
        self.num_heads = config.n_head
        self.dropout = config.attn_pdrop
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.resid_dropout = nn.Dropout(config.resid_pdrop)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Attends each position to itself and the positions before it.

        Args:
            hidden: shaped [BatchSize, SegmentLength, HiddenDim].

        Returns:
            shaped [BatchSize, SegmentLength, HiddenDim].
        """
        batch_size, length, hidden_dim = hidden.shape
        query, key, value = self.c_attn(hidden).split(hidden_dim, dim=-1)
        query, key, value = (
            x.view(batch_size, length, self.num_heads, -1).transpose(1, 2) for x in (query, key, value)
        )
        dropout = self.dropout if self.training else 0.0
        attended = F.scaled_dot_product_attention(
            query, key, value, dropout_p=dropout, is_causal=True
        )  # [B, H, L, D/H]
        attended = attended.transpose(1, 2).reshape(batch_size, length, hidden_dim)
        return self.resid_dropout(self.c_proj(attended))


class MLP(nn.Module):
    """GPT-2's position-wise feed-forward network."""

    def __init__(self, config: GPT2WithMemoriaConfig) -> None:
        super().__init__()
        inner_dim = config.n_inner if config.n_inner is not None else 4 * config.n_embd
        self.c_fc = nn.Linear(config.n_embd, inner_dim)
        self.act = ACT2FN[config.activation_function]
        self.c_proj = nn.Linear(inner_dim, config.n_embd)
        self.dropout = nn.Dropout(config.resid_pdrop)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """Maps ``hidden`` shaped [BatchSize, SegmentLength, HiddenDim] to the same shape."""
        return self.dropout(self.c_proj(self.act(self.c_fc(hidden))))


class GPT2WithMemoriaBlock(nn.Module):
    """A GPT-2 block that also reads the working memory and the reminded memories by cross-attention.

    ``memory_reader`` (a ``memoria.nn.MemoryReader``) holds the two reads' LayerNorms and one cross-attention module
    used for both (the paper's), or two (working memory first, then reminded) when
    ``memoria_shared_memory_attention`` is false.
    """

    def __init__(self, config: GPT2WithMemoriaConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.attn = CausalSelfAttention(config)
        self.memory_reader = MemoryReader(
            config.n_embd,
            config.n_head,
            shared_attention=config.memoria_shared_memory_attention,
            attention_dropout=config.attn_pdrop,
            dropout=config.resid_pdrop,
            layer_norm_eps=config.layer_norm_epsilon,
        )
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.mlp = MLP(config)

    @property
    def memory_attn(self) -> nn.ModuleList:
        """The memory cross-attention module(s): one for both reads, or the working then the reminded one."""
        return self.memory_reader.attention

    def forward(self, hidden: torch.Tensor, memories: Memories) -> Tuple[torch.Tensor, torch.Tensor]:
        """Runs self-attention, the two memory reads and the MLP, each as a pre-norm residual step.

        Args:
            hidden: shaped [BatchSize, SegmentLength, HiddenDim].
            memories: the segment's working memory and reminded engrams, with their masks (``memory.read``).

        Returns:
            the new hidden states shaped [BatchSize, SegmentLength, HiddenDim] and the attention weights to the
            reminded memories shaped [BatchSize, NumHeads, SegmentLength, NumReminded].
        """
        hidden = hidden + self.attn(self.ln_1(hidden))
        hidden, reminded_weights = self.memory_reader(hidden, memories)
        hidden = hidden + self.mlp(self.ln_2(hidden))
        return hidden, reminded_weights


class GPT2WithMemoriaPreTrainedModel(MemoriaPreTrainedMixin, PreTrainedModel):
    """Weight initialisation and loading shared by the Memoria Transformer's models."""

    config_class = GPT2WithMemoriaConfig
    base_model_prefix = "transformer"
    _no_split_modules = ["GPT2WithMemoriaBlock"]

    def _init_weights(self, module: nn.Module) -> None:
        """GPT-2's initialisation: normal(0, initializer_range), residual projections scaled by 1/sqrt(2 n_layer)."""
        super()._init_weights(module)
        gpt2_init_weights(self.config, module, (CausalSelfAttention, MemoryCrossAttention, MLP))


class GPT2WithMemoriaModel(MemoriaModelMixin, GPT2WithMemoriaPreTrainedModel):
    """The Memoria Transformer's body: embeddings, blocks, final LayerNorm, and the memory (the Abstractor and
    Memoria, ``self.memory``).

    Memory persists across calls; reset it with :meth:`reset_memory` before a new batch of samples.
    """

    _input_embed_layer = "wte"
    legacy_key_renames = (
        (r"(?<!\w)(h\.\d+)\.memory_attn\.0\.c_proj\.", r"\1.memory_reader.attention.0.out_proj."),
        (r"(?<!\w)(h\.\d+)\.memory_attn\.1\.c_proj\.", r"\1.memory_reader.attention.1.out_proj."),
        (r"(?<!\w)(h\.\d+)\.memory_attn\.", r"\1.memory_reader.attention."),
        (r"(?<!\w)(h\.\d+)\.ln_working\.", r"\1.memory_reader.ln_working."),
        (r"(?<!\w)(h\.\d+)\.ln_reminded\.", r"\1.memory_reader.ln_reminded."),
        (r"(?<![\w.])abstractor\.", "memory.abstractor."),
        (r"(?<![\w.])transformer\.abstractor\.", "transformer.memory.abstractor."),
    )

    def __init__(self, config: GPT2WithMemoriaConfig) -> None:
        config.validate()  # fields set after construction (from_pretrained's keyword arguments) are checked here
        super().__init__(config)
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.n_positions, config.n_embd)
        self.drop = nn.Dropout(config.embd_pdrop)
        self.h = nn.ModuleList([GPT2WithMemoriaBlock(config) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.memory = config.build_memory(
            config.n_embd,
            lifespan_rule=config.memoria_lifespan_delta,
            working_memory="previous",
            abstractor_feedforward_size=config.n_inner or 4 * config.n_embd,
            keep_history=config.memoria_keep_history,
        )
        self.post_init()

    def forward(
        self, input_ids: torch.LongTensor, attention_mask: Optional[torch.Tensor] = None
    ) -> GPT2WithMemoriaOutput:
        """Runs the next segment of every row, reading from and writing to memory.

        Args:
            input_ids: token ids shaped [BatchSize, SegmentLength]; SegmentLength at most ``n_positions``.
            attention_mask: None, or all ones shaped [BatchSize, SegmentLength]: this model does not take padding.

        Returns:
            the final hidden states, the reminded indices and the lifespan they earned.
        """
        check_input_ids(input_ids, self.config.vocab_size, self.config.n_positions, "n_positions")
        check_attention_mask(attention_mask, input_ids, takes_padding=False)
        self.check_segment_rows(input_ids)
        length = input_ids.size(1)

        hidden = self.drop(self.wte(input_ids) + self.wpe(torch.arange(length, device=input_ids.device)))
        memories = self.memory.read(hidden)
        attention_to_reminded = []
        for block in self.h:
            hidden, weights = block(hidden, memories)
            attention_to_reminded.append(weights)
        hidden = self.ln_f(hidden)
        lifespan_delta = self.memory.write(attention_to_reminded, hidden)
        return GPT2WithMemoriaOutput(
            last_hidden_state=hidden, reminded_indices=memories.reminded_indices, lifespan_delta=lifespan_delta
        )


class GPT2WithMemoriaLMHeadModel(SegmentLMHeadMixin, GPT2WithMemoriaPreTrainedModel):
    """The Memoria Transformer with a language-model head tied to the token embeddings; takes ``labels`` and
    generates as :mod:`experiment.models.heads` describes (Memoria's engrams are restored after ``generate``)."""

    body_class = legacy_body_class = GPT2WithMemoriaModel
    output_class = GPT2WithMemoriaOutput
    _tied_weights_keys = {"lm_head.weight": "transformer.wte.weight"}
