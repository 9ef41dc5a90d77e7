"""Memoria: a human-inspired memory architecture for neural networks (Park & Bak, ICML 2024)."""

from . import utils
from .abstractor import Abstractor
from .engram import EngramType
from .history import EngramConnection, EngramHistory, EngramInfo, EngramsInfo, Firing, HistoryManager
from .memoria import Memoria
from .store import EngramStore

Engrams = EngramStore  # temporary alias while memoria.engram gains the 1.0.0 value type

__version__ = "2.0.0"
__all__ = [
    "utils",
    "Abstractor",
    "EngramStore",
    "Engrams",
    "EngramType",
    "EngramConnection",
    "EngramHistory",
    "EngramInfo",
    "EngramsInfo",
    "Firing",
    "HistoryManager",
    "Memoria",
]
