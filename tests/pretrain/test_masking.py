"""Tests for pretrain/masking.py: BERT's shares on a large sample, whole words kept whole, reproducibility."""

from __future__ import annotations

import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bertkit.errors import BertkitError
from bertkit.pretrain.masking import IGNORE, mask_tokens

PAD, CLS, SEP, MASK = 0, 2, 3, 4
SPECIAL = {PAD, 1, CLS, SEP, MASK}
TEXT_IDS = (10, 500)  # ids of the input text
RANDOM_IDS = torch.arange(1000, 1100)  # disjoint from the text, so every fate can be read off the output


def make_batch(word_lengths: list[list[int]], length: int, seed: int = 0):
    """[CLS] words [SEP] padding; each word a run of pieces. Returns ids, word starts, maskable."""
    rng = random.Random(seed)
    ids, starts, maskable = [], [], []
    for words in word_lengths:
        n = sum(words)
        pad = length - n - 2
        ids.append([CLS, *(rng.randrange(*TEXT_IDS) for _ in range(n)), SEP] + [PAD] * pad)
        starts.append([True, *(i == 0 for pieces in words for i in range(pieces)), True] + [True] * pad)
        maskable.append([False] + [True] * n + [False] * (pad + 1))
    return torch.tensor(ids), torch.tensor(starts), torch.tensor(maskable)


def random_layout(n_seqs: int, length: int, max_pieces: int, seed: int) -> list[list[int]]:
    """Word lengths (1 to ``max_pieces`` pieces) of sequences filling a third to all of ``length``."""
    rng = random.Random(seed)
    layout = []
    for _ in range(n_seqs):
        left = rng.randint(length // 3, length - 2)
        words = []
        while left:
            words.append(min(rng.randint(1, max_pieces), left))
            left -= words[-1]
        layout.append(words)
    return layout


def fates(ids: torch.Tensor, masked: torch.Tensor) -> torch.Tensor:
    """Per position: 0 kept, 1 [MASK], 2 random."""
    return torch.where(masked == MASK, 1, torch.where(masked == ids, 0, 2))


def mask(ids, starts, maskable, **kwargs):
    return mask_tokens(ids, starts, maskable, mask_id=MASK, random_ids=RANDOM_IDS, **kwargs)


@pytest.mark.parametrize("whole_word", [False, True])
def test_shares_on_a_large_sample(whole_word):
    ids, starts, maskable = make_batch(random_layout(2000, 128, 3, seed=1), 128)
    masked, labels = mask(
        ids, starts, maskable, whole_word=whole_word, generator=torch.Generator().manual_seed(0)
    )
    chosen = labels != IGNORE
    assert chosen.sum() / maskable.sum() == pytest.approx(0.15, abs=0.01)
    assert not chosen[~maskable].any() and torch.equal(masked[~maskable], ids[~maskable])
    assert torch.equal(labels[chosen], ids[chosen])
    assert torch.equal(masked[~chosen], ids[~chosen])
    fate = fates(ids, masked)[chosen]
    shares = torch.bincount(fate, minlength=3) / len(fate)
    assert shares.tolist() == pytest.approx([0.1, 0.8, 0.1], abs=0.02)
    replaced = masked[chosen & (fates(ids, masked) == 2)]
    assert torch.isin(replaced, RANDOM_IDS).all()
    assert not any(int(i) in SPECIAL for i in replaced.unique())


def test_token_level_chooses_exactly_the_rounded_share_of_each_sequence():
    layout = random_layout(300, 64, 1, seed=2) + [[1], [2], [3], [7]]
    ids, starts, maskable = make_batch(layout, 64)
    _, labels = mask(ids, starts, maskable, generator=torch.Generator().manual_seed(0))
    expected = [max(1, round(int(n) * 0.15)) for n in maskable.sum(dim=1)]
    assert (labels != IGNORE).sum(dim=1).tolist() == expected


def word_spans(words: list[int]) -> list[range]:
    spans, at = [], 1
    for pieces in words:
        spans.append(range(at, at + pieces))
        at += pieces
    return spans


@settings(max_examples=150, deadline=None)
@given(
    layout=st.lists(st.lists(st.integers(1, 5), min_size=0, max_size=25), min_size=1, max_size=6),
    probability=st.sampled_from([0.05, 0.15, 0.3, 0.5]),
    seed=st.integers(0, 2**31 - 1),
)
def test_whole_word_masking_never_splits_a_word(layout, probability, seed):
    length = max(sum(words) for words in layout) + 4
    ids, starts, maskable = make_batch(layout, length, seed)
    masked, labels = mask(
        ids,
        starts,
        maskable,
        probability=probability,
        whole_word=True,
        generator=torch.Generator().manual_seed(seed),
    )
    fate = fates(ids, masked)
    for row, words in enumerate(layout):
        chosen = (labels[row] != IGNORE).tolist()
        taken = [span for span in word_spans(words) if chosen[span[0]]]
        for span in word_spans(words):
            assert len({chosen[i] for i in span}) == 1  # all of a word or none of it
        for span in taken:
            assert len({int(fate[row, i]) for i in span}) == 1  # one fate per word
        assert not any(chosen[i] for i in range(length) if not maskable[row, i])
        n = sum(words)
        if n == 0:
            assert not any(chosen)
            continue
        budget = max(1, round(n * probability))
        covered = sum(chosen)
        assert taken and (covered <= budget or len(taken) == 1)
        # greedy to the end: every word left out would have overshot what was left of the budget
        assert all(len(span) > budget - covered for span in word_spans(words) if span not in taken)


def test_a_word_longer_than_the_budget_is_still_chosen_whole():
    ids, starts, maskable = make_batch([[3]], 8)  # budget max(1, round(0.45)) = 1 < 3 pieces
    _, labels = mask(ids, starts, maskable, whole_word=True, generator=torch.Generator().manual_seed(0))
    assert (labels[0, 1:4] != IGNORE).all() and (labels[0, 4:] == IGNORE).all()


def test_token_level_ignores_word_starts():
    ids, starts, maskable = make_batch([[40]], 44)  # one word of 40 pieces
    _, labels = mask(ids, starts, maskable, generator=torch.Generator().manual_seed(0))
    assert (labels != IGNORE).sum() == 6


def test_the_same_seed_gives_the_same_masks_and_another_seed_others():
    ids, starts, maskable = make_batch(random_layout(16, 64, 3, seed=3), 64)
    for whole_word in (False, True):
        runs = [
            mask(ids, starts, maskable, whole_word=whole_word, generator=torch.Generator().manual_seed(s))
            for s in (7, 7, 8)
        ]
        assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])
        assert not torch.equal(runs[0][1], runs[2][1])


