"""The Memoria configurations of the paper's experiments, as benchmark settings."""

from dataclasses import asdict, dataclass
from typing import Any, Dict


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

    def memoria_kwargs(self) -> Dict[str, int]:
        """Keyword arguments for ``Memoria(...)`` (both implementations take the same ones)."""
        return {
            "num_reminded_stm": self.num_reminded_stm,
            "stm_capacity": self.stm_capacity,
            "ltm_search_depth": self.ltm_search_depth,
            "initial_lifespan": self.initial_lifespan,
            "num_final_ltms": self.num_final_ltms,
        }

    def to_dict(self) -> Dict[str, Any]:
        """All fields, for JSON."""
        return asdict(self)


SETTINGS: Dict[str, Setting] = {
    s.name: s
    for s in (
        Setting("lm", 8, 50, 768, 400, 50, 50, 10, 9),
        Setting("sorting", 8, 128, 512, 512, 256, 640, 10, 5),
        Setting("enwik8", 8, 128, 512, 1536, 192, 192, 10, 9),
        Setting("classification", 8, 64, 768, 128, 64, 64, 10, 12),
    )
}
"""The paper's configurations: language modelling (Wikitext-103 / PG-19), sorting, enwik8, classification."""
