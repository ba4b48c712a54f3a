"""Generation metrics against values worked out by hand or from rouge_score and sacrebleu called
directly on the same strings."""

from __future__ import annotations

import pytest
import sacrebleu
from rouge_score.rouge_scorer import RougeScorer

from bertkit.tasks.seq2seq.metrics import (
    KINDS,
    MAIN_METRIC,
    CJKTokenizer,
    distinct_n,
    generation_scores,
    is_chinese,
    mean_length,
    reference_streams,
    split_sentences,
)

# -- ROUGE --------------------------------------------------------------------------------------------


def f1(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall)


def test_rouge_english_by_hand():
    # words of at most 3 letters, which the Porter stemmer leaves alone
    out = generation_scores(["the cat sat on the mat"], [["a cat sat on a red mat"]])
    # unigrams: cat sat on mat shared, 4 of 6 predicted, 4 of 7 in the reference
    assert out["rouge1"] == pytest.approx(100 * f1(4 / 6, 4 / 7))
    assert out["rouge1"] == pytest.approx(800 / 13)
    # bigrams: "cat sat" and "sat on" shared, 2 of 5 predicted, 2 of 6 in the reference
    assert out["rouge2"] == pytest.approx(100 * f1(2 / 5, 2 / 6))
    # one sentence each: the LCS is "cat sat on mat"
    assert out["rougeLsum"] == pytest.approx(800 / 13)
    assert out["language"] == "en"
    assert out["count"] == 1


def test_rouge_english_stems():
    assert generation_scores(["the cats"], [["the cat"]])["rouge1"] == pytest.approx(100.0)


def test_rouge_is_averaged_over_predictions_and_survives_an_empty_prediction():
    out = generation_scores(["the cat", ""], [["the cat"], ["a dog"]])
    assert out["rouge1"] == pytest.approx(50.0)
    assert out["rougeLsum"] == pytest.approx(50.0)


def test_rougelsum_reads_sentences():
    pred, ref = "the cat sat. the dog ran.", "the dog ran. the cat sat."
    out = generation_scores([pred], [[ref]])
    # sentence by sentence every reference sentence is matched whole
    assert out["rougeLsum"] == pytest.approx(100.0)
    # as one sentence the LCS is only 3 of 6 tokens: this is what the newlines buy
    unsplit = RougeScorer(["rougeLsum"], use_stemmer=True).score(ref, pred)["rougeLsum"].fmeasure
    assert unsplit == pytest.approx(0.5)


def test_split_sentences():
    assert split_sentences("One. Two! Three? Pi is 3.14 here", chinese=False) == (
        "One.\nTwo!\nThree?\nPi is 3.14 here"
    )
    assert split_sentences("first line\nsecond. third", chinese=False) == "first line\nsecond.\nthird"
    assert split_sentences("我来了。你好！ 他呢？好", chinese=True) == "我来了。\n你好！\n他呢？\n好"
    assert split_sentences("", chinese=False) == ""


def test_rouge_chinese_by_hand():
    out = generation_scores(["我喜欢猫"], [["我也喜欢狗"]])
    assert out["language"] == "zh"
    # characters: 我 喜 欢 shared, 3 of 4 predicted, 3 of 5 in the reference
    assert out["rouge1"] == pytest.approx(100 * f1(3 / 4, 3 / 5))
    assert out["rouge1"] == pytest.approx(200 / 3)
    # character bigrams: 喜欢 shared, 1 of 3 predicted, 1 of 4 in the reference
    assert out["rouge2"] == pytest.approx(100 * f1(1 / 3, 1 / 4))
    assert out["rougeLsum"] == pytest.approx(200 / 3)


def test_rouge_chinese_sentences():
    out = generation_scores(["我喜欢猫。他喜欢狗。"], [["他喜欢狗。我喜欢猫。"]])
    # bigrams across the sentence break differ (猫他 vs 狗我): 6 of 7 shared
    assert out["rouge2"] == pytest.approx(600 / 7)
    assert out["rougeLsum"] == pytest.approx(100.0)


