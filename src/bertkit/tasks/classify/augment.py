"""EDA-style augmentation of classification training texts (Wei & Zou 2019), with nothing to download.

Each new example is the original's first text changed by one randomly chosen operation: synonym
replacement, random insertion of a synonym of one of its words, random swap, or random deletion, each
touching ``max(1, int(alpha * words))`` words. Labels (and the second text of a pair) are copied.

Synonyms: EDA takes them from WordNet, which needs a download. The offline stand-in here is the nearest
neighbours (cosine similarity) of a word in the input embedding matrix of the model being fine-tuned.
Known weakness, and it matters: neighbours in embedding space are words used in the same contexts, not
words with the same meaning, so they include antonyms and opposite-polarity words. With MiniLM,
``good`` -> ``bad``, ``worst`` -> ``best``, ``boring`` -> ``exciting``, ``happy`` -> ``unhappy`` are
all in the top 5. For sentiment that can flip the meaning while the label is copied, i.e. label noise;
measure (benchmarks/augment_low_resource.py) before trusting it. Words the vocabulary splits into
several pieces get no synonyms. Stop-words (and words under 3 letters) are never replaced nor used as
insertion sources; deletion and swap, as in EDA, may still drop or move a negation such as ``not``.

Texts with CJK characters get only swap and deletion, at the character level (a run of non-CJK
characters counts as one unit): there are no word boundaries to find synonyms for, and the stop-word
list is English.
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from bertkit.errors import BertkitError
from bertkit.records import TextExample

# A short English list in the spirit of EDA's; function words carry no synonym worth swapping in.
STOP_WORD_TEXT = """
    a about above after again against all am an and any are as at be because been before being below
    between both but by can could did do does doing down during each few for from further had has have
    having he her here hers herself him himself his how i if in into is it its itself just me more most my
    myself no nor not now of off on once only or other our ours ourselves out over own same she should so
    some such than that the their theirs them themselves then there these they this those through to too
    under until up very was we were what when where which while who whom why will with would you your
    yours yourself yourselves"""
STOP_WORDS = frozenset(STOP_WORD_TEXT.split())
CJK = "\u3001-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef"
CJK_CHAR = re.compile(f"[{CJK}]")
CJK_UNITS = re.compile(f"[{CJK}]|[^\\s{CJK}]+")
# a token with an alphabetic core, e.g. `good,` or `"Happy`: only the core is looked up and replaced
WORD_CORE = re.compile(r"^(\W*)([^\W\d_]+)(\W*)$")
MIN_WORD_LENGTH = 3


class SynonymSource(Protocol):
    def synonyms(self, word: str) -> Sequence[str]: ...


@dataclass
class EmbeddingSynonyms:
    """Synonyms looked up in a table of embedding nearest neighbours, built once by ``from_model``."""

    table: dict[str, list[str]]

    def synonyms(self, word: str) -> Sequence[str]:
        return self.table.get(word) or self.table.get(word.lower()) or []

    @classmethod
    def from_model(
        cls, model: torch.nn.Module, tokenizer: Any, words: Iterable[str], **kwargs: Any
    ) -> EmbeddingSynonyms:
        """Synonyms from the input embedding matrix of a loaded model."""
        return cls.from_embeddings(model.get_input_embeddings().weight, tokenizer, words, **kwargs)

    @classmethod
    def from_embeddings(
        cls,
        weight: torch.Tensor,
        tokenizer: Any,
        words: Iterable[str],
        *,
        k: int = 5,
        batch_size: int = 1024,
    ) -> EmbeddingSynonyms:
        """The ``k`` nearest whole-word vocabulary entries of each of ``words`` that the vocabulary has,
        by cosine similarity of the rows of ``weight`` (``[vocabulary, hidden]``)."""
        weight = weight.detach().to("cpu", torch.float32)
        vocab = whole_words(tokenizer.get_vocab())
        candidates = [w for w in vocab if w.lower() not in STOP_WORDS]
        if not candidates:
            return cls({})
        cand_ids = torch.tensor([vocab[w] for w in candidates])
        cand_vecs = F.normalize(weight[cand_ids], dim=1)
        queries = sorted({w for w in words if (w in vocab or w.lower() in vocab)})
        table: dict[str, list[str]] = {}
        for begin in range(0, len(queries), batch_size):
            batch = queries[begin : begin + batch_size]
            ids = torch.tensor([vocab.get(w, vocab.get(w.lower(), 0)) for w in batch])
            sims = F.normalize(weight[ids], dim=1) @ cand_vecs.T
            # room for the word itself and its other casings, dropped below
            top = sims.topk(min(k + 3, len(candidates)), dim=1).indices.tolist()
            for word, row in zip(batch, top):
                table[word] = distinct_neighbours(word, [candidates[j] for j in row], k)
        return cls(table)


def whole_words(vocab: dict[str, int]) -> dict[str, int]:
    """Vocabulary entries that are whole alphabetic words: no ``##`` pieces, no [special] tokens."""
    return {t: i for t, i in vocab.items() if len(t) >= MIN_WORD_LENGTH and t.isalpha()}


def distinct_neighbours(word: str, ranked: list[str], k: int) -> list[str]:
    seen = {word.lower()}
    out = []
    for cand in ranked:
        if cand.lower() not in seen:
            seen.add(cand.lower())
            out.append(cand)
    return out[:k]


def content_words(examples: Iterable[TextExample]) -> set[str]:
    """The words of the first texts that could be replaced: alphabetic cores, stop-words left out."""
    found = set()
    for example in examples:
        if CJK_CHAR.search(example.text):
            continue
        for token in example.text.split():
            core = word_core(token)
            if core:
                found.add(core[1])
    return found


