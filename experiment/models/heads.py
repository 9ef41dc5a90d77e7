"""The heads over segment-recurrent bodies: what every head shares (reset through the body, ``forward`` with
``labels``), and what the causal language models share (their outputs, the loss from ``labels``, generation, a
linear language-model head).

Loss: ``model(input_ids=x, labels=y)`` scores the logits at position t against ``y[:, t + 1]`` within the segment
(transformers' convention: ``labels`` may simply be ``input_ids``; -100 is ignored), and adds the model's
``aux_loss`` when it has one, so that ``loss.backward()`` trains every part of the model (the Compressive
Transformer's compression, for instance, learns only from ``aux_loss``).

Generation: ``model.generate(input_ids, ...)`` continues each row from the memory the model carries when it is
called. The prompt and the tokens generated so far are read as one segment on top of that memory, again at every
step (there is no key-value cache), so prompt plus new tokens must fit in one segment; and the memory is left as
it was before the call (restored from :meth:`SegmentRecurrentModel.memory_state`, detached), so generating
never changes what a later segment reads. With an empty memory, generation is plain in-segment generation.
"""

from dataclasses import dataclass
from typing import Any, Dict, Optional, Type

import torch
import torch.nn.functional as F
from torch import nn
from transformers import GenerationMixin
from transformers.utils import ModelOutput

from .inputs import Rows
from .segment_recurrent import SegmentRecurrentModel

IGNORE_INDEX = -100


@dataclass
class SegmentModelOutput(ModelOutput):
    """Output of one segment of a body.

    Args:
        last_hidden_state: final hidden states shaped [BatchSize, SegmentLength, HiddenDim].
        aux_loss: the model's weighted auxiliary training loss as a scalar tensor; None for a model without one.
    """

    last_hidden_state: Optional[torch.FloatTensor] = None
    aux_loss: Optional[torch.FloatTensor] = None


@dataclass
class SegmentCausalLMOutput(ModelOutput):
    """Output of one segment of a causal language model.

    Args:
        loss: when ``labels`` were given, the next-token cross entropy within the segment (mean over the
            positions whose next label is not -100) plus ``aux_loss``; a scalar tensor.
        logits: next-token scores shaped [BatchSize, SegmentLength, VocabSize].
        aux_loss: the model's weighted auxiliary training loss as a scalar tensor (already in ``loss``); None for
            a model without one.
        last_hidden_state: final hidden states shaped [BatchSize, SegmentLength, HiddenDim].
    """

    loss: Optional[torch.FloatTensor] = None
    logits: Optional[torch.FloatTensor] = None
    aux_loss: Optional[torch.FloatTensor] = None
    last_hidden_state: Optional[torch.FloatTensor] = None


def check_labels(labels: Optional[torch.Tensor], input_ids: torch.Tensor) -> None:
    """Raises ValueError unless ``labels`` is None or an integer tensor shaped like ``input_ids``."""
    if labels is None:
        return
    if not isinstance(labels, torch.Tensor) or labels.shape != input_ids.shape or labels.dtype.is_floating_point:
        got = f"{labels.dtype} {list(labels.shape)}" if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(f"labels must be integer token ids shaped like input_ids {list(input_ids.shape)}, got {got}")


