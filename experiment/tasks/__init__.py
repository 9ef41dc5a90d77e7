"""Lightning tasks: the shared segment loop (``base``) and each experiment's task."""

from .base import Segment, SegmentLoss, SegmentTask, linear_warmup_decay, segment_slices
from .classification import ClassificationDataModule, ClassificationTask
from .language_modeling import CorpusPerplexity, LanguageModelingDataModule, LanguageModelingTask
from .recall import RecallDataModule, RecallTask
from .sorting import SortingDataModule, SortingTask
from .timing import StepTimer
