"""A training loader that can stop anywhere in an epoch and carry on from there: the position goes into the checkpoint.

The order of an epoch's examples is a function of (seed, epoch) alone (:class:`ResumableSampler`), and the loader
counts the batches it has handed out (:class:`ResumableLoader`); Lightning stores that count in every checkpoint
(the loader's ``state_dict``) and gives it back when training resumes, so the resumed run reads the batches the
interrupted run had not yet trained on, in the same order.
"""

import operator
from typing import Any, Dict, Iterator, Optional

import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

POSITION_FIELDS = ("epoch", "batches", "batch_size", "examples", "processes")


class ResumableSampler(DistributedSampler):
    """One process's share of a dataset's indices, shuffled by a generator seeded with ``seed + epoch`` (so the
    order depends on the seed and the epoch only, never on torch's global generator), and able to start part-way.

    Lightning calls :meth:`set_epoch` before each epoch. Under DDP each of ``num_replicas`` processes reads every
    ``num_replicas``-th index of the epoch's order (the shares padded to equal length, as torch's DistributedSampler).

    Args:
        dataset: the examples.
        num_replicas: processes sharing the epoch.
        rank: this process's rank.
        shuffle: whether each epoch is shuffled.
        seed: the seed of every epoch's order.
    """

    def __init__(
        self, dataset: Dataset, num_replicas: int = 1, rank: int = 0, shuffle: bool = True, seed: int = 0
    ) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed)
        self.start = 0

    def __iter__(self) -> Iterator[int]:
        """This epoch's share of indices from position :attr:`start` (which then returns to 0 for the next pass)."""
        start, self.start = self.start, 0
        return iter(list(super().__iter__())[start:])


class ResumableLoader(DataLoader):
    """A DataLoader over a :class:`ResumableSampler` whose position in the epoch is part of Lightning's checkpoints.

    ``state_dict()`` is the epoch and the number of batches of it handed out so far (with the batch size, this
    process's number of examples per epoch and the number of processes, checked when loading). After
    ``load_state_dict(state)``, the next pass over the same epoch skips those batches; a pass over another epoch
    (the checkpoint was written at the end of an epoch) starts at its beginning.

    Args:
        dataset: the examples.
        batch_size: examples per batch.
        sampler: the order of the examples.
        kwargs: more DataLoader arguments (``num_workers``, ``collate_fn``, ...); not ``shuffle`` nor ``generator``.
    """

    def __init__(self, dataset: Dataset, batch_size: int, sampler: ResumableSampler, **kwargs: Any) -> None:
        if not isinstance(sampler, ResumableSampler):
            raise TypeError(f"sampler must be a ResumableSampler, got {type(sampler).__name__}")
        # the generator only seeds worker processes; seeded per epoch in __iter__, it never draws from torch's
        super().__init__(dataset, batch_size=batch_size, sampler=sampler, generator=torch.Generator(), **kwargs)
        self._position = self._state(sampler.epoch, 0)
        self._to_skip: Optional[Dict[str, int]] = None

    def _state(self, epoch: int, batches: int) -> Dict[str, int]:
        sampler = self.sampler
        return {
            "epoch": epoch,
            "batches": batches,
            "batch_size": self.batch_size,
            "examples": len(sampler),
            "processes": sampler.num_replicas,
        }

    def __iter__(self) -> Iterator[Any]:
        """The batches of the sampler's current epoch, from the loaded position when it is in this epoch."""
        sampler = self.sampler
        skip = 0
        if self._to_skip is not None and self._to_skip["epoch"] == sampler.epoch:
            skip = self._to_skip["batches"]
        self._to_skip = None
        sampler.start = skip * self.batch_size
        self.generator.manual_seed(sampler.seed + sampler.epoch)
        self._position = self._state(sampler.epoch, skip)
        for batch in super().__iter__():
            self._position["batches"] += 1
            yield batch

    def state_dict(self) -> Dict[str, int]:
        """The position: {"epoch", "batches" (handed out in that epoch), "batch_size", "examples", "processes"}."""
        return dict(self._position)

    def load_state_dict(self, state: Dict[str, int]) -> None:
        """Makes the next pass over ``state["epoch"]`` start after its ``state["batches"]`` batches.

        Raises:
            ValueError: when ``state`` lacks a field, or was written with another batch size, number of examples
                per process or number of processes while in the middle of an epoch (its batches would not be these).
        """
        missing = [name for name in POSITION_FIELDS if name not in state]
        if missing:
            raise ValueError(f"the loader position in the checkpoint lacks {missing}; it holds {sorted(state)}")
        saved = {name: int(state[name]) for name in POSITION_FIELDS}
        rounding = operator.floordiv if self.drop_last else lambda a, b: -(-a // b)
        saved_per_epoch = rounding(saved["examples"], saved["batch_size"])
        if not 0 <= saved["batches"] <= saved_per_epoch:
            raise ValueError(f"the checkpoint's loader position {saved['batches']} is not in 0..{saved_per_epoch}")
        if not 0 < saved["batches"] < saved_per_epoch:
            return  # at the start or the end of an epoch: the next pass starts at its beginning
        now = self._state(saved["epoch"], saved["batches"])
        differs = [name for name in POSITION_FIELDS[2:] if saved[name] != now[name]]
        if differs:
            then = ", ".join(f"{name} {saved[name]}" for name in differs)
            here = ", ".join(f"{name} {now[name]}" for name in differs)
            raise ValueError(
                f"the checkpoint was written {saved['batches']} batches into an epoch read with {then}; this run "
                f"reads it with {here}: resume with the same --batch-size, data and --devices, or from a checkpoint "
                "written at the end of an epoch"
            )
        self._to_skip = {"epoch": saved["epoch"], "batches": saved["batches"]}
