"""torch Datasets over generated data."""

from .sorting import IGNORE_INDEX, SortingDataset
