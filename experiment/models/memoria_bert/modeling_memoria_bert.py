"""Memoria BERT and Memoria RoBERTa: an encoder that reads a long document segment by segment through Memoria.

For each segment ``[BatchSize, SegmentLength]`` the model
  1. runs the embeddings and the first ``memory_layer_index`` layers of the encoder (padding masked);
  2. summarises that layer's states of the segment's real tokens into ``memoria_num_memories`` working-memory
     vectors with the Abstractor;
  3. hands a detached copy to Memoria (``add_working_memory``, ``remind``) and gets back the reminded engrams
     (steps 2 and 3 are ``memory.read`` of a ``memoria.nn.MemoriaMemory``, ``working_memory="current"``);
  4. runs the remaining layers; each also reads the working memory and then the reminded engrams between its
     self-attention and its feed-forward block, with one memory attention module shared by both reads (each
     read a pre-LayerNorm residual step with its own LayerNorm), as the paper's code does;
  5. gives each reminded engram lifespan ``alpha * R * a_i`` (``adjust_lifespan_and_memories``), where ``a_i``
     is the attention it received in the reminded read, averaged over the memory layers, the heads and the
     segment's real tokens, and ``R`` the padded reminded width (the paper's rule, not renormalised;
     ``memory.write``);
  6. classifies the segment from its first token (``[CLS]`` / ``<s>``), with the encoder's own head.

The layers keep the names of transformers' ``BertModel`` / ``RobertaModel`` (``embeddings``, ``encoder.layer``,
``pooler``), so ``from_pretrained`` on a local BERT or RoBERTa checkpoint directory loads the encoder and
initialises only the new modules (the Abstractor, the memory attentions and their LayerNorms, and the head
when the checkpoint has none). Each memory layer's two reads are a ``memoria.nn.MemoryReader``
(``memory_reads[i]``). ``state_dict()`` holds the memory (``memory._extra_state``); ``save_pretrained`` leaves it
out; models saved before the memory parts came from ``memoria.nn`` load with their old parameter names.

Gradients stop at segment boundaries (Memoria keeps detached engrams) but reach the Abstractor and the memory
attention through the current segment's loss. A row whose segment is padding only (a document that ended
before the batch's longest one) is run as if it were unpadded: its output is meaningless, and the
classification task ignores it.
"""

from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch
from torch import nn
from transformers import RobertaConfig
from transformers.models.bert.modeling_bert import BertEmbeddings, BertLayer, BertPooler, BertPreTrainedModel
from transformers.models.roberta.modeling_roberta import (
    RobertaClassificationHead,
    RobertaEmbeddings,
    RobertaLayer,
    RobertaPreTrainedModel,
)
from transformers.utils import ModelOutput

from memoria import Abstractor
from memoria.nn import MemoryReader

from ..heads import SegmentHeadMixin, check_class_labels
from ..inputs import check_attention_mask, check_input_ids
from ..with_memoria import MemoriaModelMixin, MemoriaPreTrainedMixin
from .configuration_memoria_bert import MemoriaBertConfig, MemoriaRobertaConfig


@dataclass
class MemoriaEncoderOutput(ModelOutput):
    """Output of one segment.

    Args:
        last_hidden_state: final hidden states shaped [BatchSize, SegmentLength, HiddenDim].
        pooler_output: BERT's pooled first token shaped [BatchSize, HiddenDim] (None for RoBERTa).
        reminded_indices: Memoria's indices of the reminded engrams shaped [BatchSize, NumReminded]; -1 is padding.
        lifespan_delta: lifespan each reminded engram earned shaped [BatchSize, NumReminded].
    """

    last_hidden_state: Optional[torch.FloatTensor] = None
    pooler_output: Optional[torch.FloatTensor] = None
    reminded_indices: Optional[torch.LongTensor] = None
    lifespan_delta: Optional[torch.FloatTensor] = None


@dataclass
class MemoriaSequenceClassifierOutput(ModelOutput):
    """Class scores of one segment.

    Args:
        loss: cross-entropy against ``labels`` when they were given.
        logits: class scores shaped [BatchSize, NumLabels].
        aux_loss: always None: the model has no auxiliary training loss.
        reminded_indices: shaped [BatchSize, NumReminded]; -1 is padding.
        lifespan_delta: shaped [BatchSize, NumReminded].
    """

    loss: Optional[torch.FloatTensor] = None
    logits: Optional[torch.FloatTensor] = None
    aux_loss: Optional[torch.FloatTensor] = None
    reminded_indices: Optional[torch.LongTensor] = None
    lifespan_delta: Optional[torch.FloatTensor] = None


