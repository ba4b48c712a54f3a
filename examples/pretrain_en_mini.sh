#!/usr/bin/env bash
# Pretrain a small cased English BERT from scratch on the Gutenberg books (about an hour on 2 cores),
# continue its pretraining on modern and in-task text without labels (WikiText-2, SST-2's and WNUT-17's
# train sentences; about 15 minutes), then fine-tune the two and the same architecture from random
# initialisation on WNUT-17 and SST-2 with the same recipe and several seeds (all of SST-2, and nested
# subsets of 500 to 8,000 sentences), and print the comparison.
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
python examples/en_corpus.py "$DATA" "$OUT/adapt-corpus"
bertkit pretrain --config examples/pretrain-en-mini-adapt.yaml --from "$OUT/model" --input "$OUT/adapt-corpus" \
    --out "$OUT/adapted" --overwrite
python examples/random_init.py "$OUT/model" "$OUT/random"
for init in adapted model random; do
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
# Fewer labels: nested SST-2 subsets (the same per seed for every model), 3 seeds each, dev held out of
# train (3%) for early stopping, scored on SST-2's dev set (its test set has no labels).
for init in adapted model random; do
    bertkit -q curve classify --model "$OUT/$init" --train "$DATA/glue_sst2/train.tsv" \
        --test "$DATA/glue_sst2/dev.tsv" --text-column sentence --label-column label \
        --out "$OUT/sst2curve-$init" --sizes 500,2000,8000 --seeds 3 --seed 1 --data.dev_fraction 0.03 \
        --epochs 10 --train.patience 3 --lr 1e-4 --batch-size 32
done
set +x
python examples/compare_runs.py "$OUT" wnut17 f1 sst2 accuracy
for init in adapted model random; do echo "$init"; cat "$OUT/sst2curve-$init/curve.md"; done
