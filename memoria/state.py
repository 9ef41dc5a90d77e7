"""The saved state of a :class:`~memoria.memoria.Memoria`, checked field by field before anything is restored.

``Memoria.state_dict()`` holds tensors and plain containers only (so ``torch.load(..., weights_only=True)`` reads
it). :func:`check_state` reads one back into a :class:`CheckedState` or raises ``ValueError`` naming the first
field that is missing, unknown, of the wrong shape, dtype or range, or that contradicts another field or the
memory it is loaded into; ``Memoria.load_state_dict`` assigns nothing until the whole state has passed.
"""

from typing import Any, Dict, List, NamedTuple, Optional, Sequence

import torch

from .checks import STEP_ORDER
from .engram import EngramType
from .history import HistoryManager
from .store import EngramStore

STATE_KEYS = ("settings", "output_dtype", "expected_call", "reminded")
OPTIONAL_KEYS = ("engrams", "histories", "fired")
ENGRAM_KEYS = (
    "batch_size",
    "hidden_dim",
    "next_id",
    "data",
    "lifespan",
    "engrams_types",
    "induce_counts",
    "age",
    "engram_ids",
)
INT32_MAX = 2**31 - 1
FLOAT32_MAX = torch.finfo(torch.float32).max


class CheckedState(NamedTuple):
    """A state that passed :func:`check_state`, ready to assign."""

    store: Optional[EngramStore]
    histories: List[HistoryManager]
    output_dtype: torch.dtype
    expected_call: str
    reminded: Optional[torch.Tensor]
    fired: Optional[torch.Tensor]


def check_state(
    state: Any,
    settings: Dict[str, Any],
    device: torch.device,
    ignored_settings: Sequence[str] = (),
) -> CheckedState:
    """Check a ``Memoria.state_dict()`` completely and build what it restores, touching no memory.

    Args:
        state: the state to check.
        settings: the settings of the memory it is loaded into (``Memoria._settings()``); a setting the state
            carries must equal it unless named in ``ignored_settings``.
        device: where the restored engrams live.
        ignored_settings: settings a state may carry with another value (they do not shape the engrams).

    Returns:
        the restored store (None when the state has no engrams), histories, output dtype, next call and the
        positions the last ``remind()`` returned.

    Raises:
        ValueError: naming the bad field and what it should be.
    """
    if not isinstance(state, dict):
        raise ValueError(f"state must be a dict from Memoria.state_dict(), got {type(state).__name__}")
    _check_keys("state", state, STATE_KEYS, OPTIONAL_KEYS)
    _check_settings(state["settings"], settings, ignored_settings)
    output_dtype = _floating_dtype("output_dtype", state["output_dtype"])
    expected_call = state["expected_call"]
    if expected_call not in STEP_ORDER:
        raise ValueError(f"state['expected_call'] must be one of {STEP_ORDER}, got {expected_call!r}")

    store = None
    if state.get("engrams") is not None:
        store = _checked_store(state["engrams"], settings, device)
    if expected_call != STEP_ORDER[0] and (store is None or store.length == 0):
        raise ValueError(
            f"state['expected_call'] is {expected_call!r} but the state holds no engrams: a step can only be "
            "half done after add_working_memory() stored some"
        )
    reminded = _checked_reminded(state["reminded"], store, expected_call)
    histories = _checked_histories(state, settings["keep_history"], store)
    fired = state.get("fired")
    if fired is not None:
        fired = _checked_positions("fired", fired, store, in_range=True)
    if expected_call != STEP_ORDER[2]:
        fired = None  # recorded only between remind() and adjust_lifespan_and_memories()
    return CheckedState(store, histories, output_dtype, expected_call, reminded, fired)


# ---------------------------------------------------------------------------------------------------- fields
def _check_keys(name: str, given: Dict[str, Any], required: Sequence[str], optional: Sequence[str] = ()) -> None:
    missing = [k for k in required if k not in given]
    unknown = [k for k in given if k not in required and k not in optional]
    if missing:
        raise ValueError(f"{name} lacks {missing} (a Memoria.state_dict() holds {list(required) + list(optional)})")
    if unknown:
        raise ValueError(
            f"{name} has unknown keys {unknown} (a Memoria.state_dict() holds {list(required) + list(optional)})"
        )


