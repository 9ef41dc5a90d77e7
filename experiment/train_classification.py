"""Trains a long-document classifier (Memoria BERT / RoBERTa or a plain-encoder baseline) segment by segment.

Each batch of documents starts with fresh memory; each document is read in segments of --segment-length tokens
(each "[CLS] ... [SEP]"), with padding masked. The loss is the paper's (every segment's cross-entropy against the
document's label, averaged over the document's segments; --loss last for the last segment only), and the
prediction is the last segment's (--prediction mean averages the segments' logits). Writes TensorBoard logs,
checkpoints (best by dev macro-F1, and final), the model in Hugging Face format and results.json (accuracy and
macro-F1 of the final weights and of the best-on-dev checkpoint) under --output-dir.

Data (local files only):
  --dataset json          --data FILE: the classification JSON layout (experiment/README.md)
  --dataset hyperpartisan --data ARTICLES.xml --ground-truth GROUND_TRUTH.xml (the SemEval release), or
                          --data FILE.jsonl / FILE.parquet (a Hugging Face export of the by-article set);
                          --split-file SPLITS.json picks the split by article id or position (overlap is
                          reported), --split-file published the paper's (Longformer's) split shipped here,
                          otherwise a clean seeded stratified split (--split-seed) is made.

Example:
    python -m experiment.train_classification --dataset hyperpartisan --data data/articles-byarticle.xml \\
        --ground-truth data/ground-truth-byarticle.xml --tokenizer models/bert-base-uncased \\
        --pretrained models/bert-base-uncased --model-config experiment/configs/memoria-bert-hyperpartisan.json \\
        --output-dir outputs/hyperpartisan/memoria-bert
"""

import json
from pathlib import Path
from typing import Any, Dict, List, Optional

from .cli import add_hardware_arguments, add_model_arguments, add_training_arguments, make_parser

# fields a pretrained checkpoint's config.json does not dictate
NOT_ENCODER_FIELDS = {
    "model_type",
    "architectures",
    "transformers_version",
    "id2label",
    "label2id",
    "num_labels",
    "torch_dtype",
    "dtype",
    "problem_type",
    "_name_or_path",
}


def add_data_arguments(parser) -> None:
    """--dataset, --data, --ground-truth, --split-file, --split-seed, --tokenizer, --max-segments."""
    group = parser.add_argument_group("data")
    group.add_argument("--dataset", choices=("json", "hyperpartisan"), default="json")
    group.add_argument("--data", required=True, help="the data file (see above)")
    group.add_argument("--ground-truth", help="hyperpartisan: the SemEval ground-truth XML beside --data")
    group.add_argument(
        "--split-file",
        help="hyperpartisan: JSON {train, dev, test} of article ids or positions, or 'published': the shipped "
        "Longformer split the paper used (positions into the Hugging Face byarticle export)",
    )
    group.add_argument(
        "--split-by",
        choices=("id", "index"),
        help="hyperpartisan: the split file holds SemEval article ids or positions in file order (default: id for "
        "the XML layout, index for an export)",
    )
    group.add_argument("--include-title", action="store_true", help="hyperpartisan: the title before the text")
    group.add_argument("--split-seed", type=int, default=0, help="hyperpartisan: seed of the clean split")
    group.add_argument("--tokenizer", required=True, help="local tokenizer directory (transformers or tokenizers)")
    group.add_argument(
        "--max-segments", type=int, help="keep only each document's first N segments (1: the truncation baseline)"
    )


def build_parser():
    """The script's arguments."""
    parser = make_parser(__doc__)
    add_data_arguments(parser)
    add_model_arguments(parser)
    parser.set_defaults(segment_length=512)
    group = parser.add_argument_group("classification")
    group.add_argument("--pretrained", help="local BERT / RoBERTa checkpoint directory to start the encoder from")
    group.add_argument("--prediction", choices=("last", "mean"), default="last", help="last segment's or mean logits")
    group.add_argument("--loss", choices=("segments", "last"), default="segments", help="every segment's or the last's")
    add_training_arguments(parser, learning_rate=2e-5, batch_size=8, eval_batch_size=8)
    add_hardware_arguments(parser)
    return parser


