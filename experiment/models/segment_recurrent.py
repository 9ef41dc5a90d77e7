"""The one interface the tasks need from a model: run a segment, reset what it remembers, and save and restore it."""

from abc import ABC, abstractmethod
from typing import Any, Dict, Optional, Tuple, TypeVar

import torch

from memoria import Memoria

CarriedType = TypeVar("CarriedType", bound=type)
_CARRIED_TYPES: Dict[str, type] = {}  # the allow-list of classes a memory state may rebuild, by qualified name


def carried_type(cls: CarriedType) -> CarriedType:
    """Class decorator: lets a model's memory state hold instances of ``cls`` (a dataclass or a plain class whose
    attributes are tensors, numbers, strings, None and containers of them).

    A memory state stores such an instance as ``{"type": "<module>.<class>", "fields": {...}}``, plain values that
    ``torch.load(..., weights_only=True)`` reads; :meth:`SegmentRecurrentModel.load_memory_state` rebuilds only the
    classes registered here, so a checkpoint cannot name any other.
    """
    _CARRIED_TYPES[_type_name(cls)] = cls
    return cls


class SegmentRecurrentModel(ABC):
    """A causal language model that reads a long sequence one segment at a time.

    Calling the model with ``input_ids`` shaped [BatchSize, SegmentLength] runs the next segment and returns an
    output with ``logits`` shaped [BatchSize, SegmentLength, VocabSize]. Whatever the model carries from one
    segment to the next (Memoria's engrams, for instance) stays inside it until :meth:`reset_memory`.

    :meth:`memory_state` and :meth:`load_memory_state` save and restore what is carried, so that a run resumed
    from a checkpoint continues exactly where it stopped. A model lists the attributes holding it in
    ``memory_attributes`` (an empty tuple for a model that carries nothing); each attribute is saved as plain values
    (tensors, numbers, lists, and instances of the classes registered with :func:`carried_type` as tagged dicts),
    except a ``Memoria`` (saved through its ``state_dict``) and an inner segment-recurrent model (saved through its
    own ``memory_state``). Nothing in a memory state is pickled, so it loads with ``weights_only=True``.
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
            {attribute: saved value}: detached tensor copies, numbers, strings, None, lists and tagged dicts only (see
            :func:`carried_type`), so that a checkpoint holding it loads with ``torch.load(..., weights_only=True)``.

        Raises:
            TypeError: naming the attribute when it holds an object of a class not registered with
                :func:`carried_type`.
        """
        state: Dict[str, Any] = {}
        for name in self._memory_attributes():
            value = getattr(self, name)
            if isinstance(value, SegmentRecurrentModel):
                state[name] = {"model": value.memory_state()}
            elif isinstance(value, Memoria):
                state[name] = {"memoria": value.state_dict()}
            else:
                state[name] = {"value": _encoded(value, name)}
        return state

    def load_memory_state(self, state: Dict[str, Any]) -> None:
        """Restores a :meth:`memory_state`, putting its tensors on the device of the model's parameters.

        Args:
            state: what :meth:`memory_state` returned (for a model of the same class and configuration).

        Raises:
            ValueError: when the state names other attributes, or holds a value that is not a tensor, a plain value,
                a list or a tagged dict of a registered class (nothing in it is executed).
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
            elif "value" in saved:
                setattr(self, name, _decoded(saved["value"], device, name))
            else:
                raise ValueError(
                    f"memory state of {name!r} holds {sorted(saved)}; expected 'model', 'memoria' or 'value' (a state "
                    "saved as pickled bytes by an earlier version is not loaded, since loading it could run code)"
                )


def _type_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _encoded(value: Any, where: str) -> Any:
    """``value`` as tensors (detached copies), plain values, lists and tagged dicts; see :func:`carried_type`."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, list):
        return [_encoded(item, f"{where}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, tuple):
        return {"type": "tuple", "items": [_encoded(item, f"{where}[{index}]") for index, item in enumerate(value)]}
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        return {"type": "dict", "items": {key: _encoded(item, f"{where}[{key!r}]") for key, item in value.items()}}
    name = _type_name(type(value))
    if _CARRIED_TYPES.get(name) is not type(value):
        raise TypeError(
            f"memory attribute {where} holds a {name}, which a memory state cannot store; register the class with "
            "experiment.models.segment_recurrent.carried_type"
        )
    return {"type": name, "fields": {key: _encoded(item, f"{where}.{key}") for key, item in vars(value).items()}}


def _decoded(saved: Any, device: torch.device, where: str) -> Any:
    """The value :func:`_encoded` stored, tensors moved to ``device``; only registered classes are rebuilt."""
    if isinstance(saved, torch.Tensor):
        return saved.to(device)
    if saved is None or isinstance(saved, (bool, int, float, str)):
        return saved
    if isinstance(saved, list):
        return [_decoded(item, device, f"{where}[{index}]") for index, item in enumerate(saved)]
    if isinstance(saved, dict) and saved.get("type") == "tuple":
        return tuple(_decoded(item, device, f"{where}[{index}]") for index, item in enumerate(saved["items"]))
    if isinstance(saved, dict) and saved.get("type") == "dict":
        return {key: _decoded(item, device, f"{where}[{key!r}]") for key, item in saved["items"].items()}
    cls = _CARRIED_TYPES.get(saved.get("type")) if isinstance(saved, dict) else None
    if cls is None or not isinstance(saved.get("fields"), dict):
        kind = saved.get("type") if isinstance(saved, dict) else type(saved).__name__
        raise ValueError(
            f"memory state of {where} holds {kind!r}, which is not a tensor, a plain value, a list or a class "
            f"registered with carried_type ({sorted(_CARRIED_TYPES)})"
        )
    value = cls.__new__(cls)  # no __init__: the saved fields are the whole state
    value.__dict__.update({key: _decoded(item, device, f"{where}.{key}") for key, item in saved["fields"].items()})
    return value
