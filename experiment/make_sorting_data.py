"""Generates the sorting task's train, dev and test sets into one JSON file in the paper's layout.

Example (the paper's 1K to 32K lengths use --sequence-length 1000 ... 32000):
    python -m experiment.make_sorting_data --output outputs/data/sort-1k.json --sequence-length 1000
"""

from typing import List, Optional

from .cli import make_parser


def build_parser():
    """The script's arguments."""
    parser = make_parser(__doc__)
    parser.add_argument("--output", required=True, help="JSON file to write")
    parser.add_argument("--sequence-length", type=int, default=1000, help="symbols before the separator (T)")
    parser.add_argument("--vocab-size", type=int, default=20, help="number of symbols (K)")
    parser.add_argument("--num-train", type=int, default=10000)
    parser.add_argument("--num-dev", type=int, default=500)
    parser.add_argument("--num-test", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--distribution",
        choices=("integers", "dirichlet"),
        default="integers",
        help="symbol weights: random integers 1-9 (the paper's) or Dirichlet(1)",
    )
    parser.add_argument(
        "--tie-break",
        choices=("first-appearance", "symbol-id"),
        default="first-appearance",
        help="order of symbols with equal counts",
    )
    return parser


def main(argv: Optional[List[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    from .data.sorting import generate_sorting_data, save_sorting_data

    data = generate_sorting_data(
        args.sequence_length,
        args.vocab_size,
        args.num_train,
        args.num_dev,
        args.num_test,
        args.seed,
        distribution=args.distribution,
        tie_break=args.tie_break,
    )
    save_sorting_data(data, args.output)
    print(
        f"wrote {args.output}: {args.num_train}/{args.num_dev}/{args.num_test} examples of "
        f"{args.sequence_length} symbols from {args.vocab_size}, seed {args.seed}"
    )


if __name__ == "__main__":
    main()
