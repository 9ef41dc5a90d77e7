"""Engram types: the kind of memory each stored engram belongs to."""

from enum import Enum


class EngramType(Enum):
    """The kind of memory an engram belongs to (stored as uint8 in :attr:`EngramStore.engrams_types`).

    NULL marks front padding: a position that holds no engram (lifespan -1, zero vector).
    """

    NULL = 0
    WORKING = 1
    SHORTTERM = 2
    LONGTERM = 3
