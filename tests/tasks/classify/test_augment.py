"""EDA augmentation: each operation changes about alpha of the words, labels are copied, seeds repeat."""

from __future__ import annotations

import random
from collections import Counter

import pytest
import torch
from transformers import AutoTokenizer

from bertkit.config import DataConfig, ModelConfig
from bertkit.records import TextExample
from bertkit.tasks.classify.augment import (
    STOP_WORDS,
    EmbeddingSynonyms,
    augment_examples,
    changes,
    content_words,
    random_deletion,
    random_insertion,
    random_swap,
    split_units,
    synonym_replacement,
)
from bertkit.tasks.classify.task import ClassifyConfig, ClassifyTask

SYNONYMS = EmbeddingSynonyms(
    {
        "happy": ["glad", "cheerful"],
        "movie": ["film"],
        "funny": ["amusing", "comic"],
        "story": ["tale"],
        "actors": ["performers"],
        "the": ["thee"],  # a stop-word with "synonyms": must still never be replaced
        "and": ["plus"],
    }
)
TEXT = (
    "the happy movie and the funny story with the actors was a happy and funny movie "
    "about the story of the actors and the movie"
)
SENTENCE = TEXT.split()  # 25 words


def test_changes_is_edas_rate():
    assert changes(25, 0.1) == 2
    assert changes(5, 0.1) == 1  # at least one word
    assert changes(100, 0.25) == 25


@pytest.mark.parametrize("seed", range(20))
def test_synonym_replacement_changes_n_content_words_and_no_stop_word(seed):
    n = changes(len(SENTENCE), 0.1)
    out = synonym_replacement(SENTENCE, n, SYNONYMS, random.Random(seed))
    assert len(out) == len(SENTENCE)
    changed = [(a, b) for a, b in zip(SENTENCE, out) if a != b]
    assert len(changed) == n
    for before, after in changed:
        assert before not in STOP_WORDS
        assert after in SYNONYMS.synonyms(before)


@pytest.mark.parametrize("seed", range(20))
def test_random_insertion_adds_n_synonyms_of_words_of_the_text(seed):
    n = changes(len(SENTENCE), 0.2)
    out = random_insertion(SENTENCE, n, SYNONYMS, random.Random(seed))
    added = Counter(out) - Counter(SENTENCE)
    assert len(out) == len(SENTENCE) + n and sum(added.values()) == n
    content = {w for w in SENTENCE if w not in STOP_WORDS}
    allowed = {s for w in content for s in SYNONYMS.synonyms(w)}
    assert set(added) <= allowed  # never "thee" or "plus": stop-words are no source


@pytest.mark.parametrize("seed", range(20))
def test_random_swap_moves_at_most_2n_words_and_keeps_them_all(seed):
    n = changes(len(SENTENCE), 0.1)
    out = random_swap(SENTENCE, n, random.Random(seed))
    assert Counter(out) == Counter(SENTENCE)
    assert sum(a != b for a, b in zip(SENTENCE, out)) <= 2 * n


@pytest.mark.parametrize("seed", range(20))
def test_random_deletion_removes_n_words_in_order(seed):
    n = changes(len(SENTENCE), 0.1)
    out = random_deletion(SENTENCE, n, random.Random(seed))
    assert len(out) == len(SENTENCE) - n
    rest = iter(SENTENCE)
    assert all(word in rest for word in out)  # a subsequence: order kept
    assert random_deletion(["alone"], 3, random.Random(seed)) == ["alone"]  # never deletes everything


def test_punctuation_stays_and_case_follows_the_original():
    out = synonym_replacement(["Happy,"], 1, SYNONYMS, random.Random(0))
    assert out[0] in {"Glad,", "Cheerful,"}


def examples() -> list[TextExample]:
    return [
        TextExample(" ".join(SENTENCE), label="pos", line=1),
        TextExample("a funny and happy movie about actors", label="neg", line=2),
        TextExample("the story", pair="a second text stays as it is", label="pos", line=3),
        TextExample("happy", label=["x", "y"], line=4),
    ]


def test_n_aug_copies_follow_the_originals_with_labels_and_pairs_kept():
    originals = examples()
    out = augment_examples(originals, SYNONYMS, n_aug=3, alpha=0.1, seed=5)
    assert len(out) == len(originals) * 4
    assert out[: len(originals)] == originals
    copies = out[len(originals) :]
    for i, original in enumerate(originals):
        for copy in copies[3 * i : 3 * i + 3]:
            assert copy.label == original.label and copy.pair == original.pair and copy.line == original.line
    assert copies[-1].label is not originals[-1].label  # multi-label lists are copied, not shared
    assert sum(c.text != originals[c.line - 1].text for c in copies) >= len(copies) - 3


def test_the_same_seed_gives_the_same_examples():
    a = augment_examples(examples(), SYNONYMS, seed=3)
    assert a == augment_examples(examples(), SYNONYMS, seed=3)
    assert a != augment_examples(examples(), SYNONYMS, seed=4)


