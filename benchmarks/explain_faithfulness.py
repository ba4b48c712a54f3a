"""Are ``bertkit explain``'s attributions faithful? Removing the words a method ranks highest must hurt
the prediction more than removing random words.

AOPC comprehensiveness (DeYoung et al. 2020, ERASER): for each explained target, the drop of its
probability after removing the top 10%, 20%, ..., 50% of the window's words by attribution, averaged
over the levels and the targets; the same for random orders (several draws) as the baseline. The
probability is exp of the target score: the predicted class's probability (classify), the joint
probability of the entity's predicted tags (ner). Classification deletes the words (later positions
move up); NER masks them with [MASK], since its targets are read at fixed positions. Also reported:
IG's mean completeness error, and seconds per target of each method.

    python benchmarks/explain_faithfulness.py --model runs/sst2/minilm \
        --data /work/shared/data/glue_sst2/dev.tsv --limit 200 --threads 1 --out runs/explain/sst2.json
"""

from __future__ import annotations

import argparse
import csv
import math
import platform
import random
import time
from pathlib import Path

import numpy as np
import torch

from bertkit.atomic import write_json
from bertkit.inference.attribution_targets import subjects
from bertkit.inference.explain import ExplainOptions, attribute, deleted_batch, masked_batch
from bertkit.inference.predictor import Predictor

LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5)
METHODS = ("ig", "occlusion", "attention")
# how a family's words are removed: deleted where the target reads only [CLS], masked where it reads
# the words' own positions (moving them would change what the target is)
REMOVAL = {"classify": "delete", "re": "mask", "ner": "mask", "qa": "mask"}


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def read_records(predictor: Predictor, path: str, limit: int) -> list:
    """SST-2's TSV (first column) for classify; anything else as the task reads it, unlabelled."""
    task = predictor.task
    if task.name == "classify" and path.endswith(".tsv"):
        with open(path, encoding="utf-8", newline="") as f:
            rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[1:]
        return [task.to_record(row[0].strip()) for row in rows[:limit]]
    return task.read(path, labelled=False)[:limit]


def ranked(scores: list, present: list[int]) -> list[int]:
    """The window's words, highest attribution first."""
    return sorted(present, key=lambda w: -scores[w])


def drops(predictor: Predictor, target, orders: list[list[int]], mode: str) -> np.ndarray:
    """[order, level] drops of the target probability after removing each order's top words."""
    task, model, window = predictor.task, predictor.model, target.window
    sets = [set(order[: max(1, round(level * len(order)))]) for order in orders for level in LEVELS]
    if mode == "delete":
        batch = deleted_batch(window, sets, task.tokenizer.pad_token_id or 0)
    else:
        batch = masked_batch(window, sets, task.tokenizer.mask_token_id)
    with torch.no_grad():
        full = math.exp(float(target.score(task.forward(model, window.batch))[0]))
        removed = torch.exp(target.score(task.forward(model, batch)).float()).numpy()
    return (full - removed).reshape(len(orders), len(LEVELS))


def run(args: argparse.Namespace) -> dict:
    torch.manual_seed(0)
    predictor = Predictor.load(args.model, precision="fp32", threads=args.threads)
    task = predictor.task
    records = read_records(predictor, args.data, args.limit)
    predictions = predictor.predict_records(records)
    targets = [(s, t) for s in subjects(task, predictor.model, records, predictions) for t in s.targets][
        : args.max_targets
    ]
    rng = random.Random(args.seed)
    mode = REMOVAL[task.name]
    aopc = {m: [] for m in (*METHODS, "random")}
    seconds = {m: 0.0 for m in METHODS}
    errors = []
    for subject, target in targets:
        present = sorted({w for w in target.window.word_of if w is not None})
        orders = []
        for method in METHODS:
            options = ExplainOptions(
                method=method, n_steps=args.n_steps, internal_batch_size=args.internal_batch_size
            )
            start = time.perf_counter()
            attribution = attribute(task, predictor.model, target, len(subject.words), options)
            seconds[method] += time.perf_counter() - start
            if method == "ig":
                errors.append(attribution.completeness_error)
            orders.append(ranked(attribution.scores, present))
        for _ in range(args.random_draws):
            orders.append(rng.sample(present, len(present)))
        table = drops(predictor, target, orders, mode)
        for m, method in enumerate(METHODS):
            aopc[method].append(float(table[m].mean()))
        aopc["random"].append(float(table[len(METHODS) :].mean()))
    means = {m: float(np.mean(v)) for m, v in aopc.items()}
    return {
        "model": args.model,
        "data": args.data,
        "task": task.name,
        "removal": mode,
        "records": len(records),
        "targets": len(targets),
        "n_steps": args.n_steps,
        "random_draws": args.random_draws,
        "aopc": means,
        "ratio_to_random": {m: means[m] / means["random"] if means["random"] else None for m in METHODS},
        "seconds_per_target": {m: seconds[m] / max(len(targets), 1) for m in METHODS},
        "completeness_error_mean": float(np.mean(errors)),
        "completeness_error_median": float(np.median(errors)),
        "completeness_flagged": int(sum(e > 0.05 for e in errors)),
        "cpu": cpu_name(),
        "threads": args.threads,
    }


def print_table(result: dict) -> None:
    print(
        f"{result['model']} ({result['task']}) on {result['targets']} targets of {result['records']} records"
    )
    print(f"words removed by {result['removal']}; CPU {result['cpu']}, {result['threads']} thread(s)")
    print("| method | AOPC | ratio to random | s/target |")
    print("|---|---|---|---|")
    for m in METHODS:
        row = (m, result["aopc"][m], result["ratio_to_random"][m], result["seconds_per_target"][m])
        print("| {} | {:.4f} | {:.2f} | {:.3f} |".format(*row))
    print(f"| random ({result['random_draws']} draws) | {result['aopc']['random']:.4f} | 1.00 | |")
    mean, median = result["completeness_error_mean"], result["completeness_error_median"]
    print(
        f"IG completeness error (n_steps {result['n_steps']}): mean {100 * mean:.3f}%, "
        f"median {100 * median:.3f}%, above 5%: {result['completeness_flagged']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--limit", type=int, default=200, help="records read (default 200)")
    parser.add_argument("--max-targets", type=int, default=200, help="targets explained at most")
    parser.add_argument("--n-steps", type=int, default=50)
    parser.add_argument("--internal-batch-size", type=int, default=25)
    parser.add_argument("--random-draws", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    result = run(args)
    print_table(result)
    if args.out:
        write_json(args.out, result)


if __name__ == "__main__":
    main()
