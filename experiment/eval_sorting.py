"""Evaluates a training checkpoint on a split of a sorting-data file and prints its token accuracy.

Example:
    python -m experiment.eval_sorting --checkpoint outputs/memoria-sort-1k/checkpoints/last.ckpt --data data/sort-1k.pt
"""

import argparse
from typing import Dict, List, Optional

import lightning as L
from torch.utils.data import DataLoader

from .longseq_formers.data.sorting import load_sorting_data
from .longseq_formers.dataset.sorting import SortingDataset
from .longseq_formers.task import SortingTask


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, help="Lightning checkpoint written by train_sorting")
    parser.add_argument("--data", required=True, help="file written by experiment.make_sorting_data")
    parser.add_argument("--split", default="test", choices=("train", "dev", "test"))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument("--devices", default="1")
    parser.add_argument("--precision", default="32-true")
    parser.add_argument("--seed", type=int, default=0, help="seeds Memoria's random tie-breaking")
    return parser


def evaluate(args: argparse.Namespace) -> Dict[str, float]:
    """Loads the checkpoint and returns its loss and accuracy on the split."""
    L.seed_everything(args.seed)
    task = SortingTask.load_from_checkpoint(args.checkpoint, map_location="cpu")
    loader = DataLoader(SortingDataset(load_sorting_data(args.data), args.split), batch_size=args.batch_size)
    devices = int(args.devices) if str(args.devices).isdigit() else args.devices
    trainer = L.Trainer(accelerator=args.accelerator, devices=devices, precision=args.precision, logger=False)
    return trainer.test(task, dataloaders=loader)[0]


def main(argv: Optional[List[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    results = evaluate(args)
    print(f"{args.split} accuracy {results['test/accuracy']:.4f}")


if __name__ == "__main__":
    main()
