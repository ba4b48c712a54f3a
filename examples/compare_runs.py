"""Mean and standard deviation over seeds of fine-tuning runs named TASK-INIT-SEED under a folder.

python examples/compare_runs.py runs/pretrain-en-mini wnut17 f1 sst2 accuracy
"""

from __future__ import annotations

import json
import statistics
import sys
from collections import defaultdict
from pathlib import Path


def main() -> None:
    folder, pairs = Path(sys.argv[1]), sys.argv[2:]
    for task, metric in zip(pairs[::2], pairs[1::2]):
        scores: dict[str, list[tuple[str, float]]] = defaultdict(list)
        for path in sorted(folder.glob(f"{task}-*-*/metrics.json")):
            _, init, seed = path.parent.name.rsplit("-", 2)
            metrics = json.loads(path.read_text())
            if "after" in metrics:  # a run still training has only its "before" scores
                scores[init].append((seed, metrics["after"][metric]))
        for init, runs in sorted(scores.items()):
            values = [v for _, v in runs]
            sd = statistics.stdev(values) if len(values) > 1 else 0.0
            by_seed = " / ".join(f"{v:.4f}" for _, v in runs)
            print(f"{task} {metric} {init:<8} {statistics.mean(values):.4f} ± {sd:.4f}  (seeds {by_seed})")


if __name__ == "__main__":
    main()
