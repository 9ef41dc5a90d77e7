"""The infinity-former (Martins et al., 2022): a GPT-2-style causal LM with an unbounded continuous long-term memory.

For each segment, every block
  1. runs causal self-attention over the segment and, when ``short_term_memory`` is on, over its own normalised
     inputs of the previous segment (the short-term memory);
  2. adds the continuous long-term attention: each query q gets a Gaussian N(mu, sigma^2) over [0, 1] with
     mu = sigmoid(w_mu^T K q), sigma^2 = softplus(w_sigma^T K q), K = B W_K, and reads
     z = V^T E_p[psi(t)], V = B W_V (continuous softmax over the signal x(t) = B^T psi(t));
  3. runs the MLP.
Afterwards the states leaving the short-term memory (or the segment itself when there is none) enter the long-term
memory: M points of the old signal, sampled evenly or from the histogram of the attention it received (sticky
memories), are placed on [0, tau], the new states on [tau, 1], and the coefficients B are re-fitted by ridge
regression. A KL regulariser between each query's Gaussian and N(mu, sigma_0^2) is returned as ``aux_loss``.

Every memory is detached: gradients stop at segment boundaries but reach every projection of the current segment.
"""

import math
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel

from ..gpt2_with_memoria.modeling_gpt2_with_memoria import MLP, gpt2_init_weights
from ..heads import SegmentLMHeadMixin, SegmentModelOutput
from ..inputs import Rows, check_attention_mask, check_batch_size, check_input_ids
from ..segment_recurrent import SegmentRecurrentModel
from .configuration_infinity_former import InfinityFormerConfig
from .continuous_signal import GaussianBasis, kl_to_reference
from .memory import BlockReadout, InfinityFormerMemory


class ShortTermSelfAttention(nn.Module):
    """GPT-2's causal self-attention whose keys and values also cover a short-term memory of earlier states.

    Memory states get a learned embedding added before the key and value projections, so that the attention can
    tell them apart from the segment's own states at the same GPT-2 positions.
    """

    def __init__(self, config: InfinityFormerConfig) -> None:
        super().__init__()
        self.num_heads = config.n_head
        self.dropout = config.attn_pdrop
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.memory_embedding = nn.Parameter(torch.zeros(config.n_embd))
        self.resid_dropout = nn.Dropout(config.resid_pdrop)

    def forward(
        self, normed: torch.Tensor, short_term: Optional[torch.Tensor], short_term_valid: Optional[torch.Tensor]
    ) -> torch.Tensor:
        """Attends each position to the valid memory and to itself and the positions before it.

        Args:
            normed: normalised states of the segment shaped [BatchSize, SegmentLength, HiddenDim].
            short_term: normalised states of the previous segment shaped [BatchSize, ShortTermLength, HiddenDim],
                or None.
            short_term_valid: which rows' memory may be attended shaped [BatchSize], or None.

        Returns:
            shaped [BatchSize, SegmentLength, HiddenDim].
        """
        batch_size, length, hidden_dim = normed.shape
        memory_length = 0 if short_term is None else short_term.size(1)
        sources = normed if memory_length == 0 else torch.cat([short_term + self.memory_embedding, normed], dim=1)
        query, key, value = self.c_attn(sources).split(hidden_dim, dim=-1)
        query = query[:, memory_length:]
        query, key, value = (
            x.view(batch_size, x.size(1), self.num_heads, -1).transpose(1, 2) for x in (query, key, value)
        )
        dropout = self.dropout if self.training else 0.0
        if memory_length == 0:
            attended = F.scaled_dot_product_attention(query, key, value, dropout_p=dropout, is_causal=True)
        else:
            causal = torch.ones(length, length, dtype=torch.bool, device=normed.device).tril()  # [L, L]
            memory = short_term_valid[:, None, None].expand(batch_size, length, memory_length)  # [B, L, S]
            mask = torch.cat([memory, causal.expand(batch_size, length, length)], dim=-1)[:, None]  # [B, 1, L, S+L]
            attended = F.scaled_dot_product_attention(query, key, value, attn_mask=mask, dropout_p=dropout)
        attended = attended.transpose(1, 2).reshape(batch_size, length, hidden_dim)  # [B, L, D]
        return self.resid_dropout(self.c_proj(attended))