def test_default_rouge_tokenizer_scores_chinese_zero():
    # why CJKTokenizer exists: rouge_score keeps only [a-z0-9] runs
    scorer = RougeScorer(["rouge1"], use_stemmer=True)
    assert scorer.score("我也喜欢狗", "我喜欢猫")["rouge1"].fmeasure == 0.0
    assert generation_scores(["我喜欢猫"], [["我也喜欢狗"]], language="en")["rouge1"] == 0.0


def test_cjk_tokenizer_keeps_latin_words():
    assert CJKTokenizer().tokenize("我用Python 3写代码！OK") == [
        "我",
        "用",
        "python",
        "3",
        "写",
        "代",
        "码",
        "ok",
    ]


def test_rouge_takes_the_best_reference():
    # "the cat sat down": 3 of 3 predicted, 3 of 4 in the reference; "a dog ran" shares nothing
    expected = 100 * f1(1.0, 3 / 4)
    for refs in (["a dog ran", "the cat sat down"], ["the cat sat down", "a dog ran"]):
        assert generation_scores(["the cat sat"], [refs])["rouge1"] == pytest.approx(expected)


def test_rouge_picks_the_best_reference_per_type():
    # score_multi picks per ROUGE type: rouge1 from the reversed reference, rouge2 from the other
    out = generation_scores(["a b c d"], [["d c b a", "a b x y"]])
    assert out["rouge1"] == pytest.approx(100.0)
    assert out["rouge2"] == pytest.approx(100 / 3)


# -- BLEU and chrF -------------------------------------------------------------------------------------

EN_HYPS = ["the cat sat on the mat", "hello there"]
EN_REFS = [["the cat sat on a mat", "a cat sat on the mat"], ["hello there my good friend"]]
EN_STREAMS = [["the cat sat on a mat", "hello there my good friend"], ["a cat sat on the mat", None]]


def test_reference_streams_pad_with_none():
    assert reference_streams(EN_REFS) == EN_STREAMS


def test_bleu_english_with_unequal_reference_counts():
    out = generation_scores(EN_HYPS, EN_REFS, kind="translate")
    expected = sacrebleu.corpus_bleu(EN_HYPS, EN_STREAMS, tokenize="13a").score
    assert out["bleu"] == pytest.approx(expected)
    assert 0 < out["bleu"] < 100
    # '' as the pad is a reference of length 0, closest to "hello there": it lifts the brevity penalty
    padded_empty = [EN_STREAMS[0], ["a cat sat on the mat", ""]]
    assert out["bleu"] != pytest.approx(sacrebleu.corpus_bleu(EN_HYPS, padded_empty).score)
    assert "tok:13a" in out["bleu_signature"]
    assert "nrefs:var" in out["bleu_signature"]


def test_chrf_english():
    out = generation_scores(EN_HYPS, EN_REFS, kind="translate")
    assert out["chrf"] == pytest.approx(sacrebleu.corpus_chrf(EN_HYPS, EN_STREAMS).score)
    assert "nrefs:var" in out["chrf_signature"]
    assert "nc:6" in out["chrf_signature"]


ZH_HYPS = ["我喜欢猫。", "今天天气很好"]
ZH_REFS = [["我也喜欢猫。"], ["今天天气不错", "今天的天气很好"]]
ZH_STREAMS = [["我也喜欢猫。", "今天天气不错"], [None, "今天的天气很好"]]


def test_bleu_and_chrf_chinese():
    out = generation_scores(ZH_HYPS, ZH_REFS, kind="translate")
    assert out["language"] == "zh"
    expected = sacrebleu.corpus_bleu(ZH_HYPS, ZH_STREAMS, tokenize="zh").score
    assert out["bleu"] == pytest.approx(expected)
    assert out["bleu"] > 0
    # 13a would keep each unspaced Chinese sentence as one word
    assert out["bleu"] != pytest.approx(sacrebleu.corpus_bleu(ZH_HYPS, ZH_STREAMS, tokenize="13a").score)
    assert "tok:zh" in out["bleu_signature"]
    assert out["chrf"] == pytest.approx(sacrebleu.corpus_chrf(ZH_HYPS, ZH_STREAMS).score)


def test_blank_references_are_dropped():
    out = generation_scores(["hello there"], [["hello there my good friend", "  "]])
    expected = sacrebleu.corpus_bleu(["hello there"], [["hello there my good friend"]]).score
    assert out["bleu"] == pytest.approx(expected)
    assert "nrefs:1" in out["bleu_signature"]


