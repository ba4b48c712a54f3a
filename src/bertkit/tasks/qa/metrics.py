"""Exact match and F1 as the official scripts compute them, ported function by function.

SQuAD v1.1 (``evaluate-v1.1.py``), SQuAD v2.0 (``evaluate-v2.0.py``: HasAns/NoAns splits and, given
no-answer scores, the best threshold) and CMRC 2018 (``cmrc2018_evaluate.py``: Chinese by character,
punctuation removed, the longest common substring, max over the references). Scores are percentages,
as the scripts print them. The CMRC script cuts non-Chinese runs with ``nltk.word_tokenize``; its word
tokenizer is ported below (NLTK's own regexes), so no NLTK data is needed.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Mapping

# -- SQuAD v1.1 and v2.0 -----------------------------------------------------------------------------

ARTICLES = re.compile(r"\b(a|an|the)\b", re.UNICODE)
PUNCTUATION = set(string.punctuation)


def normalize_answer(s: str) -> str:
    """Lower text and remove punctuation, articles and extra whitespace (both SQuAD scripts)."""
    text = "".join(ch for ch in s.lower() if ch not in PUNCTUATION)
    return " ".join(ARTICLES.sub(" ", text).split())


def squad_f1(prediction: str, ground_truth: str) -> float:
    """v1.1's ``f1_score``: bag-of-words overlap of the normalised texts."""
    pred, gold = normalize_answer(prediction).split(), normalize_answer(ground_truth).split()
    same = sum((Counter(pred) & Counter(gold)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def squad_v1_scores(gold: Mapping[str, list[str]], predictions: Mapping[str, str]) -> dict:
    """v1.1's ``evaluate``: EM and F1 maxed over each question's answers, averaged over all questions
    of ``gold`` (a question without a prediction scores 0)."""
    exact = f1 = 0.0
    for qid, answers in gold.items():
        if qid not in predictions:
            continue
        pred = predictions[qid]
        exact += max(float(normalize_answer(pred) == normalize_answer(a)) for a in answers)
        f1 += max(squad_f1(pred, a) for a in answers)
    total = len(gold)
    return {"exact_match": 100.0 * exact / total, "f1": 100.0 * f1 / total, "total": total}


def v2_tokens(s: str) -> list[str]:
    return normalize_answer(s).split() if s else []


def v2_exact(a_gold: str, a_pred: str) -> int:
    return int(normalize_answer(a_gold) == normalize_answer(a_pred))


def v2_f1(a_gold: str, a_pred: str) -> float:
    """v2.0's ``compute_f1``: as v1.1, except that two empty answers agree (F1 1)."""
    gold, pred = v2_tokens(a_gold), v2_tokens(a_pred)
    if not gold or not pred:
        return float(gold == pred)
    same = sum((Counter(gold) & Counter(pred)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def v2_raw_scores(
    gold: Mapping[str, list[str]], predictions: Mapping[str, str]
) -> tuple[dict[str, int], dict[str, float]]:
    """``get_raw_scores``: answers that normalise to nothing are dropped; none left means ``[""]``."""
    exact, f1 = {}, {}
    for qid, answers in gold.items():
        answers = [a for a in answers if normalize_answer(a)] or [""]
        if qid not in predictions:
            continue
        pred = predictions[qid]
        exact[qid] = max(v2_exact(a, pred) for a in answers)
        f1[qid] = max(v2_f1(a, pred) for a in answers)
    return exact, f1


def eval_dict(exact: Mapping[str, float], f1: Mapping[str, float], qids: list[str] | None = None) -> dict:
    qids = list(exact) if qids is None else qids
    total = len(qids)
    return {
        "exact": 100.0 * sum(exact[k] for k in qids) / total,
        "f1": 100.0 * sum(f1[k] for k in qids) / total,
        "total": total,
    }


def find_best_thresh(
    preds: Mapping[str, str],
    scores: Mapping[str, float],
    na_probs: Mapping[str, float],
    has_ans: Mapping[str, bool],
) -> tuple[float, float]:
    """v2.0's ``find_best_thresh``: the score of every question answered "" above a no-answer
    threshold, best over thresholds; returns (best score in %, its threshold)."""
    cur = best = sum(1 for k in has_ans if not has_ans[k])
    best_thresh = 0.0
    for qid in sorted(na_probs, key=lambda k: na_probs[k]):
        if qid not in scores:
            continue
        diff = scores[qid] if has_ans[qid] else (-1 if preds[qid] else 0)
        cur += diff
        if cur > best:
            best, best_thresh = cur, na_probs[qid]
    return 100.0 * best / len(scores), best_thresh


def squad_v2_scores(
    gold: Mapping[str, list[str]],
    predictions: Mapping[str, str],
    na_probs: Mapping[str, float] | None = None,
    answered: Mapping[str, str] | None = None,
) -> dict:
    """v2.0's metrics: ``exact``, ``f1``, ``total`` and their ``HasAns_``/``NoAns_`` splits.

    ``gold`` maps each id to its answers (``[]`` for no answer). With ``na_probs`` (the no-answer
    score of each question) ``best_exact``/``best_f1`` and their thresholds are added, as the script
    does with ``--na-prob-file``, computed over ``answered`` (the best non-empty answer of each
    question, so every threshold can be tried; default ``predictions``).
    """
    has_ans = {qid: bool(answers) for qid, answers in gold.items()}
    exact, f1 = v2_raw_scores(gold, predictions)
    out = eval_dict(exact, f1)
    for prefix, wanted in (("HasAns", True), ("NoAns", False)):
        qids = [k for k, v in has_ans.items() if v is wanted]
        if qids:
            out.update({f"{prefix}_{k}": v for k, v in eval_dict(exact, f1, qids).items()})
    if na_probs is not None:
        answered = predictions if answered is None else answered
        best_exact, best_f1 = v2_raw_scores(gold, answered)
        out["best_exact"], out["best_exact_thresh"] = find_best_thresh(
            answered, best_exact, na_probs, has_ans
        )
        out["best_f1"], out["best_f1_thresh"] = find_best_thresh(answered, best_f1, na_probs, has_ans)
    return out


def best_null_threshold(
    gold: Mapping[str, list[str]], answered: Mapping[str, str], na_probs: Mapping[str, float]
) -> float:
    """The no-answer threshold with the best v2.0 F1: answer "" where ``na_probs`` is above it.

    ``find_best_thresh`` (kept as the script has it, for the reported ``best_*`` figures) differs in
    two ways that matter for a threshold that is applied afterwards. It starts from 0.0 as if that left
    every question unanswered, which holds for probabilities but not for score margins, which can be
    negative: here, when answering nothing is best, the threshold lies below every margin. And it may
    stop inside a run of equal margins (bf16 scores tie often), counting some of them answered and the
    others not, which no threshold does: here a threshold is only taken after the last of its ties.
    """
    has_ans = {qid: bool(answers) for qid, answers in gold.items()}
    _, f1 = v2_raw_scores(gold, answered)
    order = sorted((qid for qid in na_probs if qid in f1), key=lambda qid: na_probs[qid])
    current = best = float(sum(1 for qid in f1 if not has_ans[qid]))  # nothing answered
    thresh = min(na_probs.values()) - 1.0 if na_probs else 0.0
    for i, qid in enumerate(order):
        current += f1[qid] if has_ans[qid] else (-1.0 if answered[qid] else 0.0)
        last_of_ties = i + 1 == len(order) or na_probs[order[i + 1]] != na_probs[qid]
        if last_of_ties and current > best:
            best, thresh = current, na_probs[qid]
    return thresh


# -- CMRC 2018 ----------------------------------------------------------------------------------------

# the script's list; its "……" is two characters, so it never equals the one character it is tested on
CMRC_PUNCTUATION = set("-:_*^/\\~`+=，。：？！“”；’《》·、「」（）－～『』") | {"……"}
CHINESE = re.compile(r"[\u4e00-\u9fa5]")


def mixed_segmentation(in_str: str, rm_punc: bool = False) -> list[str]:
    """CMRC's segmentation: each Chinese character (and punctuation mark) alone, other runs cut by
    NLTK's word tokenizer."""
    segs: list[str] = []
    run = ""
    for char in str(in_str).lower().strip():
        if rm_punc and char in CMRC_PUNCTUATION:
            continue
        if CHINESE.search(char) or char in CMRC_PUNCTUATION:
            if run:
                segs.extend(nltk_word_tokenize(run))
                run = ""
            segs.append(char)
        else:
            run += char
    if run:
        segs.extend(nltk_word_tokenize(run))
    return segs


def remove_punctuation(in_str: str) -> str:
    return "".join(ch for ch in str(in_str).lower().strip() if ch not in CMRC_PUNCTUATION)


def longest_common_substring(s1: list[str], s2: list[str]) -> int:
    """The script's ``find_lcs``: despite the name, the longest common *contiguous* run."""
    best = 0
    previous = [0] * (len(s2) + 1)
    for i in range(len(s1)):
        current = [0] * (len(s2) + 1)
        for j in range(len(s2)):
            if s1[i] == s2[j]:
                current[j + 1] = previous[j] + 1
                best = max(best, current[j + 1])
        previous = current
    return best


def cmrc_f1(answers: list[str], prediction: str) -> float:
    scores = []
    for answer in answers:
        gold = mixed_segmentation(answer, rm_punc=True)
        pred = mixed_segmentation(prediction, rm_punc=True)
        if not gold and not pred:
            scores.append(1.0)  # not in the script (it has no unanswerable questions): "" matches ""
            continue
        same = longest_common_substring(gold, pred)
        if same == 0:
            scores.append(0.0)
            continue
        precision, recall = same / len(pred), same / len(gold)
        scores.append(2 * precision * recall / (precision + recall))
    return max(scores)


def cmrc_exact(answers: list[str], prediction: str) -> float:
    pred = remove_punctuation(prediction)
    return float(any(remove_punctuation(answer) == pred for answer in answers))


def cmrc_scores(gold: Mapping[str, list[str]], predictions: Mapping[str, str]) -> dict:
    """CMRC 2018's ``evaluate``: ``exact_match``, ``f1`` and their ``average``, in %; a question without
    an answer counts as the one reference ``""``."""
    exact = f1 = 0.0
    for qid, answers in gold.items():
        if qid not in predictions:
            continue
        answers = answers or [""]
        exact += cmrc_exact(answers, predictions[qid])
        f1 += cmrc_f1(answers, predictions[qid])
    total = len(gold)
    em, f = 100.0 * exact / total, 100.0 * f1 / total
    return {"exact_match": em, "f1": f, "average": (em + f) / 2, "total": total}


# -- nltk.word_tokenize, ported ----------------------------------------------------------------------

_STARTING_QUOTES = [
    (re.compile("([«“‘„]|[`]+)", re.U), r" \1 "),
    (re.compile(r"^\""), r"``"),
    (re.compile(r"(``)"), r" \1 "),
    (re.compile(r"([ \(\[{<])(\"|\'{2})"), r"\1 `` "),
    (re.compile(r"(?i)(?<!\w)(\')(?!(?:re|ve|ll|m|t|s|d|n)\b)(?=\w)", re.U), r"\1 "),
]
_ENDING_QUOTES = [
    (re.compile("([»”’])", re.U), r" \1 "),
    (re.compile(r"''"), " '' "),
    (re.compile(r'"'), " '' "),
    (re.compile(r"\s+"), " "),
    (re.compile(r"([^' ])('[sS]|'[mM]|'[dD]|') "), r"\1 \2 "),
    (re.compile(r"([^' ])('ll|'LL|'re|'RE|'ve|'VE|n't|N'T) "), r"\1 \2 "),
]
_PUNCTUATION = [
    (re.compile(r'([^\.])(\.)([\]\)}>"\'' "»”’ " r"]*)\s*$", re.U), r"\1 \2 \3 "),
    (re.compile(r"([:,])([^\d])"), r" \1 \2"),
    (re.compile(r"([:,])$"), r" \1 "),
    (re.compile(r"\.{2,}", re.U), r" \g<0> "),
    (re.compile(r"[;@#$%&]"), r" \g<0> "),
    (re.compile(r"[\u2012-\u2015]", re.U), r" \g<0> "),
    (re.compile(r'([^\.])(\.)([\]\)}>"\']*)\s*$'), r"\1 \2\3 "),
    (re.compile(r"[?!]"), r" \g<0> "),
    (re.compile(r"([^'])' "), r"\1 ' "),
    (re.compile(r"[*]", re.U), r" \g<0> "),
]
_PARENS = (re.compile(r"[\]\[\(\)\{\}\<\>]"), r" \g<0> ")
_DOUBLE_DASHES = (re.compile(r"--"), r" -- ")
_CONTRACTIONS = [
    re.compile(pattern)
    for pattern in (
        r"(?i)\b(can)(?#X)(not)\b",
        r"(?i)\b(d)(?#X)('ye)\b",
        r"(?i)\b(gim)(?#X)(me)\b",
        r"(?i)\b(gon)(?#X)(na)\b",
        r"(?i)\b(got)(?#X)(ta)\b",
        r"(?i)\b(lem)(?#X)(me)\b",
        r"(?i)\b(more)(?#X)('n)\b",
        r"(?i)\b(wan)(?#X)(na)(?=\s)",
        r"(?i) ('t)(?#X)(is)\b",
        r"(?i) ('t)(?#X)(was)\b",
    )
]


def nltk_word_tokenize(text: str) -> list[str]:
    """``NLTKWordTokenizer().tokenize`` (what ``nltk.word_tokenize`` runs on each sentence).

    Punkt's sentence split before it needs trained data and is left out: it only changes a period
    that ends a sentence inside the text ("end. Next" keeps "end." whole), rare in an answer.
    """
    for pattern, sub in _STARTING_QUOTES + _PUNCTUATION + [_PARENS, _DOUBLE_DASHES]:
        text = pattern.sub(sub, text)
    text = f" {text} "
    for pattern, sub in _ENDING_QUOTES:
        text = pattern.sub(sub, text)
    for pattern in _CONTRACTIONS:
        text = pattern.sub(r" \1 \2 ", text)
    return text.split()
