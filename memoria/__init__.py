"""Memoria: a human-inspired memory architecture for neural networks (Park & Bak, ICML 2024)."""

from . import utils
from .engram import Engrams, EngramType
from .history import HistoryManager
from .memoria import Memoria

__version__ = "2.0.0"
__all__ = ["utils", "Engrams", "EngramType", "HistoryManager", "Memoria"]
