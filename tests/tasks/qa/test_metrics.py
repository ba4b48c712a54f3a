"""Tests for tasks/qa/metrics.py against the official scripts' logic, on hand-made cases whose
expected values are worked out by hand in the comments."""

from __future__ import annotations

import math

import pytest

from bertkit.tasks.qa.metrics import (
    best_null_threshold,
    cmrc_scores,
    find_best_thresh,
    mixed_segmentation,
    nltk_word_tokenize,
    normalize_answer,
    squad_v1_scores,
    squad_v2_scores,
)


@pytest.mark.parametrize(
    ("text", "normal"),
    [
        ("The Denver Broncos!", "denver broncos"),
        ("  an  apple,   a pear ", "apple pear"),
        ("Theatre", "theatre"),  # "the" only as a word
        ("U.S.-led", "usled"),  # punctuation removed before articles and spaces
        ("Café—Noël", "café—noël"),  # the em dash is not in string.punctuation
    ],
)
def test_normalize_answer(text, normal):
    assert normalize_answer(text) == normal


def test_squad_v1_exact_match_and_f1_max_over_the_references():
    gold = {
        "q1": ["Denver Broncos", "The Denver Broncos"],
        "q2": ["Santa Clara, California"],
        "q3": ["February 7, 2016"],
        "q4": ["Levi's Stadium"],
    }
    predictions = {"q1": "denver broncos.", "q2": "Santa Clara", "q3": "7 February", "q4": "Gillette"}
    scores = squad_v1_scores(gold, predictions)
    # q1 exact; q2: 2 of 3 gold words, P=1 R=2/3 F1=0.8; q3: {7, february} of {february, 7, 2016}: P=1 R=2/3
    assert scores["exact_match"] == pytest.approx(25.0)
    assert scores["f1"] == pytest.approx(100 * (1 + 0.8 + 0.8 + 0) / 4)
    assert scores["total"] == 4


def test_squad_v1_a_missing_prediction_scores_zero_but_counts():
    scores = squad_v1_scores({"a": ["x"], "b": ["y"]}, {"a": "x"})
    assert scores == {"exact_match": 50.0, "f1": 50.0, "total": 2}


def test_squad_v1_repeated_words_are_counted_as_a_bag():
    # pred "a a b" vs gold "b a": normalised "b" vs "b" ("a" is an article!) -> exact
    assert squad_v1_scores({"q": ["b a"]}, {"q": "a a b"})["exact_match"] == 100.0
    # "x x y" vs "x y y": common x1 y1 = 2; P=2/3 R=2/3
    assert squad_v1_scores({"q": ["x y y"]}, {"q": "x x y"})["f1"] == pytest.approx(100 * 2 / 3)


def test_squad_v2_splits_and_empty_answers():
    gold = {"h1": ["Denver Broncos"], "h2": ["Santa Clara"], "n1": [], "n2": []}
    predictions = {"h1": "Denver Broncos", "h2": "", "n1": "", "n2": "Santa Clara"}
    scores = squad_v2_scores(gold, predictions)
    # h1 right; h2 answered "" for an answerable question (0); n1 right ("" vs no answer: 1); n2 wrong
    assert scores["exact"] == 50.0 and scores["f1"] == 50.0 and scores["total"] == 4
    assert (scores["HasAns_exact"], scores["HasAns_total"]) == (50.0, 2)
    assert (scores["NoAns_exact"], scores["NoAns_f1"], scores["NoAns_total"]) == (100 * 1 / 2, 50.0, 2)
    assert "best_f1" not in scores  # only with no-answer scores


def test_squad_v2_drops_references_that_normalise_to_nothing():
    # the reference "The" normalises to "": with no reference left, the question counts as no-answer
    assert squad_v2_scores({"q": ["The"]}, {"q": ""})["exact"] == 100.0
    assert squad_v2_scores({"q": ["The", "cat"]}, {"q": ""})["exact"] == 0.0


def test_find_best_thresh_as_the_official_script():
    # sorted by no-answer score: a (0.1, has answer, F1 1), b (0.4, no answer, answered "x": -1),
    # c (0.7, has answer, F1 0.5). Start: 1 (b counted right when everything is unanswered).
    # a: 2 (best, thresh 0.1); b: 1; c: 1.5. Best 2 of 3 questions at 0.1.
    preds = {"a": "x", "b": "x", "c": "x"}
    scores = {"a": 1.0, "b": 0.0, "c": 0.5}
    na = {"a": 0.1, "b": 0.4, "c": 0.7}
    has_ans = {"a": True, "b": False, "c": True}
    best, thresh = find_best_thresh(preds, scores, na, has_ans)
    assert best == pytest.approx(200 / 3) and thresh == 0.1