def load_data(args):
    """The documents and splits ``args`` names."""
    from .data.classification import load_classification_data

    if args.dataset == "json":
        return load_classification_data(args.data)
    from .data.hyperpartisan import load_hyperpartisan

    return load_hyperpartisan(
        args.data,
        args.ground_truth,
        split_file=args.split_file,
        split_seed=args.split_seed,
        split_by=args.split_by,
        include_title=args.include_title,
    )


def model_config(args, num_labels: int, vocab_size: int, pad_token_id: int):
    """--model-config with the data's labels, the tokenizer's vocabulary and padding id, the encoder fields of
    --pretrained's config.json, then --config-override; checks --segment-length against the positions."""
    from transformers import AutoConfig

    from .training import load_model_config

    fields: Dict[str, Any] = dict(num_labels=num_labels, vocab_size=vocab_size, pad_token_id=pad_token_id)
    if args.pretrained:
        path = Path(args.pretrained) / "config.json"
        if not path.is_file():
            raise FileNotFoundError(f"--pretrained {args.pretrained} has no config.json")
        defaults = AutoConfig.from_pretrained(args.model_config).to_dict()
        pretrained = json.loads(path.read_text())
        fields.update({k: v for k, v in pretrained.items() if k in defaults and k not in NOT_ENCODER_FIELDS})
        if pretrained.get("vocab_size", vocab_size) < vocab_size:
            raise ValueError(f"--tokenizer has {vocab_size} ids but --pretrained only {pretrained['vocab_size']}")
    config = load_model_config(args, **fields)
    # RoBERTa counts positions from pad_token_id + 1
    offset = config.pad_token_id + 1 if "roberta" in config.model_type else 0
    if args.segment_length + offset > config.max_position_embeddings:
        raise ValueError(
            f"--segment-length {args.segment_length} needs {args.segment_length + offset} positions; the model has "
            f"max_position_embeddings {config.max_position_embeddings}"
        )
    return config


def load_pretrained_encoder(model, path: str) -> List[str]:
    """Copies the weights of the local checkpoint ``path`` into ``model``; returns the names it did not hold
    (the new modules, which keep their initialisation)."""
    import torch

    loaded, info = type(model).from_pretrained(path, config=model.config, output_loading_info=True)
    with torch.no_grad():
        model.load_state_dict(loaded.state_dict())
    return sorted(info["missing_keys"])


def train(args) -> Dict[str, Any]:
    """Trains, tests the final weights and the best-on-dev checkpoint and writes results.json; returns it."""
    from .data.tokenization import load_tokenizer
    from .tasks import ClassificationDataModule, ClassificationTask
    from .training import train_and_test

    data = load_data(args)
    print(data.summary(), flush=True)
    tokenizer = load_tokenizer(args.tokenizer)
    datamodule = ClassificationDataModule(
        data,
        tokenizer,
        args.segment_length,
        args.batch_size,
        args.eval_batch_size,
        args.max_segments,
        args.num_workers,
    )
    config = model_config(args, len(data.labels), tokenizer.vocab_size, tokenizer.pad_id)
    config.id2label = dict(enumerate(data.labels))
    config.label2id = {label: index for index, label in enumerate(data.labels)}

    def make_task() -> ClassificationTask:
        task = ClassificationTask(
            config.to_dict(),
            args.segment_length,
            learning_rate=args.learning_rate,
            warmup_ratio=args.warmup_ratio,
            weight_decay=args.weight_decay,
            prediction=args.prediction,
            loss=args.loss,
        )
        if args.pretrained:
            missing = load_pretrained_encoder(task.model, args.pretrained)
            print(f"loaded {args.pretrained}; newly initialised: {len(missing)} tensors", flush=True)
        return task

    extra = {"labels": data.labels, "split_overlap": data.overlap}
    return train_and_test(args, make_task, datamodule, extra_results=extra)


def main(argv: Optional[List[str]] = None) -> None:
    results = train(build_parser().parse_args(argv))
    test, best = results["test"], results["test_best"]
    print(
        f"test accuracy {test['accuracy']:.4f}, macro-F1 {test['macro_f1']:.4f} (final weights); "
        f"accuracy {best['accuracy']:.4f}, macro-F1 {best['macro_f1']:.4f} (best on dev); "
        f"mean step {results['mean_step_seconds']:.3f} s; outputs in {results['output_dir']}"
    )


if __name__ == "__main__":
    main()