def test_reseeding_the_global_rng_reproduces_the_masks():
    ids, starts, maskable = make_batch(random_layout(16, 64, 3, seed=4), 64)
    torch.manual_seed(123)
    first = mask(ids, starts, maskable, whole_word=True)
    after = mask(ids, starts, maskable, whole_word=True)
    torch.manual_seed(123)
    again = mask(ids, starts, maskable, whole_word=True)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[1], after[1])  # it does draw from the global RNG


def test_restoring_the_rng_state_resumes_exactly():
    ids, starts, maskable = make_batch(random_layout(8, 32, 2, seed=5), 32)
    torch.manual_seed(0)
    mask(ids, starts, maskable)
    state = torch.get_rng_state()
    expected = mask(ids, starts, maskable)
    torch.set_rng_state(state)
    assert torch.equal(mask(ids, starts, maskable)[1], expected[1])


@pytest.mark.parametrize("whole_word", [False, True])
def test_a_sequence_of_only_specials_gets_no_label(whole_word):
    ids, starts, maskable = make_batch([[], [5, 5]], 14)
    masked, labels = mask(
        ids, starts, maskable, whole_word=whole_word, generator=torch.Generator().manual_seed(0)
    )
    assert (labels[0] == IGNORE).all() and torch.equal(masked[0], ids[0])
    assert (labels[1] != IGNORE).any()


def test_a_word_running_into_a_special_token_still_spares_the_special():
    ids, starts, maskable = make_batch([[4]], 8)
    starts[0, 5] = False  # [SEP] glued to the word: against the convention, but [SEP] must stay
    for seed in range(20):
        masked, labels = mask(
            ids, starts, maskable, whole_word=True, generator=torch.Generator().manual_seed(seed)
        )
        assert labels[0, 5] == IGNORE and masked[0, 5] == SEP


def test_without_any_word_start_the_whole_text_is_one_word():
    ids, _, maskable = make_batch([[1] * 30], 36)
    no_starts = torch.zeros_like(maskable)
    _, labels = mask(ids, no_starts, maskable, whole_word=True, generator=torch.Generator().manual_seed(0))
    assert torch.equal(labels != IGNORE, maskable)


def test_bad_arguments_name_what_is_wrong():
    ids, starts, maskable = make_batch([[3]], 8)
    with pytest.raises(BertkitError, match="probability"):
        mask(ids, starts, maskable, probability=0.0)
    with pytest.raises(BertkitError, match="random_ids"):
        mask_tokens(ids, starts, maskable, mask_id=MASK, random_ids=torch.tensor([], dtype=torch.long))
    with pytest.raises(ValueError, match="maskable must be a bool tensor"):
        mask(ids, starts, maskable.long())