def check_segment(input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor], config) -> torch.Tensor:
    """The padding mask of a segment as bool [BatchSize, SegmentLength], rows of padding only made all True.

    Args:
        input_ids: token ids shaped [BatchSize, SegmentLength].
        attention_mask: 1 for tokens, 0 for padding, shaped [BatchSize, SegmentLength]; None: no padding.
        config: the encoder's configuration (a BERT or RoBERTa one), for the vocabulary and the position table.

    Raises:
        ValueError: naming the argument for token ids that are not an integer tensor [BatchSize, SegmentLength]
            of ids in the vocabulary, a segment longer than the position table, or a mask that is not None or a
            0/1 tensor of the same shape.
    """
    # RoBERTa numbers positions from pad_token_id + 1
    first_position = config.pad_token_id + 1 if isinstance(config, RobertaConfig) else 0
    max_length = config.max_position_embeddings - first_position
    check_input_ids(input_ids, config.vocab_size, max_length, "max_position_embeddings")
    keep = check_attention_mask(attention_mask, input_ids)
    if keep is None:
        return torch.ones_like(input_ids, dtype=torch.bool)
    return keep | ~keep.any(dim=1, keepdim=True)


class AbstractorLoadingMixin(MemoriaPreTrainedMixin):
    """Loading a plain encoder's checkpoint into a Memoria encoder, mixed in before its ``PreTrainedModel`` class."""

    @classmethod
    def from_pretrained(cls, *args, **kwargs):
        """transformers' ``from_pretrained``; when the checkpoint has no Abstractor (a plain BERT or RoBERTa), its
        queries, which loading leaves uninitialised, are drawn from normal(0, initializer_range).

        A model built with ``from_config`` keeps the Abstractor's own initialisation (the same distribution).
        """
        output_loading_info = kwargs.pop("output_loading_info", False)
        model, info = super().from_pretrained(*args, output_loading_info=True, **kwargs)
        missing = set(info["missing_keys"])
        for name, module in model.named_modules():
            if isinstance(module, Abstractor) and f"{name}.query_embeddings" in missing:
                with torch.no_grad():
                    module.query_embeddings.normal_(0.0, model.config.initializer_range)
        return (model, info) if output_loading_info else model


