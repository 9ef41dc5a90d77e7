"""Engram history: what every engram of one batch row was, did and linked to, step by step.

Enable it with ``Memoria(..., keep_history=True)``; ``memoria.histories[row]`` is that row's
:class:`HistoryManager`. ``Memoria(history_window=...)`` bounds how many recent steps each history holds
(:meth:`HistoryManager.forget_before`). Histories save to gzip-compressed JSON (never pickle, written atomically)
and load back exactly.
"""

import gzip
import io
import json
import zlib
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Literal, Optional, Tuple

from .files import PathLike, atomic_write

EngramTypeName = Literal["WORKING", "SHORTTERM", "LONGTERM"]


@dataclass(frozen=True)
class EngramConnection:
    """A directed Hebbian edge: how likely ``target`` fires when ``source`` fires.

    Attributes:
        weight: conditional firing probability, cofire_count / fire count of ``source``.
        cofire_count: how often the two fired together.
    """

    source_id: int
    target_id: int
    weight: float
    cofire_count: int


@dataclass(frozen=True)
class EngramInfo:
    """One engram at the end of a step."""

    id: int
    type: EngramTypeName
    lifespan: float
    age: Optional[int]
    fire_count: int
    outgoings: Tuple[EngramConnection, ...]
    incoming: Tuple[EngramConnection, ...]


@dataclass(frozen=True)
class EngramsInfo:
    """All engrams of a row at the end of a step, with the edges between them."""

    engrams: Dict[int, EngramInfo]
    edges: Dict[Tuple[int, int], EngramConnection]
    working: Tuple[int, ...]
    shortterm: Tuple[int, ...]
    longterm: Tuple[int, ...]


@dataclass(frozen=True)
class Firing:
    """An engram fired at ``timestep`` and gained ``lifespan_gain`` from it."""

    timestep: int
    engram_id: int
    lifespan_gain: float


@dataclass(frozen=True)
class EngramHistory:
    """Everything recorded about one engram (see :meth:`HistoryManager.inspect`)."""

    id: int
    creation_timestep: int
    deletion_timestep: Optional[int]
    duration: Optional[int]
    firing_times: List[int]
    firings: List[Firing]
    summaries: List[EngramsInfo]


