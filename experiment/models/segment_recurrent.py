"""The one interface the tasks need from a model: run a segment, reset what it remembers, and save and restore it."""

import io
from abc import ABC, abstractmethod
from typing import Any, Dict, Optional, Tuple

import torch

from memoria import Memoria


class SegmentRecurrentModel(ABC):
    """A causal language model that reads a long sequence one segment at a time.

    Calling the model with ``input_ids`` shaped [BatchSize, SegmentLength] runs the next segment and returns an
    output with ``logits`` shaped [BatchSize, SegmentLength, VocabSize]. Whatever the model carries from one
    segment to the next (Memoria's engrams, for instance) stays inside it until :meth:`reset_memory`.

    :meth:`memory_state` and :meth:`load_memory_state` save and restore what is carried, so that a run resumed
    from a checkpoint continues exactly where it stopped. A model lists the attributes holding it in
    ``memory_attributes`` (an empty tuple for a model that carries nothing); each attribute is saved as it is
    (tensors, containers and dataclasses of tensors), except a ``Memoria`` (saved through its ``state_dict``) and
    an inner segment-recurrent model (saved through its own ``memory_state``).
    """

    memory_attributes: Optional[Tuple[str, ...]] = None

    @abstractmethod
    def reset_memory(self, rows: Optional[torch.Tensor] = None) -> None:
        """Forgets what was carried over from earlier segments.

        Args:
            rows: the batch rows to reset, as row indices shaped [NumRows] or a bool mask shaped [BatchSize];
                None resets every row.
        """

    def _memory_attributes(self) -> Tuple[str, ...]:
        if self.memory_attributes is None:
            raise NotImplementedError(
                f"{type(self).__name__} does not declare memory_attributes, so its memory cannot be saved or restored"
            )
        return self.memory_attributes

    def memory_state(self) -> Dict[str, Any]:
        """A copy of everything the model carries to the next segment, to store in a checkpoint.

        Returns:
            {attribute: saved value}; tensors are detached copies (an attribute held as serialised bytes so that
            :meth:`load_memory_state` can put its tensors back on the model's device).
        """
        state: Dict[str, Any] = {}
        for name in self._memory_attributes():
            value = getattr(self, name)
            if isinstance(value, SegmentRecurrentModel):
                state[name] = {"model": value.memory_state()}
            elif isinstance(value, Memoria):
                state[name] = {"memoria": value.state_dict()}
            else:
                buffer = io.BytesIO()
                torch.save(_detached(value), buffer)
                state[name] = {"value": buffer.getvalue()}
        return state

    def load_memory_state(self, state: Dict[str, Any]) -> None:
        """Restores a :meth:`memory_state`, putting its tensors on the device of the model's parameters.

        Args:
            state: what :meth:`memory_state` returned (for a model of the same class and configuration).
        """
        names = self._memory_attributes()
        if set(state) != set(names):
            raise ValueError(f"memory state holds {sorted(state)}, but {type(self).__name__} carries {sorted(names)}")
        device = next(self.parameters()).device  # type: ignore[attr-defined]
        for name in names:
            saved = state[name]
            if "model" in saved:
                getattr(self, name).load_memory_state(saved["model"])
            elif "memoria" in saved:
                memoria = getattr(self, name)
                memoria.load_state_dict(saved["memoria"])
                if memoria.device is None and memoria.store is not None:
                    memoria.store.to(device)  # a Memoria without a device keeps its engrams beside the data
            else:
                value = torch.load(io.BytesIO(saved["value"]), map_location=device, weights_only=False)
                setattr(self, name, value)


def _detached(value: Any) -> Any:
    """``value`` with every tensor it holds directly or in lists, tuples and dicts detached."""
    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, (list, tuple)):
        return type(value)(_detached(item) for item in value)
    if isinstance(value, dict):
        return {key: _detached(item) for key, item in value.items()}
    return value
