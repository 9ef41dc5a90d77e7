"""Evaluates a checkpoint of train_classification on a split and prints its accuracy and macro-F1.

The data arguments are train_classification's (the same split must be named again: the same --split-file, or
the same --split-seed for the clean split). The segment length, prediction and loss are the checkpoint's.

Example:
    python -m experiment.eval_classification --checkpoint outputs/hyperpartisan/memoria-bert/checkpoints/final.ckpt \\
        --dataset hyperpartisan --data data/articles-byarticle.xml --ground-truth data/ground-truth-byarticle.xml \\
        --tokenizer models/bert-base-uncased --split test
"""

from typing import Dict, List, Optional

from .cli import make_parser, parse_devices
from .train_classification import add_data_arguments


def build_parser():
    """The script's arguments."""
    parser = make_parser(__doc__)
    parser.add_argument("--checkpoint", required=True, help="Lightning checkpoint written by train_classification")
    add_data_arguments(parser)
    parser.add_argument("--split", default="test", choices=("train", "dev", "test"))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument("--devices", default="1")
    parser.add_argument("--precision", default="32-true")
    parser.add_argument("--seed", type=int, default=42, help="seeds Memoria's random tie-breaking")
    return parser


def evaluate(args) -> Dict[str, float]:
    """Loads the checkpoint and returns its loss, accuracy and macro-F1 on the split."""
    import lightning as L
    from torch.utils.data import DataLoader

    from .data.tokenization import load_tokenizer
    from .datasets.classification import ClassificationDataset
    from .tasks import ClassificationTask
    from .train_classification import load_data
    from .training import check_checkpoint, quiet_lightning

    quiet_lightning()
    L.seed_everything(args.seed, verbose=False)
    check_checkpoint(args.checkpoint, "--checkpoint")
    task = ClassificationTask.load_from_checkpoint(args.checkpoint, map_location="cpu", weights_only=True)
    data = load_data(args)
    if data.labels != [task.model.config.id2label[i] for i in range(len(data.labels))]:
        raise ValueError(f"the data's labels {data.labels} differ from the checkpoint's {task.model.config.id2label}")
    dataset = ClassificationDataset(
        data.split(args.split), load_tokenizer(args.tokenizer), task.hparams.segment_length, args.max_segments
    )
    loader = DataLoader(dataset, batch_size=args.batch_size, collate_fn=dataset.collate)
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
    print(
        f"{args.split} accuracy {results['test/accuracy']:.4f}, macro-F1 {results['test/macro_f1']:.4f}, "
        f"loss {results['test/loss']:.4f}"
    )


if __name__ == "__main__":
    main()