@dataclass
class HistoryManager:
    """The recorded history of one batch row.

    Attributes:
        timestep: steps completed (a step ends with ``adjust_lifespan_and_memories``).
        first_timestep: the first step still held (0 unless :meth:`forget_before` dropped older ones).
        summaries: one :class:`EngramsInfo` per held step, ``summaries[t - first_timestep]`` for step t.
        engram_creation_times / engram_deletion_times: engram id -> timestep, for the engrams alive at or
            created after ``first_timestep``.
        engram_firings: engram id -> its firings in the held steps.
        firings_per_time: the firings of each held step, ``firings_per_time[t - first_timestep]`` for step t.
    """

    timestep: int = 0
    first_timestep: int = 0
    summaries: List[EngramsInfo] = field(default_factory=list)
    engram_creation_times: Dict[int, int] = field(default_factory=dict)
    engram_deletion_times: Dict[int, int] = field(default_factory=dict)
    engram_firings: Dict[int, List[Firing]] = field(default_factory=dict)
    firings_per_time: List[List[Firing]] = field(default_factory=list)

    @property
    def engram_ids(self) -> List[int]:
        return sorted(self.engram_creation_times)

    @property
    def alive_engram_ids(self) -> List[int]:
        return [i for i in self.engram_ids if i not in self.engram_deletion_times]

    @property
    def deleted_engram_ids(self) -> List[int]:
        return sorted(self.engram_deletion_times)

    def engram_durations(self) -> Dict[int, int]:
        """Engram id -> steps it lived, for deleted engrams."""
        return {i: t - self.engram_creation_times[i] for i, t in self.engram_deletion_times.items()}

    # ----------------------------------------------------------------------------------------- recording
    def add_created(self, engram_ids: List[int]) -> None:
        for engram_id in engram_ids:
            self.engram_creation_times[engram_id] = self.timestep

    def add_step(self, firings: List[Firing], deleted_ids: List[int], summary: EngramsInfo) -> None:
        """Close a step: its firings, the engrams deleted at its end, and the state after it."""
        self.firings_per_time.append(firings)
        for firing in firings:
            self.engram_firings.setdefault(firing.engram_id, []).append(firing)
        for engram_id in deleted_ids:
            self.engram_deletion_times[engram_id] = self.timestep + 1
        self.summaries.append(summary)
        self.timestep += 1

    def forget_before(self, timestep: int) -> None:
        """Drop the record of the steps before ``timestep``: their summaries and firings, and the engrams deleted
        by then. What is left reads as the history of steps ``first_timestep .. timestep - 1``."""
        drop = min(timestep, self.timestep) - self.first_timestep
        if drop <= 0:
            return
        for step in self.firings_per_time[:drop]:
            for firing in step:
                firings = self.engram_firings[firing.engram_id]
                firings.pop(0)  # a history records firings in time order: the oldest goes first
                if not firings:
                    del self.engram_firings[firing.engram_id]
        del self.firings_per_time[:drop], self.summaries[:drop]
        self.first_timestep += drop
        while self.engram_deletion_times:  # deletion times are recorded in time order
            engram_id, deleted = next(iter(self.engram_deletion_times.items()))
            if deleted > self.first_timestep:
                break
            del self.engram_deletion_times[engram_id], self.engram_creation_times[engram_id]
            self.engram_firings.pop(engram_id, None)

    @property
    def complete(self) -> bool:
        """Whether every step since the first is still held (nothing was forgotten)."""
        return self.first_timestep == 0

    def check_whole(self, reader: str) -> None:
        """Raise ``ValueError`` unless the history holds a completed step and every step since the first.

        Args:
            reader: what reads the history whole, for the message ("an episode", "the drawing").
        """
        if self.timestep == 0:
            raise ValueError(
                f"history has no completed step for {reader}: run add_working_memory, remind, adjust at least once"
            )
        if not self.complete:
            raise ValueError(
                f"history holds steps {self.first_timestep}..{self.timestep - 1} only: {reader} is read from the "
                "first step; record it with Memoria(..., history_window=None) or a window as long as the episode"
            )

    # ----------------------------------------------------------------------------------------- reading
    def inspect(self, engram_id: int) -> EngramHistory:
        """Everything recorded about one engram.

        Raises:
            KeyError: the id was never created in this row.
        """
        if engram_id not in self.engram_creation_times:
            forgotten = f" or was deleted before step {self.first_timestep}, the first one held" * (not self.complete)
            raise KeyError(f"engram id {engram_id} was never created in this history{forgotten}")
        created = self.engram_creation_times[engram_id]
        deleted = self.engram_deletion_times.get(engram_id)
        firings = list(self.engram_firings.get(engram_id, []))
        return EngramHistory(
            id=engram_id,
            creation_timestep=created,
            deletion_timestep=deleted,
            duration=None if deleted is None else deleted - created,
            firing_times=[f.timestep for f in firings],
            firings=firings,
            summaries=[s for s in self.summaries if engram_id in s.engrams],  # those of the held steps
        )

    # ----------------------------------------------------------------------------------------- storage
    def to_dict(self) -> Dict[str, Any]:
        """A JSON-ready dict (tuple keys become "source,target" strings)."""
        return {
            "timestep": self.timestep,
            "first_timestep": self.first_timestep,
            "summaries": [_summary_to_dict(s) for s in self.summaries],
            "engram_creation_times": {str(k): v for k, v in self.engram_creation_times.items()},
            "engram_deletion_times": {str(k): v for k, v in self.engram_deletion_times.items()},
            "firings_per_time": [[asdict(f) for f in step] for step in self.firings_per_time],
        }

    @classmethod
    def from_dict(cls, state: Dict[str, Any]) -> "HistoryManager":
        """The history a :meth:`to_dict` describes.

        Raises:
            ValueError: the dict is not one :meth:`to_dict` writes (naming the first bad field).
        """
        try:
            return cls._from_dict(state)
        except (KeyError, TypeError, AttributeError, ValueError) as error:
            raise ValueError(
                f"not a history written by HistoryManager.to_dict: {type(error).__name__} {error}"
            ) from None

    @classmethod
    def _from_dict(cls, state: Dict[str, Any]) -> "HistoryManager":
        if not isinstance(state, dict):
            raise TypeError(f"a history is a dict, got {type(state).__name__}")
        history = cls(timestep=_count(state, "timestep"), first_timestep=_count(state, "first_timestep", default=0))
        held = history.timestep - history.first_timestep
        history.summaries = [_summary_from_dict(s) for s in state["summaries"]]
        history.engram_creation_times = {
            int(k): _count(state["engram_creation_times"], k) for k in state["engram_creation_times"]
        }
        history.engram_deletion_times = {
            int(k): _count(state["engram_deletion_times"], k) for k in state["engram_deletion_times"]
        }
        history.firings_per_time = [[Firing(**f) for f in step] for step in state["firings_per_time"]]
        if held < 0 or len(history.summaries) != held or len(history.firings_per_time) != held:
            raise ValueError(
                f"steps {history.first_timestep}..{history.timestep} need {max(held, 0)} summaries and firing lists, "
                f"got {len(history.summaries)} and {len(history.firings_per_time)}"
            )
        for step in history.firings_per_time:
            for firing in step:
                history.engram_firings.setdefault(firing.engram_id, []).append(firing)
        return history

    def save(self, path: PathLike) -> None:
        """Write gzip-compressed JSON, atomically (a temporary file beside ``path`` replaces it when complete)."""
        with atomic_write(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as packed:
            with io.TextIOWrapper(packed, encoding="utf-8") as f:
                json.dump(self.to_dict(), f)

    @classmethod
    def load(cls, path: PathLike) -> "HistoryManager":
        """Read a history written by :meth:`save`.

        Raises:
            FileNotFoundError: no file at ``path``.
            ValueError: the file is not gzip, is truncated, or is not a history's JSON (the message names it).
        """
        try:
            with gzip.open(path, "rt", encoding="utf-8") as f:
                state = json.load(f)
        except FileNotFoundError:
            raise
        except (OSError, EOFError, zlib.error, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(
                f"{path}: not a history saved by HistoryManager.save ({type(error).__name__}: {error})"
            ) from None
        try:
            return cls.from_dict(state)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None


def _count(fields: Dict[str, Any], key: str, default: Optional[int] = None) -> int:
    """``fields[key]`` checked to be an int >= 0 (``default`` when missing and a default is given)."""
    value = fields.get(key, default) if default is not None else fields[key]
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{key!r} must be an int >= 0, got {value!r}")
    return value


def _connection_to_list(c: EngramConnection) -> List[Any]:
    return [c.source_id, c.target_id, c.weight, c.cofire_count]


def _summary_to_dict(summary: EngramsInfo) -> Dict[str, Any]:
    return {
        "engrams": [
            {
                "id": e.id,
                "type": e.type,
                "lifespan": e.lifespan,
                "age": e.age,
                "fire_count": e.fire_count,
            }
            for e in summary.engrams.values()
        ],
        "edges": [_connection_to_list(c) for c in summary.edges.values()],
        "working": list(summary.working),
        "shortterm": list(summary.shortterm),
        "longterm": list(summary.longterm),
    }


def _summary_from_dict(state: Dict[str, Any]) -> EngramsInfo:
    edges = {(s, t): EngramConnection(s, t, w, c) for s, t, w, c in state["edges"]}
    return build_summary(state["engrams"], edges, state["working"], state["shortterm"], state["longterm"])


def build_summary(
    engrams: List[Dict[str, Any]],
    edges: Dict[Tuple[int, int], EngramConnection],
    working: List[int],
    shortterm: List[int],
    longterm: List[int],
) -> EngramsInfo:
    """Assemble an :class:`EngramsInfo` from per-engram fields and the edge list."""
    outgoing: Dict[int, List[EngramConnection]] = {}
    incoming: Dict[int, List[EngramConnection]] = {}
    for edge in edges.values():
        outgoing.setdefault(edge.source_id, []).append(edge)
        incoming.setdefault(edge.target_id, []).append(edge)
    infos = {
        e["id"]: EngramInfo(
            id=e["id"],
            type=e["type"],
            lifespan=e["lifespan"],
            age=e["age"],
            fire_count=e["fire_count"],
            outgoings=tuple(outgoing.get(e["id"], ())),
            incoming=tuple(incoming.get(e["id"], ())),
        )
        for e in engrams
    }
    return EngramsInfo(infos, edges, tuple(working), tuple(shortterm), tuple(longterm))