def test_squad_v2_best_scores_are_over_the_best_non_empty_answers():
    gold = {"h": ["cat"], "n": []}
    predictions = {"h": "", "n": ""}  # both answered "" at the threshold used
    scores = squad_v2_scores(gold, predictions, {"h": -2.0, "n": 3.0}, {"h": "cat", "n": "dog"})
    # answering h (margin -2) and not n (margin 3) is right for both: best 100 at threshold -2
    assert scores["exact"] == 50.0 and scores["best_exact"] == 100.0 and scores["best_f1_thresh"] == -2.0


def test_best_null_threshold_when_answering_nothing_is_best():
    gold = {"a": [], "b": []}
    thresh = best_null_threshold(gold, {"a": "x", "b": "y"}, {"a": -1.0, "b": 2.0})
    # the official search would return 0.0, which answers "a" (margin -1 is not above 0); every
    # margin must be above the threshold for both to go unanswered
    assert thresh < -1.0
    assert best_null_threshold({"a": ["x"], "b": []}, {"a": "x", "b": "y"}, {"a": -1.0, "b": 2.0}) == -1.0


def test_best_null_threshold_never_splits_equal_margins():
    gold = {"a": ["x"], "c": ["y"], "b": []}
    answered = {"a": "x", "c": "y", "b": "z"}
    margins = {"a": -1.0, "c": 0.5, "b": 0.5}  # c and b tie: one threshold answers both or neither
    # counting c answered and b not would score 3 at 0.5, but "margin > 0.5" answers both: 2. The
    # best a threshold can reach is 2 (answer a only, or all); the first of them is kept
    thresh = best_null_threshold(gold, answered, margins)
    assert thresh == -1.0
    answered_right = sum(bool(gold[q]) and answered[q] == gold[q][0] for q in gold if margins[q] <= thresh)
    unanswered_right = sum(not gold[q] for q in gold if margins[q] > thresh)
    reached = answered_right + unanswered_right
    assert reached == 2


def test_cmrc_f1_is_the_longest_common_substring_of_characters():
    # gold 北京大学 vs pred 北京的大学: longest common run 北京 (2), not the subsequence 北京大学 (4):
    # P = 2/5, R = 2/4, F1 = 4/9; the script's find_lcs is a substring search
    scores = cmrc_scores({"a": ["北京大学"]}, {"a": "北京的大学"})
    assert scores["f1"] == pytest.approx(100 * 4 / 9)
    assert scores["exact_match"] == 0.0
    assert scores["average"] == pytest.approx(50 * 4 / 9)


def test_cmrc_strips_its_punctuation_and_takes_the_best_reference():
    gold = {"a": ["上海", "上海市"], "b": ["《红楼梦》"], "c": ["1998年"]}
    predictions = {"a": "上海市。", "b": "红楼梦", "c": "1998"}
    scores = cmrc_scores(gold, predictions)
    # a: exact with 上海市 after 。 is removed; b: 《》 removed -> exact; c: [1998, 年] vs [1998]:
    # P=1, R=1/2, F1=2/3, not exact
    assert scores["exact_match"] == pytest.approx(100 * 2 / 3)
    assert scores["f1"] == pytest.approx(100 * (1 + 1 + 2 / 3) / 3)


def test_cmrc_segmentation_of_mixed_text():
    # Chinese characters one by one, latin runs by NLTK's tokenizer, the script's punctuation dropped
    assert mixed_segmentation("2015年iPhone 6s发布，售价$649。", rm_punc=True) == [
        *["2015", "年", "iphone", "6s", "发", "布", "售", "价", "$", "649"]
    ]
    assert mixed_segmentation("苹果，梨") == ["苹", "果", "，", "梨"]


def test_cmrc_scores_an_unanswerable_question_as_the_reference_empty_string():
    scores = cmrc_scores({"a": [], "b": []}, {"a": "", "b": "北京"})
    assert scores["exact_match"] == 50.0 and scores["f1"] == 50.0


def test_the_nltk_word_tokenizer_port_matches_nltk():
    # NLTKWordTokenizer's own doctest
    text = "Good muffins cost $3.88 (roughly 3,36 euros)\nin New York.  Please buy me\ntwo of them.\nThanks."
    assert nltk_word_tokenize(text) == [
        *["Good", "muffins", "cost", "$", "3.88", "(", "roughly", "3,36", "euros", ")", "in", "New"],
        *["York.", "Please", "buy", "me", "two", "of", "them.", "Thanks", "."],
    ]
    assert nltk_word_tokenize('They\'ll cannot "go"') == ["They", "'ll", "can", "not", "``", "go", "''"]


def test_scores_are_finite_percentages():
    scores = squad_v2_scores({"a": ["x"]}, {"a": "x"}, {"a": math.inf}, {"a": "x"})
    assert all(0 <= scores[k] <= 100 for k in ("exact", "f1", "best_exact", "best_f1"))
