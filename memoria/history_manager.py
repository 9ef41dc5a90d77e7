"""Engram history under the module name memoria-pytorch 1.1.0 uses (``memoria.history_manager``)."""

from .history import EngramHistory, EngramInfo, EngramsInfo, Firing, HistoryManager

__all__ = ["EngramHistory", "EngramInfo", "EngramsInfo", "Firing", "HistoryManager"]