def test_n_aug_zero_and_bad_alpha():
    assert augment_examples(examples(), SYNONYMS, n_aug=0) == examples()
    with pytest.raises(Exception, match="alpha"):
        augment_examples(examples(), SYNONYMS, alpha=0)


def test_chinese_text_is_only_swapped_or_deleted_by_character():
    text = "这部电影非常好看演员也很棒"
    synonyms = EmbeddingSynonyms({c: ["坏"] for c in text} | {text: ["坏"]})
    out = augment_examples([TextExample(text, label="1")], synonyms, n_aug=40, alpha=0.1, seed=0)
    n = changes(len(text), 0.1)
    seen = set()
    for copy in out[1:]:
        assert "坏" not in copy.text and " " not in copy.text
        if Counter(copy.text) == Counter(text):
            seen.add("swap")
            assert sum(a != b for a, b in zip(text, copy.text)) <= 2 * n
        else:
            seen.add("delete")
            assert len(copy.text) == len(text) - n and not Counter(copy.text) - Counter(text)
    assert seen == {"swap", "delete"}


def test_mixed_chinese_keeps_latin_runs_whole():
    out = augment_examples([TextExample("我 爱 Python code", label="1")], SYNONYMS, n_aug=20, seed=1)
    for copy in out[1:]:
        units, cjk = split_units(copy.text)
        assert cjk and Counter(units) <= Counter(["我", "爱", "Python", "code"])


def test_content_words_skip_stop_words_short_words_and_chinese():
    found = content_words([TextExample("The happy, OK movie!"), TextExample("电影 good")])
    assert found == {"happy", "movie"}


class Embeddings(torch.nn.Module):
    def __init__(self, weight: torch.Tensor):
        super().__init__()
        self.embed = torch.nn.Embedding.from_pretrained(weight)

    def get_input_embeddings(self) -> torch.nn.Embedding:
        return self.embed


class Vocab:
    def __init__(self, tokens: list[str]):
        self.tokens = tokens

    def get_vocab(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.tokens)}


def test_embedding_synonyms_finds_the_nearly_parallel_word():
    tokens = ["[PAD]", "[CLS]", "##py", "happy", "glad", "sad", "table", "the", "ok", "Happy"]
    weight = torch.tensor(
        [
            [1.0, 1.0, 1.0, 1.0],  # [PAD]: never a synonym
            [1.0, 0.0, 0.0, 0.1],  # [CLS] points where "happy" does: still not a word
            [1.0, 0.0, 0.0, 0.05],  # a ## piece, likewise
            [1.0, 0.0, 0.0, 0.0],  # happy
            [0.98, 0.02, 0.0, 0.0],  # glad: nearly parallel to happy
            [0.5, 0.8, 0.0, 0.0],  # sad
            [0.0, 0.0, 1.0, 0.0],  # table
            [1.0, 0.0, 0.0, 0.01],  # the: a stop-word, not offered as a synonym
            [1.0, 0.0, 0.0, 0.02],  # ok: too short
            [1.0, 0.0, 0.01, 0.0],  # Happy: the same word in another case
        ]
    )
    synonyms = EmbeddingSynonyms.from_model(
        Embeddings(weight), Vocab(tokens), ["happy", "table", "unknownword"], k=2
    )
    assert synonyms.synonyms("happy") == ["glad", "sad"]
    assert synonyms.synonyms("Happy") == ["glad", "sad"]  # looked up case-insensitively
    assert len(synonyms.synonyms("table")) == 2 and "table" not in synonyms.synonyms("table")
    assert synonyms.synonyms("unknownword") == []  # not a whole word of the vocabulary: no synonyms
    assert set(synonyms.table) == {"happy", "table"}  # only the words asked for


def test_classify_hook_returns_train_unchanged_when_augment_is_off(tiny_bert):
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    model_cfg = ModelConfig(name_or_path=str(tiny_bert))
    task = ClassifyTask(ClassifyConfig(), model_cfg, DataConfig(), tokenizer, ["a", "b"])
    train = examples()
    assert task.prepare_train(train, seed=1) is train


def test_classify_hook_augments_with_the_pretrained_embeddings(tiny_bert):
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    cfg = ClassifyConfig(augment=True, augment_n=2, augment_alpha=0.2)
    task = ClassifyTask(cfg, ModelConfig(name_or_path=str(tiny_bert)), DataConfig(), tokenizer, ["a", "b"])
    train = [TextExample("alice went to paris today", label="a"), TextExample("bob met carol", label="b")]
    out = task.prepare_train(train, seed=1)
    assert len(out) == 6 and out[:2] == train
    assert [r.label for r in out[2:]] == ["a", "a", "b", "b"]
    assert out == task.prepare_train(train, seed=1)
