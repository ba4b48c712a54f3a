"""Save the architecture and vocabulary of a model with fresh random weights: the baseline against which
a pretrained model is compared ("the same architecture from random initialisation").

    python examples/random_init.py runs/pretrain-en-mini/model runs/pretrain-en-mini/random [--seed 0]
"""

from __future__ import annotations

import argparse

import torch
from transformers import AutoConfig, AutoTokenizer, BertForPreTraining


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("model")
    parser.add_argument("out")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    model = BertForPreTraining(AutoConfig.from_pretrained(args.model))
    model.save_pretrained(args.out)
    AutoTokenizer.from_pretrained(args.model).save_pretrained(args.out)
    print(f"{args.out}: {sum(p.numel() for p in model.parameters()):,} random parameters")


if __name__ == "__main__":
    main()