def check_class_labels(labels: Optional[torch.Tensor], input_ids: torch.Tensor) -> None:
    """Raises ValueError unless ``labels`` is None or integer class ids shaped [BatchSize], one per row of
    ``input_ids``."""
    if labels is None:
        return
    batch_size = input_ids.size(0)
    if not isinstance(labels, torch.Tensor) or labels.shape != (batch_size,) or labels.dtype.is_floating_point:
        got = f"{labels.dtype} {list(labels.shape)}" if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(f"labels must be integer class ids shaped [BatchSize] = [{batch_size}], got {got}")


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor, aux_loss: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The next-token cross entropy within a segment, plus ``aux_loss`` when given.

    Args:
        logits: shaped [BatchSize, SegmentLength, VocabSize].
        labels: token ids shaped [BatchSize, SegmentLength]; the logits at t are scored against the label at t + 1;
            -100 is ignored.
        aux_loss: a scalar tensor, or None.

    Returns:
        a scalar tensor (float32 at least): the mean over scored positions (NaN when none is scored).
    """
    shifted_logits = logits[:, :-1].flatten(0, 1)  # [B * (L - 1), V]
    loss = F.cross_entropy(shifted_logits.float(), labels[:, 1:].flatten(), ignore_index=IGNORE_INDEX)
    return loss if aux_loss is None else loss + aux_loss


class SegmentHeadMixin(SegmentRecurrentModel):
    """A head (a causal LM's, a classifier's) over a segment-recurrent body, the model's base model
    (``self.<base_model_prefix>``), which carries the memory; mixed in before the model's ``PreTrainedModel`` class,
    which sets :meth:`head_logits`, :meth:`head_loss` and ``output_class`` (whose fields the body's outputs fill).
    """

    output_class: Type[ModelOutput]

    def head_logits(self, body: ModelOutput) -> torch.Tensor:
        """The head's scores from the body's output of a segment."""
        raise NotImplementedError

    def head_loss(self, logits: torch.Tensor, labels: torch.Tensor, body: ModelOutput) -> torch.Tensor:
        """The training loss of a segment from the head's scores and ``labels``."""
        raise NotImplementedError

    def check_labels(self, labels: Optional[torch.Tensor], input_ids: torch.Tensor) -> None:
        """Raises ValueError for ``labels`` the head cannot score (any are taken unless the model says otherwise)."""

    def reset_memory(self, rows: Optional[Rows] = None) -> None:
        """Forgets every row's memory, or only the chosen rows' (the others stay unchanged).

        Args:
            rows: row indices shaped [NumRows] (a list or a tensor) or a bool mask shaped [BatchSize]; None resets
                every row.
        """
        self.base_model.reset_memory(rows)

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: Optional[torch.Tensor] = None,
        labels: Optional[torch.LongTensor] = None,
        return_dict: Optional[bool] = None,
    ) -> ModelOutput:
        """Runs the next segment through the body and the head.

        Args:
            input_ids: token ids shaped [BatchSize, SegmentLength].
            attention_mask: 1 at tokens and 0 at padding shaped [BatchSize, SegmentLength], or None; see the body's
                ``forward`` for whether the model takes padding.
            labels: None, or what :meth:`head_loss` scores the logits against, for ``loss``.
            return_dict: False for a tuple of the output's fields that are not None.

        Returns:
            ``loss`` (with labels), ``logits``, and the body's outputs that ``output_class`` has fields for.
        """
        self.check_labels(labels, input_ids)
        body = self.base_model(input_ids, attention_mask=attention_mask)
        logits = self.head_logits(body)
        loss = None if labels is None else self.head_loss(logits, labels, body)
        fields = {name: value for name, value in body.items() if name in self.output_class.__dataclass_fields__}
        output = self.output_class(**{**fields, "loss": loss, "logits": logits})
        return output if return_dict is not False else output.to_tuple()


class SegmentGenerationMixin(GenerationMixin):
    """transformers' ``generate`` for a segment-recurrent causal LM (see the module docstring for what it does
    with the carried memory). The model's ``forward`` takes ``input_ids``, ``attention_mask`` and ``return_dict``."""

    _is_stateful = True  # transformers then refuses assisted generation, which would need to rewind the memory

    @classmethod
    def can_generate(cls) -> bool:
        return True

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        """transformers' ``generate``, each step reading the memory as it was before the call, which is then
        restored."""
        self._memory_before_generation = self.memory_state()
        try:
            return super().generate(*args, **kwargs)
        finally:
            self.load_memory_state(self._memory_before_generation)
            del self._memory_before_generation

    def prepare_inputs_for_generation(
        self, input_ids: torch.LongTensor, attention_mask: Optional[torch.Tensor] = None, **kwargs: Any
    ) -> Dict[str, Any]:
        """Puts the memory back as it was before ``generate`` and returns the whole sequence so far as the segment.

        Args:
            input_ids: the prompt and the tokens generated so far shaped [BatchSize, SegmentLength].
            attention_mask: shaped [BatchSize, SegmentLength], or None.
            kwargs: generation's other state (a cache, positions), unused: the model keeps no key-value cache.
        """
        self.load_memory_state(self._memory_before_generation)
        return {"input_ids": input_ids, "attention_mask": attention_mask}


class SegmentCausalLMMixin(SegmentGenerationMixin, SegmentHeadMixin):
    """A causal LM over a segment-recurrent body: ``labels`` give the shifted cross entropy plus ``aux_loss``, and
    ``generate`` works as the module docstring says. The model class sets :meth:`head_logits` and builds the body."""

    memory_attributes = ("transformer",)

    output_class = SegmentCausalLMOutput

    def check_labels(self, labels: Optional[torch.Tensor], input_ids: torch.Tensor) -> None:
        """Raises ValueError unless ``labels`` is None or integer token ids shaped like ``input_ids``."""
        check_labels(labels, input_ids)

    def head_loss(self, logits: torch.Tensor, labels: torch.Tensor, body: ModelOutput) -> torch.Tensor:
        """The next-token cross entropy within the segment, plus the body's ``aux_loss``; see :func:`causal_lm_loss`."""
        return causal_lm_loss(logits, labels, body.get("aux_loss"))


class SegmentLMHeadMixin(SegmentCausalLMMixin):
    """A causal LM made of a segment-recurrent body (``self.transformer``, built from ``body_class``) and a linear
    head, tied to the token embeddings when the configuration says so (``_tied_weights_keys``)."""

    body_class: Type[nn.Module]

    def __init__(self, config: Any) -> None:
        super().__init__(config)
        self.transformer = self.body_class(config)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def head_logits(self, body: ModelOutput) -> torch.Tensor:
        """The head applied to the body's final hidden states: shaped [BatchSize, SegmentLength, VocabSize]."""
        return self.lm_head(body.last_hidden_state)
