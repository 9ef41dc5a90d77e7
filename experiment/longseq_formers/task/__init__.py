"""Lightning tasks: the training and evaluation loops of each experiment."""

from .sorting import SortingDataModule, SortingTask, segment_slices
from .timing import StepTimer
