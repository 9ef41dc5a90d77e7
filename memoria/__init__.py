"""Memoria: a human-inspired memory architecture for neural networks (Park & Bak, ICML 2024).

The public API of memoria-pytorch 1.0.0 (``utils``, ``Abstractor``, ``Engrams``, ``EngramType``, ``Memoria``,
``SparseTensor``) plus 1.1.0's ``HistoryManager`` and ``history_manager`` module, and our own additions
(``EngramStore``, the history record types).
"""

from . import history_manager, utils
from .abstractor import Abstractor
from .engram import Engrams, EngramType
from .history import EngramConnection, EngramHistory, EngramInfo, EngramsInfo, Firing, HistoryManager
from .memoria import Memoria
from .sparse_tensor import SparseTensor
from .store import EngramStore

__version__ = "2.0.0"
__all__ = [
    "utils",
    "history_manager",
    "Abstractor",
    "Engrams",
    "EngramType",
    "Memoria",
    "SparseTensor",
    "EngramStore",
    "EngramConnection",
    "EngramHistory",
    "EngramInfo",
    "EngramsInfo",
    "Firing",
    "HistoryManager",
]
