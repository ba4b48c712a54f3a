#!/usr/bin/env bash
# Pretrain a small cased English BERT from scratch on the Gutenberg books (about an hour on 2 cores),
# then fine-tune it and the same architecture from random initialisation on WNUT-17 and SST-2 with the
# same recipe and several seeds, and print the comparison.
#   BERTKIT_DATA_DIR=../shared/data bash examples/pretrain_en_mini.sh
set -euo pipefail
DATA=${BERTKIT_DATA_DIR:?set BERTKIT_DATA_DIR to the folder with gutenberg_en, wnut17 and glue_sst2}
OUT=${OUT:-runs/pretrain-en-mini}
SEEDS=${SEEDS:-1 2 3}
set -x
bertkit vocab --input "$DATA/gutenberg_en/texts" --out "$OUT/vocab" --vocab-size 16000 --documents file \
    --keep-from '^\*\*\* ?START OF' --keep-until '^\*\*\* ?END OF'
bertkit pretrain --config examples/pretrain-en-mini.yaml --input "$DATA/gutenberg_en/texts" \
    --tokenizer "$OUT/vocab" --out "$OUT/model" --overwrite
python examples/random_init.py "$OUT/model" "$OUT/random"
for init in model random; do
    for seed in $SEEDS; do
        bertkit -q finetune ner --model "$OUT/$init" --dataset wnut17 --out "$OUT/wnut17-$init-$seed" \
            --overwrite --epochs 20 --train.patience 3 --lr 5e-4 --batch-size 32 --seed "$seed" \
            --output.checkpoint false
        bertkit -q finetune classify --model "$OUT/$init" --train "$DATA/glue_sst2/train.tsv" \
            --dev "$DATA/glue_sst2/dev.tsv" --text-column sentence --label-column label \
            --out "$OUT/sst2-$init-$seed" --overwrite --epochs 1 --lr 1e-4 --batch-size 32 --seed "$seed" \
            --output.checkpoint false
    done
done
set +x
python examples/compare_runs.py "$OUT" wnut17 f1 sst2 accuracy