class ContinuousAttention(nn.Module):
    """Multi-head continuous attention over the long-term signal x(t) = B^T psi(t), t in [0, 1]."""

    def __init__(self, config: InfinityFormerConfig, basis: GaussianBasis) -> None:
        super().__init__()
        self.basis = basis
        self.num_heads = config.n_head
        self.head_dim = config.n_embd // config.n_head
        self.q_proj = nn.Linear(config.n_embd, config.n_embd)
        self.kv_proj = nn.Linear(config.n_embd, 2 * config.n_embd)
        self.mu_proj = nn.Linear(config.ltm_num_basis, 1, bias=False)
        self.variance_proj = nn.Linear(config.ltm_num_basis, 1, bias=False)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd)
        self.resid_dropout = nn.Dropout(config.resid_pdrop)

    def forward(
        self, normed: torch.Tensor, coefficients: torch.Tensor, has_memory: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reads the long-term signal with one Gaussian per query and head.

        Args:
            normed: normalised states of the segment shaped [BatchSize, SegmentLength, HiddenDim].
            coefficients: B shaped [BatchSize, NumBasis, HiddenDim].
            has_memory: rows whose signal holds something shaped [BatchSize]; the others get zero output.

        Returns:
            the long-term context shaped [BatchSize, SegmentLength, HiddenDim], and the Gaussians' means and
            variances, each shaped [BatchSize, NumHeads, SegmentLength].
        """
        batch_size, length, hidden_dim = normed.shape
        query = self.q_proj(normed).view(batch_size, length, self.num_heads, self.head_dim).transpose(1, 2)
        key, value = self.kv_proj(coefficients.to(normed.dtype)).split(hidden_dim, dim=-1)
        key, value = (x.view(batch_size, -1, self.num_heads, self.head_dim).transpose(1, 2) for x in (key, value))

        mu, variance = self._gaussians(query, key)
        weights = self.basis.expectation(mu, variance)  # [B, H, L, N]: E_p[psi(t)], float32

        context = (weights.to(value.dtype) @ value).transpose(1, 2).reshape(batch_size, length, hidden_dim)
        return self.resid_dropout(self.c_proj(context)) * has_memory[:, None, None], mu, variance

    def _gaussians(self, query: torch.Tensor, key: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """mu = sigmoid(w_mu^T s) and sigma^2 = softplus(w_sigma^T s) with s = K q / sqrt(d).

        Computed as (K^T w) . q / sqrt(d), which never forms s [BatchSize, NumHeads, SegmentLength, NumBasis], and
        in float32 even under autocast (basis widths of 0.005 need more than bf16's precision).

        Args:
            query: shaped [BatchSize, NumHeads, SegmentLength, HeadDim].
            key: K shaped [BatchSize, NumHeads, NumBasis, HeadDim].

        Returns:
            mu and sigma^2, each shaped [BatchSize, NumHeads, SegmentLength].
        """
        with torch.autocast(device_type=query.device.type, enabled=False):
            readers = torch.cat([self.mu_proj.weight, self.variance_proj.weight]).float()  # [2, N]: w_mu, w_sigma
            directions = readers @ key.float()  # [B, H, 2, d]: K^T w_mu, K^T w_sigma
            logits = query.float() @ directions.transpose(-1, -2) / math.sqrt(self.head_dim)  # [B, H, L, 2]
            mu, variance = torch.sigmoid(logits[..., 0]), F.softplus(logits[..., 1])
        return mu, variance.clamp_min(torch.finfo(variance.dtype).tiny)


class InfinityFormerBlock(nn.Module):
    """A GPT-2 block whose attention is short-term self-attention plus continuous long-term attention."""

    def __init__(self, config: InfinityFormerConfig, basis: GaussianBasis) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.attn = ShortTermSelfAttention(config)
        self.ltm_attn = ContinuousAttention(config, basis)
        self.ln_2 = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.mlp = MLP(config)

    def forward(
        self,
        hidden: torch.Tensor,
        short_term: Optional[torch.Tensor],
        short_term_valid: Optional[torch.Tensor],
        coefficients: Optional[torch.Tensor],
        has_long_term: Optional[torch.Tensor],
    ) -> Tuple[torch.Tensor, BlockReadout]:
        """Runs attention (short-term plus long-term, summed) and the MLP, each as a pre-norm residual step.

        Args:
            hidden: shaped [BatchSize, SegmentLength, HiddenDim].
            short_term: shaped [BatchSize, ShortTermLength, HiddenDim], or None.
            short_term_valid: shaped [BatchSize], or None.
            coefficients: the long-term signal's B shaped [BatchSize, NumBasis, HiddenDim], or None.
            has_long_term: shaped [BatchSize], or None.

        Returns:
            the new hidden states shaped [BatchSize, SegmentLength, HiddenDim] and the block's readout.
        """
        normed = self.ln_1(hidden)
        attended = self.attn(normed, short_term, short_term_valid)
        readout = BlockReadout(normed=normed.detach())
        if coefficients is not None:
            long_term, readout.mu, readout.variance = self.ltm_attn(normed, coefficients, has_long_term)
            attended = attended + long_term
        hidden = hidden + attended
        hidden = hidden + self.mlp(self.ln_2(hidden))
        return hidden, readout


class InfinityFormerPreTrainedModel(PreTrainedModel):
    """Weight initialisation and loading shared by the infinity-former's models."""

    config_class = InfinityFormerConfig
    base_model_prefix = "transformer"
    _no_split_modules = ["InfinityFormerBlock"]

    def _init_weights(self, module: nn.Module) -> None:
        """GPT-2's initialisation (see ``gpt2_init_weights``); the memory embedding drawn like an embedding."""
        super()._init_weights(module)
        gpt2_init_weights(self.config, module, (ShortTermSelfAttention, ContinuousAttention, MLP))
        if isinstance(module, ShortTermSelfAttention):
            nn.init.normal_(module.memory_embedding, mean=0.0, std=self.config.initializer_range)


class InfinityFormerModel(InfinityFormerPreTrainedModel, SegmentRecurrentModel):
    """The infinity-former's body: embeddings, blocks, final LayerNorm, and the memories of every layer.

    Memory persists across calls (``self.memory``, detached); reset it with :meth:`reset_memory` before a new
    batch of samples.
    """

    memory_attributes = ("memory",)
    _input_embed_layer = "wte"

    def __init__(self, config: InfinityFormerConfig) -> None:
        super().__init__(config)
        self.basis = GaussianBasis(config.ltm_num_basis, config.ltm_basis_widths)
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.n_positions, config.n_embd)
        self.drop = nn.Dropout(config.embd_pdrop)
        self.h = nn.ModuleList([InfinityFormerBlock(config, self.basis) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.n_embd, eps=config.layer_norm_epsilon)
        self.memory = InfinityFormerMemory()
        self.post_init()

    def reset_memory(self, rows: Optional[Rows] = None) -> None:
        """Forgets both memories, for every row or only for ``rows`` (the other rows stay bit-identical).

        Args:
            rows: row indices shaped [NumRows] or a bool mask shaped [BatchSize]; None resets every row.
        """
        if rows is None:
            self.memory = InfinityFormerMemory()
        else:
            self.memory.forget_rows(rows)

    def forward(self, input_ids: torch.LongTensor, attention_mask: Optional[torch.Tensor] = None) -> SegmentModelOutput:
        """Runs the next segment of every row, reading from and then writing to memory.

        Args:
            input_ids: token ids shaped [BatchSize, SegmentLength]; SegmentLength at most ``n_positions``.
            attention_mask: None or all ones shaped [BatchSize, SegmentLength] (padding inside a segment is not
                supported: padded states would enter the memories).

        Returns:
            the final hidden states and the weighted KL regulariser.
        """
        self._check_inputs(input_ids, attention_mask)
        length = input_ids.size(1)
        hidden = self.drop(self.wte(input_ids) + self.wpe(torch.arange(length, device=input_ids.device)))

        memory = self.memory
        readouts = []
        for layer, block in enumerate(self.h):
            hidden, readout = block(
                hidden,
                memory.short_term[layer] if memory.short_term else None,
                memory.short_term_valid,
                memory.coefficients[layer] if memory.coefficients else None,
                memory.has_long_term,
            )
            readouts.append(readout)
        hidden = self.ln_f(hidden)

        aux_loss = self._kl_regulariser(readouts, hidden)
        self.memory.write(readouts, self.basis, self.config)
        return SegmentModelOutput(last_hidden_state=hidden, aux_loss=aux_loss)

    def _check_inputs(self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor]) -> None:
        """Raises ValueError for inputs of the wrong shape, dtype or range, or of a batch size the memory lacks."""
        check_input_ids(input_ids, self.config.vocab_size, self.config.n_positions, "n_positions")
        check_attention_mask(attention_mask, input_ids, takes_padding=False)
        check_batch_size(self.memory.batch_size, input_ids)

    def _kl_regulariser(self, readouts: List[BlockReadout], hidden: torch.Tensor) -> torch.Tensor:
        """ltm_kl_weight times KL(N(mu, sigma^2) || N(mu, sigma_0^2)), averaged over the queries and heads of the
        rows with a long-term memory and summed over layers; zero while no row has one."""
        has_long_term = self.memory.has_long_term
        if has_long_term is None or not bool(has_long_term.any()):
            return hidden.new_zeros(())
        total = hidden.new_zeros((), dtype=torch.float32)
        for readout in readouts:
            kl = kl_to_reference(readout.variance.float(), self.config.ltm_kl_reference_std)  # [B, H, L]
            total = total + kl[has_long_term].mean()
        return self.config.ltm_kl_weight * total


class InfinityFormerLMHeadModel(SegmentLMHeadMixin, InfinityFormerPreTrainedModel):
    """The infinity-former with a language-model head tied to the token embeddings; takes ``labels`` (``loss``
    includes the KL regulariser) and generates as :mod:`experiment.models.heads` describes."""

    body_class = InfinityFormerModel
    _tied_weights_keys = {"lm_head.weight": "transformer.wte.weight"}
