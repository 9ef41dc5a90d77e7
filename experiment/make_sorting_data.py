"""Generates the sorting task's train, dev and test sets into one file.

Example (the paper's 1K to 32K lengths use --sequence-length 1024 ... 32768):
    python -m experiment.make_sorting_data --output data/sort-1k.pt --sequence-length 1024
"""

import argparse
from typing import List, Optional

from .longseq_formers.data.sorting import generate_sorting_data, save_sorting_data


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", required=True, help="file to write (a torch.save dict of the three splits)")
    parser.add_argument("--sequence-length", type=int, default=1024, help="symbols before the separator (T)")
    parser.add_argument("--vocab-size", type=int, default=20, help="number of symbols (K)")
    parser.add_argument("--num-train", type=int, default=10000)
    parser.add_argument("--num-dev", type=int, default=500)
    parser.add_argument("--num-test", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv: Optional[List[str]] = None) -> None:
    args = parse_args(argv)
    data = generate_sorting_data(
        args.sequence_length, args.vocab_size, args.num_train, args.num_dev, args.num_test, args.seed
    )
    save_sorting_data(data, args.output)
    print(
        f"wrote {args.output}: {args.num_train}/{args.num_dev}/{args.num_test} examples of "
        f"{args.sequence_length} symbols from {args.vocab_size}, seed {args.seed}"
    )


if __name__ == "__main__":
    main()
