"""Wall-clock time of training steps, for comparing models."""

import time
from typing import Any, List

import lightning as L


class StepTimer(L.Callback):
    """Measures each training step (forward, backward and optimiser) and logs it as ``train/step_seconds``.

    Args:
        skip: the first steps to leave out of :attr:`mean_seconds` (warm-up of allocators and caches).
    """

    def __init__(self, skip: int = 3) -> None:
        self.skip = skip
        self.seconds: List[float] = []
        self._start = 0.0

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int):
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any, batch_idx):
        seconds = time.perf_counter() - self._start
        self.seconds.append(seconds)
        pl_module.log("train/step_seconds", seconds, on_step=True, on_epoch=False)

    @property
    def mean_seconds(self) -> float:
        """Mean step time after the skipped steps (over all steps when there are too few)."""
        kept = self.seconds[self.skip :] or self.seconds
        return sum(kept) / len(kept) if kept else float("nan")