def word_core(token: str) -> tuple[str, str, str] | None:
    """``(leading punctuation, word, trailing punctuation)`` of a replaceable token, else None."""
    match = WORD_CORE.match(token)
    if not match or len(match[2]) < MIN_WORD_LENGTH or match[2].lower() in STOP_WORDS:
        return None
    return match[1], match[2], match[3]


def changes(n_words: int, alpha: float) -> int:
    """How many words one operation changes: EDA's ``max(1, int(alpha * n))``."""
    return max(1, int(alpha * n_words))


# -- the four operations: each takes a list of words and returns a new one -------------------------------


def synonym_replacement(words: list[str], n: int, synonyms: SynonymSource, rng: random.Random) -> list[str]:
    """Replace up to ``n`` distinct non-stop-words that have synonyms by one of their synonyms."""
    out = list(words)
    spots = replaceable(words, synonyms)
    for i, (lead, core, trail) in rng.sample(spots, min(n, len(spots))):
        out[i] = lead + same_case(core, rng.choice(synonyms.synonyms(core))) + trail
    return out


def random_insertion(words: list[str], n: int, synonyms: SynonymSource, rng: random.Random) -> list[str]:
    """Insert ``n`` times a synonym of a random non-stop-word of the text at a random position."""
    out = list(words)
    spots = replaceable(words, synonyms)
    if not spots:
        return out
    for _ in range(n):
        _, (_, core, _) = rng.choice(spots)
        out.insert(rng.randrange(len(out) + 1), rng.choice(synonyms.synonyms(core)))
    return out


def random_swap(words: list[str], n: int, rng: random.Random) -> list[str]:
    """Swap two random positions, ``n`` times."""
    out = list(words)
    if len(out) < 2:
        return out
    for _ in range(n):
        i, j = rng.sample(range(len(out)), 2)
        out[i], out[j] = out[j], out[i]
    return out


def random_deletion(words: list[str], n: int, rng: random.Random) -> list[str]:
    """Delete ``n`` random words, always keeping at least one.

    EDA deletes each word with probability alpha; a fixed count keeps every operation at the same rate.
    """
    n = min(n, len(words) - 1)
    if n <= 0:
        return list(words)
    gone = set(rng.sample(range(len(words)), n))
    return [w for i, w in enumerate(words) if i not in gone]


def replaceable(words: list[str], synonyms: SynonymSource) -> list[tuple[int, tuple[str, str, str]]]:
    """Positions of the words that have synonyms, with each word split from its punctuation."""
    cores = ((i, word_core(w)) for i, w in enumerate(words))
    return [(i, core) for i, core in cores if core and synonyms.synonyms(core[1])]


def same_case(original: str, synonym: str) -> str:
    if original.isupper() and len(original) > 1:
        return synonym.upper()
    if original[0].isupper():
        return synonym[0].upper() + synonym[1:]
    return synonym


# -- examples -----------------------------------------------------------------------------------------------

Operation = Callable[[list[str], int, random.Random], list[str]]


def operations_for(units: list[str], synonyms: SynonymSource, cjk: bool) -> list[Operation]:
    """The operations that can change these units; synonym ones only for non-CJK text with synonyms."""
    ops: list[Operation] = []
    if not cjk and replaceable(units, synonyms):
        ops.append(lambda w, n, rng: synonym_replacement(w, n, synonyms, rng))
        ops.append(lambda w, n, rng: random_insertion(w, n, synonyms, rng))
    if len(units) >= 2:
        ops += [random_swap, random_deletion]
    return ops


def split_units(text: str) -> tuple[list[str], bool]:
    """Whitespace words, or for text with CJK characters: single CJK characters and non-CJK runs."""
    if CJK_CHAR.search(text):
        return CJK_UNITS.findall(text), True
    return text.split(), False


def join_units(units: list[str], cjk: bool) -> str:
    if not cjk:
        return " ".join(units)
    text = ""
    for unit in units:
        # two non-CJK runs were separated by whitespace in the original; keep them apart
        if text and not CJK_CHAR.match(unit) and not CJK_CHAR.match(text[-1]):
            text += " "
        text += unit
    return text


def augment_text(text: str, synonyms: SynonymSource, alpha: float, rng: random.Random) -> str:
    """One augmented copy of ``text``; the text itself when no operation applies (e.g. a single word)."""
    units, cjk = split_units(text)
    ops = operations_for(units, synonyms, cjk)
    if not ops:
        return text
    return join_units(rng.choice(ops)(units, changes(len(units), alpha), rng), cjk)


def augment_examples(
    examples: list[TextExample], synonyms: SynonymSource, *, n_aug: int = 4, alpha: float = 0.1, seed: int = 0
) -> list[TextExample]:
    """The originals followed by ``n_aug`` augmented copies of each, in the originals' order.

    Only the first text of a pair is changed; the label is copied. The same seed gives the same list.
    """
    if n_aug < 0:
        raise BertkitError(f"augment_n must be 0 or more, got {n_aug}")
    if not 0 < alpha <= 1:
        raise BertkitError(f"augment_alpha must be in (0, 1], got {alpha}")
    rng = random.Random(seed)
    augmented = [
        dataclasses.replace(
            example,
            text=augment_text(example.text, synonyms, alpha, rng),
            label=list(example.label) if isinstance(example.label, list) else example.label,
        )
        for example in examples
        for _ in range(n_aug)
    ]
    return list(examples) + augmented