def _check_settings(saved: Any, mine: Dict[str, Any], ignored: Sequence[str]) -> None:
    if not isinstance(saved, dict):
        raise ValueError(f"state['settings'] must be a dict, got {type(saved).__name__}")
    unknown = [k for k in saved if k not in mine]
    if unknown:
        raise ValueError(f"state['settings'] has unknown settings {unknown}; this Memoria has {sorted(mine)}")
    different = {k: (v, mine[k]) for k, v in saved.items() if k not in ignored and v != mine[k]}
    if different:
        raise ValueError(f"state_dict was saved with other settings (saved, current): {different}")


def _floating_dtype(name: str, value: Any) -> torch.dtype:
    dtype = getattr(torch, value.replace("torch.", ""), None) if isinstance(value, str) else None
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise ValueError(f"state[{name!r}] must name a floating torch dtype such as 'torch.float32', got {value!r}")
    return dtype


def _int(name: str, value: Any, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
    return value


def _tensor(name: str, value: Any, shape: Sequence[int], kind: str, dims: str) -> torch.Tensor:
    """``value`` checked to be a tensor of ``shape`` whose dtype is of ``kind`` ("floating" or "integer")."""
    if not isinstance(value, torch.Tensor):
        raise ValueError(f"{name} must be a tensor shaped {dims} = {list(shape)}, got {type(value).__name__}")
    if tuple(value.shape) != tuple(shape):
        raise ValueError(f"{name} must be shaped {dims} = {list(shape)}, got {list(value.shape)}")
    floating = value.is_floating_point()
    integer = not floating and not value.is_complex() and value.dtype != torch.bool
    if (kind == "floating" and not floating) or (kind == "integer" and not integer):
        raise ValueError(f"{name} must have a {kind} dtype, got {value.dtype}")
    if value.device.type == "meta":
        raise ValueError(f"{name} is on the meta device: it holds no values")
    return value.detach()


def _finite_float32(name: str, value: torch.Tensor) -> torch.Tensor:
    """``value`` as float32, refused if any entry is NaN or inf there (float64 beyond float32's range included)."""
    stored = value.to(torch.float32)
    if not bool(torch.isfinite(stored).all()):
        raise ValueError(f"{name} holds NaN or inf (or values beyond float32's range, +-{FLOAT32_MAX:.3g})")
    return stored


def _in_range(name: str, value: torch.Tensor, low: int, high: int) -> torch.Tensor:
    if value.numel() and (int(value.min()) < low or int(value.max()) > high):
        raise ValueError(f"{name} must lie in [{low}, {high}], got [{int(value.min())}, {int(value.max())}]")
    return value


def _checked_store(saved: Any, settings: Dict[str, Any], device: torch.device) -> EngramStore:
    if not isinstance(saved, dict):
        raise ValueError(f"state['engrams'] must be a dict or None, got {type(saved).__name__}")
    _check_keys("state['engrams']", saved, ENGRAM_KEYS)
    B = _int("state['engrams']['batch_size']", saved["batch_size"], 1)
    D = _int("state['engrams']['hidden_dim']", saved["hidden_dim"], 1)
    next_id = _int("state['engrams']['next_id']", saved["next_id"], 0)
    field = "state['engrams'][{!r}]".format
    lifespan = saved["lifespan"]
    if not isinstance(lifespan, torch.Tensor) or lifespan.dim() != 2 or lifespan.size(0) != B:
        got = list(lifespan.shape) if isinstance(lifespan, torch.Tensor) else type(lifespan).__name__
        raise ValueError(f"{field('lifespan')} must be a tensor shaped [B={B} (batch_size), N], got {got}")
    N = lifespan.size(1)
    lifespan = _finite_float32(field("lifespan"), _tensor(field("lifespan"), lifespan, (B, N), "floating", "[B, N]"))
    data = _tensor(field("data"), saved["data"], (B, N, D), "floating", "[B, N, D] (batch_size, N, hidden_dim)")
    data = _finite_float32(field("data"), data)
    types = _tensor(field("engrams_types"), saved["engrams_types"], (B, N), "integer", "[B, N]")
    known = [t.value for t in EngramType]
    types = _in_range(
        field("engrams_types") + f" ({', '.join(f'{t.value}={t.name}' for t in EngramType)})",
        types,
        min(known),
        max(known),
    )
    counts = _tensor(field("induce_counts"), saved["induce_counts"], (B, N, N), "integer", "[B, N, N]")
    counts = _in_range(field("induce_counts"), counts, -1, INT32_MAX)
    age = saved["age"]
    if settings["track_age"] != (age is not None):
        raise ValueError(
            f"{field('age')} must be {'a tensor' if settings['track_age'] else 'None'} (track_age={settings['track_age']})"
        )
    if age is not None:
        age = _in_range(field("age"), _tensor(field("age"), age, (B, N), "integer", "[B, N]"), -1, INT32_MAX)
    ids = saved["engram_ids"]
    if settings["track_id"] != (ids is not None):
        raise ValueError(
            f"{field('engram_ids')} must be {'a tensor' if settings['track_id'] else 'None'} (track_id={settings['track_id']})"
        )
    if ids is not None:
        ids = _in_range(
            field("engram_ids"), _tensor(field("engram_ids"), ids, (B, N), "integer", "[B, N]"), -1, next_id - 1
        )
        live = ids[ids >= 0]
        if live.unique().numel() != live.numel():
            raise ValueError(f"{field('engram_ids')} must be distinct (an id names one engram)")

    store = EngramStore(B, D, device, settings["track_age"], settings["track_id"])
    store.load(data, lifespan, types.to(torch.uint8), counts.to(torch.int32))
    store.next_id = next_id
    if age is not None:
        store.age.copy_(age)
    if ids is not None:
        store.engram_ids.copy_(ids)
    return store


def _checked_reminded(reminded: Any, store: Optional[EngramStore], expected_call: str) -> Optional[torch.Tensor]:
    """The positions the last ``remind()`` returned, [B, R] long: needed (and range-checked) only mid-step."""
    mid_step = expected_call == STEP_ORDER[2]
    if reminded is None:
        if mid_step:
            raise ValueError(
                f"state['reminded'] must be the [B, R] positions remind() returned when expected_call is {expected_call!r}"
            )
        return None
    return _checked_positions("reminded", reminded, store, mid_step)


def _checked_positions(name: str, positions: Any, store: Optional[EngramStore], in_range: bool) -> torch.Tensor:
    """Engram positions [B, K] as a long tensor; with ``in_range``, each in [-1, N)."""
    B = store.batch_size if store is not None else None
    if not isinstance(positions, torch.Tensor) or positions.dim() != 2 or (B is not None and positions.size(0) != B):
        got = list(positions.shape) if isinstance(positions, torch.Tensor) else type(positions).__name__
        raise ValueError(f"state[{name!r}] must be None or a tensor shaped [B={B}, R], got {got}")
    _tensor(f"state[{name!r}]", positions, positions.shape, "integer", "[B, R]")
    if in_range and store is not None:
        _in_range(f"state[{name!r}]", positions, -1, store.length - 1)
    return positions.to(torch.long).clone()


def _checked_histories(state: Dict[str, Any], keep_history: bool, store: Optional[EngramStore]) -> List[HistoryManager]:
    if not keep_history:
        if state.get("histories") is not None:
            raise ValueError("state['histories'] is given but this Memoria does not keep history (keep_history=False)")
        return []
    saved = state.get("histories")
    if saved is None:
        raise ValueError(
            "state has no 'histories' but this Memoria keeps history: loading it would silently stop or restart "
            "the record; load a state saved with keep_history=True"
        )
    rows = 0 if store is None else store.batch_size
    if not isinstance(saved, list) or len(saved) != rows:
        got = len(saved) if isinstance(saved, list) else type(saved).__name__
        raise ValueError(f"state['histories'] must be a list of {rows} history dicts (one per row), got {got}")
    histories = []
    for row, history in enumerate(saved):
        try:
            histories.append(HistoryManager.from_dict(history))
        except ValueError as error:
            raise ValueError(f"state['histories'][{row}]: {error}") from None
    return histories
