"""Memoria: a human-inspired memory architecture for neural networks (Park & Bak, ICML 2024)."""

from . import utils
from .abstractor import Abstractor
from .engram import Engrams, EngramType
from .history import EngramConnection, EngramHistory, EngramInfo, EngramsInfo, Firing, HistoryManager
from .memoria import Memoria

__version__ = "2.0.0"
__all__ = [
    "utils",
    "Abstractor",
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