class MemoriaEncoderMixin(AbstractorLoadingMixin, MemoriaModelMixin):
    """The segment loop shared by Memoria BERT and Memoria RoBERTa (see the module docstring)."""

    legacy_key_renames = (
        (r"(memory_reads\.\d+)\.attention\.query\.", r"\1.attention.0.q_proj."),
        (r"(memory_reads\.\d+)\.attention\.key_value\.", r"\1.attention.0.kv_proj."),
        (r"(memory_reads\.\d+)\.attention\.output\.", r"\1.attention.0.out_proj."),
        (r"(?<![\w.])abstractor\.", "memory.abstractor."),
        (r"(?<![\w.])bert\.abstractor\.", "bert.memory.abstractor."),
        (r"(?<![\w.])roberta\.abstractor\.", "roberta.memory.abstractor."),
    )

    _input_embed_layer = "word_embeddings"  # transformers finds it in self.embeddings

    embeddings_class: type
    layer_class: type
    pooler_class: Optional[type] = None

    def __init__(self, config) -> None:
        config.validate()  # fields set after construction (from_pretrained's keyword arguments) are checked here
        super().__init__(config)
        self._build_body(config, self.embeddings_class, self.layer_class)
        self.pooler = None if self.pooler_class is None else self.pooler_class(config)
        self.post_init()

    def forward(
        self, input_ids: torch.LongTensor, attention_mask: Optional[torch.Tensor] = None
    ) -> MemoriaEncoderOutput:
        """Runs the next segment of every row, reading from and writing to memory.

        Args:
            input_ids: token ids shaped [BatchSize, SegmentLength] (at most the position table's length).
            attention_mask: 1 for tokens, 0 for padding, shaped [BatchSize, SegmentLength]; None: no padding.

        Returns:
            the final hidden states, the pooled first token (BERT only), the reminded indices and their lifespan.
        """
        hidden, indices, delta = self._encode(input_ids, attention_mask)
        pooled = None if self.pooler is None else self.pooler(hidden)
        return MemoriaEncoderOutput(hidden, pooled, indices, delta)

    def _build_body(self, config, embeddings_class, layer_class) -> None:
        self.embeddings = embeddings_class(config)
        self.encoder = nn.Module()
        self.encoder.layer = nn.ModuleList([layer_class(config, layer_idx=i) for i in range(config.num_hidden_layers)])
        num_memory_layers = config.num_hidden_layers - config.memory_layer_index
        self.memory_reads = nn.ModuleList(
            MemoryReader(
                config.hidden_size,
                config.num_attention_heads,
                attention_dropout=config.attention_probs_dropout_prob,
                dropout=config.attention_probs_dropout_prob,
                layer_norm_eps=config.layer_norm_eps,
            )
            for _ in range(num_memory_layers)
        )
        self.memory = config.build_memory(
            config.hidden_size, working_memory="current", abstractor_feedforward_size=config.intermediate_size
        )

    def _encode(
        self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor]
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Runs one segment; returns the final hidden states, the reminded indices and their lifespan delta."""
        keep = check_segment(input_ids, attention_mask, self.config)  # [B, L]
        self.check_segment_rows(input_ids)

        hidden = self.embeddings(input_ids=input_ids)  # [B, L, D]
        additive = (~keep)[:, None, None, :].to(hidden.dtype) * torch.finfo(hidden.dtype).min  # [B, 1, 1, L]
        split = self.config.memory_layer_index
        for layer in self.encoder.layer[:split]:
            hidden = layer(hidden, additive)

        memories = self.memory.read(hidden, keep)
        weights: List[torch.Tensor] = []
        for layer, reader in zip(self.encoder.layer[split:], self.memory_reads):
            attended = layer.attention(hidden, additive)[0]
            attended, layer_weights = reader(attended, memories)
            hidden = layer.feed_forward_chunk(attended)
            weights.append(layer_weights)
        lifespan_delta = self.memory.write(weights, mask=keep)
        return hidden, memories.reminded_indices, lifespan_delta


class MemoriaClassifierMixin(AbstractorLoadingMixin, SegmentHeadMixin):
    """A Memoria encoder (the base model) with the encoder's classification head: ``logits`` shaped
    [BatchSize, NumLabels] per segment; ``labels`` (class ids shaped [BatchSize]) give the cross entropy; the body's
    reminded indices and lifespan delta come along. The model class sets :meth:`head_logits`."""

    output_class = MemoriaSequenceClassifierOutput

    def check_labels(self, labels: Optional[torch.Tensor], input_ids: torch.Tensor) -> None:
        """Raises ValueError unless ``labels`` is None or class ids shaped [BatchSize]."""
        check_class_labels(labels, input_ids)

    def head_loss(self, logits: torch.Tensor, labels: torch.Tensor, body: ModelOutput) -> torch.Tensor:
        """The cross entropy of the class scores against ``labels`` shaped [BatchSize]."""
        return nn.functional.cross_entropy(logits.float(), labels)


class MemoriaBertModel(MemoriaEncoderMixin, BertPreTrainedModel):
    """Memoria BERT's body: BERT's embeddings, layers and pooler, the Abstractor, the memory reads and Memoria."""

    config_class = MemoriaBertConfig
    embeddings_class, layer_class, pooler_class = BertEmbeddings, BertLayer, BertPooler


class MemoriaBertForSequenceClassification(MemoriaClassifierMixin, BertPreTrainedModel):
    """Memoria BERT with BERT's sequence-classification head (dropout and a linear layer on the pooled [CLS])."""

    config_class = MemoriaBertConfig
    legacy_body_class = MemoriaBertModel
    memory_attributes = ("bert",)

    def __init__(self, config: MemoriaBertConfig) -> None:
        super().__init__(config)
        self.bert = MemoriaBertModel(config)
        dropout = config.classifier_dropout if config.classifier_dropout is not None else config.hidden_dropout_prob
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_labels)
        self.post_init()

    def head_logits(self, body: MemoriaEncoderOutput) -> torch.Tensor:
        """Dropout and the linear classifier on the pooled [CLS]."""
        return self.classifier(self.dropout(body.pooler_output))


class MemoriaRobertaModel(MemoriaEncoderMixin, RobertaPreTrainedModel):
    """Memoria RoBERTa's body: RoBERTa's embeddings and layers, the Abstractor, the memory reads and Memoria."""

    config_class = MemoriaRobertaConfig
    embeddings_class, layer_class = RobertaEmbeddings, RobertaLayer


class MemoriaRobertaForSequenceClassification(MemoriaClassifierMixin, RobertaPreTrainedModel):
    """Memoria RoBERTa with RoBERTa's classification head (dense, tanh, dense on the first token <s>)."""

    config_class = MemoriaRobertaConfig
    legacy_body_class = MemoriaRobertaModel
    memory_attributes = ("roberta",)

    def __init__(self, config: MemoriaRobertaConfig) -> None:
        super().__init__(config)
        self.roberta = MemoriaRobertaModel(config)
        self.classifier = RobertaClassificationHead(config)
        self.post_init()

    def head_logits(self, body: MemoriaEncoderOutput) -> torch.Tensor:
        """RoBERTa's classification head on the final hidden states (it reads the first token <s>)."""
        return self.classifier(body.last_hidden_state)
