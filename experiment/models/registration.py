"""Registering a model with transformers' Auto classes, and the list of every model registered so."""

from dataclasses import dataclass
from typing import Dict, Optional, Type

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    PreTrainedConfig,
    PreTrainedModel,
)


@dataclass(frozen=True)
class RegisteredModel:
    """The classes the Auto classes build for one ``model_type``.

    Attributes:
        config_class: built by ``AutoConfig``.
        base_model_class: the body, built by ``AutoModel``.
        causal_lm_class: the language model, built by ``AutoModelForCausalLM``; None for an encoder.
        sequence_classification_class: the classifier, built by ``AutoModelForSequenceClassification``; None for
            a causal language model.
    """

    config_class: Type[PreTrainedConfig]
    base_model_class: Type[PreTrainedModel]
    causal_lm_class: Optional[Type[PreTrainedModel]] = None
    sequence_classification_class: Optional[Type[PreTrainedModel]] = None

    @property
    def head_class(self) -> Type[PreTrainedModel]:
        """The model a task trains: the causal LM, or else the classifier."""
        return self.causal_lm_class or self.sequence_classification_class


REGISTERED: Dict[str, RegisteredModel] = {}
"""Every model registered through :func:`register`, by ``model_type``."""


def register(
    config_class: Type[PreTrainedConfig],
    base_model_class: Type[PreTrainedModel],
    causal_lm_class: Optional[Type[PreTrainedModel]] = None,
    sequence_classification_class: Optional[Type[PreTrainedModel]] = None,
) -> None:
    """Registers a model's classes with the Auto classes under ``config_class.model_type``.

    After this, ``AutoConfig.from_pretrained`` / ``AutoModel*.from_pretrained`` build these classes from a directory
    (or JSON file) whose configuration names that ``model_type``, in any process that imported ``experiment.models``.

    Args:
        config_class: the configuration; its ``model_type`` is the name registered.
        base_model_class: the body, for ``AutoModel``.
        causal_lm_class: the language model, for ``AutoModelForCausalLM``.
        sequence_classification_class: the classifier, for ``AutoModelForSequenceClassification``.

    Raises:
        ValueError: when neither head is given, or the model_type is already registered with other classes.
    """
    if (causal_lm_class is None) == (sequence_classification_class is None):
        raise ValueError(
            f"{config_class.__name__}: give exactly one of causal_lm_class and sequence_classification_class"
        )
    entry = RegisteredModel(config_class, base_model_class, causal_lm_class, sequence_classification_class)
    model_type = config_class.model_type
    if model_type in REGISTERED:
        if REGISTERED[model_type] != entry:
            raise ValueError(f"model_type {model_type!r} is already registered with other classes")
        return
    AutoConfig.register(model_type, config_class)
    AutoModel.register(config_class, base_model_class)
    if causal_lm_class is not None:
        AutoModelForCausalLM.register(config_class, causal_lm_class)
    else:
        AutoModelForSequenceClassification.register(config_class, sequence_classification_class)
    REGISTERED[model_type] = entry