def test_empty_predictions_score_zero_without_crashing():
    out = generation_scores(["", ""], [["the cat"], ["a dog"]], kind="dialogue")
    for key in ("rouge1", "rouge2", "rougeLsum", "bleu", "chrf", "distinct_1", "distinct_2", "mean_length"):
        assert out[key] == 0.0, key


# -- dialogue -----------------------------------------------------------------------------------------


def test_distinct_english_by_hand():
    texts = ["The cat sat.", "the cat ran!"]
    # words: the cat sat the cat ran -> 4 distinct of 6; bigrams: the-cat twice, cat-sat, cat-ran
    assert distinct_n(texts, 1) == pytest.approx(4 / 6)
    assert distinct_n(texts, 2) == pytest.approx(3 / 4)
    assert mean_length(texts) == pytest.approx(3.0)
    out = generation_scores(texts, [["a cat"], ["a dog"]], kind="dialogue")
    assert out["distinct_1"] == pytest.approx(4 / 6)
    assert out["distinct_2"] == pytest.approx(3 / 4)
    assert out["mean_length"] == pytest.approx(3.0)


def test_distinct_chinese_by_hand():
    texts = ["我喜欢猫。", "我喜欢狗"]
    # characters (punctuation dropped): 8 in all, 5 distinct; bigrams 6 in all, 4 distinct
    assert distinct_n(texts, 1) == pytest.approx(5 / 8)
    assert distinct_n(texts, 2) == pytest.approx(4 / 6)
    assert mean_length(texts) == pytest.approx(4.0)
    out = generation_scores(texts, [["我喜欢"], ["你喜欢"]], kind="dialogue")
    assert out["distinct_1"] == pytest.approx(5 / 8)
    assert out["mean_length"] == pytest.approx(4.0)


def test_distinct_of_nothing_is_zero():
    assert distinct_n([], 1) == 0.0
    assert distinct_n(["one"], 2) == 0.0
    assert mean_length([]) == 0.0


# -- language, keys and errors ------------------------------------------------------------------------


def test_is_chinese_on_mixed_text():
    assert is_chinese(["我今天用Python写了代码"])  # 8 Han characters of 14
    assert not is_chinese(["我用Python写代码"])  # 5 of 11
    assert not is_chinese(["I wrote 代码 today"])
    assert is_chinese(["猫 猫 a"])  # spaces do not count: 2 of 3
    assert is_chinese(["好。", "O"])  # CJK punctuation counts: 2 of 3...
    assert not is_chinese(["好.", "O"])  # ...an ASCII full stop does not: 1 of 3
    assert not is_chinese([])
    assert not is_chinese(["   "])


@pytest.mark.parametrize("kind", KINDS)
def test_keys_of_each_kind(kind):
    out = generation_scores(["the cat"], [["the cat"]], kind=kind)
    assert MAIN_METRIC[kind] in out
    assert {"rouge1", "rouge2", "rougeLsum", "bleu", "chrf", "bleu_signature", "chrf_signature"} <= set(out)
    assert ("distinct_1" in out) is (kind == "dialogue")


def test_length_mismatch_is_an_error():
    with pytest.raises(ValueError, match="differ in number: 2 vs 1"):
        generation_scores(["a", "b"], [["a"]])


@pytest.mark.parametrize(
    "references, message",
    [
        ([["the cat"], []], "prediction 1 has no reference"),
        ([["the cat"], ["", " "]], "prediction 1 has no reference"),
        (["the cat", "a dog"], r"references\[0\] is a string"),
    ],
)
def test_missing_references_are_an_error(references, message):
    with pytest.raises(ValueError, match=message):
        generation_scores(["the cat", "a dog"], references)


def test_bad_arguments_are_errors():
    with pytest.raises(ValueError, match="no predictions"):
        generation_scores([], [])
    with pytest.raises(ValueError, match="kind must be one of"):
        generation_scores(["a"], [["a"]], kind="poem")
    with pytest.raises(ValueError, match="language must be one of"):
        generation_scores(["a"], [["a"]], language="fr")
