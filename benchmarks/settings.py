"""The Memoria configurations of the paper's experiments, as benchmark settings."""

from dataclasses import asdict, dataclass
from typing import Any, Dict

from memoria.memoria import COUNT_SETTINGS


@dataclass(frozen=True)
class Setting:
    """One benchmark configuration: input shape and the ``Memoria`` constructor arguments.

    Attributes:
        name: short name used on the command line.
        batch_size: B, batch rows.
        working_length: W, working engrams added per step.
        hidden_dim: D, width of each engram.
        stm_capacity: short-term memory capacity per row.
        num_reminded_stm: short-term engrams reminded per step.
        num_final_ltms: long-term engrams reminded per step.
        ltm_search_depth: steps of each long-term graph walk.
        initial_lifespan: lifespan a new engram starts with.
        static_ltm_capacity: ``max_ltm_per_row`` of the static-shape rows (``static_shapes=True`` needs a bound; the
            default rows keep every LTM engram).
    """

    name: str
    batch_size: int
    working_length: int
    hidden_dim: int
    stm_capacity: int
    num_reminded_stm: int
    num_final_ltms: int
    ltm_search_depth: int
    initial_lifespan: int
    static_ltm_capacity: int

    def memoria_kwargs(self) -> Dict[str, int]:
        """Keyword arguments for ``Memoria(...)`` (both implementations take the same ones)."""
        return {name: getattr(self, name) for name in COUNT_SETTINGS}

    def static_kwargs(self) -> Dict[str, Any]:
        """Keyword arguments that turn our ``Memoria`` into the static-shape one (``mode="paper"``, bounded LTM)."""
        return {"mode": "paper", "static_shapes": True, "max_ltm_per_row": self.static_ltm_capacity}

    def to_dict(self) -> Dict[str, Any]:
        """All fields, for JSON."""
        return asdict(self)


SETTINGS: Dict[str, Setting] = {
    s.name: s
    for s in (
        Setting("lm", 8, 50, 768, 400, 50, 50, 10, 9, 1024),
        Setting("sorting", 8, 128, 512, 512, 256, 640, 10, 5, 4096),
        Setting("enwik8", 8, 128, 512, 1536, 192, 192, 10, 9, 2048),
        Setting("classification", 8, 64, 768, 128, 64, 64, 10, 12, 2048),
    )
}
"""The paper's configurations: language modelling (Wikitext-103 / PG-19), sorting, enwik8, classification."""
