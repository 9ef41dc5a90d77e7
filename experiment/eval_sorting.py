"""Evaluates a training checkpoint on a split of a sorting-data file and prints its token accuracy.

Example:
    python -m experiment.eval_sorting --checkpoint outputs/memoria-sort-1k/checkpoints/final.ckpt \\
        --data outputs/data/sort-1k.json
"""

from typing import Dict, List, Optional

from .cli import make_parser, parse_devices


def build_parser():
    """The script's arguments."""
    parser = make_parser(__doc__)
    parser.add_argument("--checkpoint", required=True, help="Lightning checkpoint written by train_sorting")
    parser.add_argument("--data", required=True, help="JSON file in the paper's layout")
    parser.add_argument("--split", default="test", choices=("train", "dev", "test"))
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument("--devices", default="1")
    parser.add_argument("--precision", default="32-true")
    parser.add_argument("--seed", type=int, default=42, help="seeds Memoria's random tie-breaking")
    return parser


def evaluate(args) -> Dict[str, float]:
    """Loads the checkpoint and returns its loss and accuracy on the split."""
    import lightning as L
    from torch.utils.data import DataLoader

    from .data.sorting import load_sorting_data
    from .datasets.sorting import SortingDataset
    from .tasks import SortingTask
    from .training import check_checkpoint, quiet_lightning

    quiet_lightning()
    L.seed_everything(args.seed, verbose=False)
    check_checkpoint(args.checkpoint, "--checkpoint")
    task = SortingTask.load_from_checkpoint(args.checkpoint, map_location="cpu", weights_only=True)
    loader = DataLoader(SortingDataset(load_sorting_data(args.data), args.split), batch_size=args.batch_size)
    trainer = L.Trainer(
        accelerator=args.accelerator,
        devices=parse_devices(args.devices),
        precision=args.precision,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    return trainer.test(task, dataloaders=loader, verbose=False)[0]


def main(argv: Optional[List[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    results = evaluate(args)
    print(f"{args.split} accuracy {results['test/accuracy']:.4f}, loss {results['test/loss']:.4f}")


if __name__ == "__main__":
    main()
