"""The history record types under the module name memoria-pytorch 1.1.0 uses (``memoria.types``)."""

from .history import EngramConnection, EngramHistory, EngramInfo, EngramsInfo, Firing

__all__ = ["EngramConnection", "EngramHistory", "EngramInfo", "EngramsInfo", "Firing"]
