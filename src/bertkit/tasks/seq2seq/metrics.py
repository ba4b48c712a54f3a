"""Scores of generated text with the field's own libraries: ROUGE (``rouge_score``, as Lin 2004 and the
ROUGE-1.5.5 script define it), BLEU and chrF (``sacrebleu``, Post 2018) and, for dialogue, distinct-n
(Li et al. 2016), for English and for Chinese.

Every kind gets ROUGE-1/2/Lsum, BLEU and chrF; dialogue adds ``distinct_1``, ``distinct_2`` and
``mean_length``. ROUGE, BLEU and chrF are percentages, as the libraries print them; distinct-n is a
fraction, as Li et al. report it. References are a list per prediction and may vary in number.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

KINDS = ("summarize", "translate", "dialogue")
LANGUAGES = ("auto", "en", "zh")
MAIN_METRIC = {"summarize": "rougeLsum", "translate": "bleu", "dialogue": "bleu"}
ROUGE_TYPES = ["rouge1", "rouge2", "rougeLsum"]

# Han ideographs (CJK Unified Ideographs, extension A, compatibility ideographs, extensions B and on)
HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
# CJK punctuation and full-width forms count as Chinese when deciding the language, not as tokens
CJK_CHAR = re.compile(f"[{HAN}\u3000-\u303f\uff00-\uffef]")
SPACE = re.compile(r"\s")
# one Han character, or one run of latin letters and digits (which rouge_score's own tokenizer keeps)
CJK_TOKEN = re.compile(f"[{HAN}]|[a-z0-9]+")
WORD = re.compile(r"\w+")
# sentence ends: English . ! ? before a space (so "3.5" stays whole; "Dr. Smith" is cut, a known
# cost of not depending on NLTK's punkt data); Chinese 。！？ with or without a space after them
ENGLISH_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
CHINESE_SENTENCE_END = re.compile(r"(?<=[。！？])\s*")


def is_chinese(texts: Sequence[str]) -> bool:
    """Whether more than half of the non-space characters of ``texts`` are CJK (Han characters, CJK
    punctuation, full-width forms); False for texts with no characters at all."""
    chars = cjk = 0
    for text in texts:
        chars += len(text) - len(SPACE.findall(text))
        cjk += len(CJK_CHAR.findall(text))
    return chars > 0 and cjk / chars > 0.5


class CJKTokenizer:
    """A ``rouge_score`` tokenizer for Chinese: each Han character is a token, latin words and digits are
    lowercased tokens (so mixed text scores), everything else is dropped, as the default tokenizer drops
    punctuation. No stemming.

    The default tokenizer keeps only ``[a-z0-9]+`` runs, so on Chinese it returns no tokens and every
    score is 0.
    """

    def tokenize(self, text: str) -> list[str]:
        return CJK_TOKEN.findall(text.lower())


def split_sentences(text: str, chinese: bool) -> str:
    """``text`` with one sentence a line, as rougeLsum expects (it reads sentences from newlines);
    newlines already in the text are kept as sentence breaks."""
    end = CHINESE_SENTENCE_END if chinese else ENGLISH_SENTENCE_END
    sentences = (s.strip() for line in text.splitlines() for s in end.split(line))
    return "\n".join(s for s in sentences if s)


def rouge_scores(
    predictions: Sequence[str], references: Sequence[Sequence[str]], chinese: bool
) -> dict[str, float]:
    """Mean F-measure (×100) over predictions of ROUGE-1, ROUGE-2 and ROUGE-Lsum.

    English uses rouge_score's own tokenizer with the Porter stemmer (ROUGE-1.5.5 ``-m``); Chinese uses
    :class:`CJKTokenizer`. With several references ``score_multi`` keeps, for each ROUGE type on its
    own, the reference of highest F-measure (the first on ties), so ROUGE-1 and ROUGE-2 of one
    prediction may come from different references.
    """
    # imported here, not at the top: rouge_score pulls in NLTK, and every bertkit process imports this
    # module through the task registry (~25 MB resident and ~0.3 s for runs that never score ROUGE)
    from rouge_score.rouge_scorer import RougeScorer

    if chinese:
        scorer = RougeScorer(ROUGE_TYPES, use_stemmer=False, tokenizer=CJKTokenizer())
    else:
        scorer = RougeScorer(ROUGE_TYPES, use_stemmer=True)
    totals = dict.fromkeys(ROUGE_TYPES, 0.0)
    for prediction, refs in zip(predictions, references):
        targets = [split_sentences(ref, chinese) for ref in refs]
        best = scorer.score_multi(targets, split_sentences(prediction, chinese))
        for rouge_type in ROUGE_TYPES:
            totals[rouge_type] += best[rouge_type].fmeasure
    return {k: 100.0 * v / len(predictions) for k, v in totals.items()}


def reference_streams(references: Sequence[Sequence[str]]) -> list[list[str | None]]:
    """Per-prediction references turned into sacrebleu's streams (stream k holds every prediction's
    k-th reference), padded with None where a prediction has fewer.

    sacrebleu drops None references segment by segment (``_cache_references``). Its docstring says ''
    works too, but the code keeps '' as a reference of length 0, which can become the "closest
    reference length" of a short hypothesis and lift the brevity penalty, so '' must not be the pad.
    """
    most = max(len(refs) for refs in references)
    return [[refs[k] if k < len(refs) else None for refs in references] for k in range(most)]


def sacrebleu_scores(
    predictions: Sequence[str], references: Sequence[Sequence[str]], chinese: bool
) -> dict[str, float | str]:
    """Corpus BLEU (tokenizer ``zh`` for Chinese, ``13a`` otherwise) and chrF, with their signatures
    (``nrefs:var`` when the number of references varies)."""
    from sacrebleu.metrics import BLEU, CHRF  # imported here for the reason given in rouge_scores

    streams = reference_streams(references)
    predictions = list(predictions)
    # fresh objects each call: a signature reports the reference count of the metric's last corpus
    bleu, chrf = BLEU(tokenize="zh" if chinese else "13a"), CHRF()
    bleu_score = bleu.corpus_score(predictions, streams)
    chrf_score = chrf.corpus_score(predictions, streams)
    return {
        "bleu": bleu_score.score,
        "chrf": chrf_score.score,
        "bleu_signature": str(bleu.get_signature()),
        "chrf_signature": str(chrf.get_signature()),
    }


def dialogue_tokens(text: str, chinese: bool) -> list[str]:
    """Tokens for distinct-n and length: Han characters (and latin words) for Chinese, lowercased words
    split at whitespace and punctuation otherwise."""
    return (CJK_TOKEN if chinese else WORD).findall(text.lower())


def distinct_n(texts: Sequence[str], n: int, chinese: bool | None = None) -> float:
    """Li et al. (2016)'s distinct-n: distinct n-grams over all n-grams of the whole corpus (n-grams
    do not cross texts); 0 when there are none. ``chinese`` None: decided by :func:`is_chinese`."""
    chinese = is_chinese(texts) if chinese is None else chinese
    seen: set[tuple[str, ...]] = set()
    total = 0
    for text in texts:
        tokens = dialogue_tokens(text, chinese)
        grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
        seen.update(grams)
        total += len(grams)
    return len(seen) / total if total else 0.0


def mean_length(texts: Sequence[str], chinese: bool | None = None) -> float:
    """Mean number of :func:`dialogue_tokens` per text; 0 for no texts."""
    chinese = is_chinese(texts) if chinese is None else chinese
    return sum(len(dialogue_tokens(t, chinese)) for t in texts) / len(texts) if texts else 0.0


def checked_references(predictions: Sequence[str], references: Sequence[Sequence[str]]) -> list[list[str]]:
    """The references of each prediction with blank ones dropped; raises where they cannot be scored.

    A blank reference is dropped rather than scored: in BLEU it would be a reference of length 0 (see
    :func:`reference_streams`), in ROUGE a target no prediction can match.
    """
    if len(predictions) != len(references):
        raise ValueError(
            f"predictions and references differ in number: {len(predictions)} vs {len(references)}"
        )
    if not predictions:
        raise ValueError("no predictions to score")
    cleaned = []
    for i, refs in enumerate(references):
        if isinstance(refs, str):
            raise ValueError(f"references[{i}] is a string; give each prediction a list of references")
        kept = [ref for ref in refs if ref.strip()]
        if not kept:
            raise ValueError(f"prediction {i} has no reference (got {list(refs)!r})")
        cleaned.append(kept)
    return cleaned


def generation_scores(
    predictions: Sequence[str],
    references: Sequence[Sequence[str]],
    kind: str = "summarize",
    language: str = "auto",
) -> dict[str, float | int | str]:
    """Every score of ``kind`` (one of :data:`KINDS`; its headline is ``MAIN_METRIC[kind]``).

    Keys: ``rouge1``, ``rouge2``, ``rougeLsum``, ``bleu``, ``chrf``, ``bleu_signature``,
    ``chrf_signature``, ``language`` ("en" or "zh") and ``count``; for dialogue also ``distinct_1``,
    ``distinct_2`` and ``mean_length`` of the predictions. ``language`` "auto" is "zh" when the
    references are mostly Chinese (:func:`is_chinese`).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if language not in LANGUAGES:
        raise ValueError(f"language must be one of {LANGUAGES}, got {language!r}")
    references = checked_references(predictions, references)
    if language == "auto":
        language = "zh" if is_chinese([ref for refs in references for ref in refs]) else "en"
    chinese = language == "zh"
    out: dict[str, float | int | str] = {
        **rouge_scores(predictions, references, chinese),
        **sacrebleu_scores(predictions, references, chinese),
        "language": language,
        "count": len(predictions),
    }
    if kind == "dialogue":
        out["distinct_1"] = distinct_n(predictions, 1, chinese)
        out["distinct_2"] = distinct_n(predictions, 2, chinese)
        out["mean_length"] = mean_length(predictions, chinese)
    return out
