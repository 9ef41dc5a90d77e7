"""Engram history (placeholder, filled in below)."""


class HistoryManager:
    def __init__(self) -> None:
        pass
