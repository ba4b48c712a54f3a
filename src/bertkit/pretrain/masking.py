"""Dynamic masked-LM masking as in BERT: a fixed share of each sequence, token by token or whole words.

Hand-written because transformers 5 removed ``DataCollatorForWholeWordMask``, and
``DataCollatorForLanguageModeling`` draws a Bernoulli 15% per token rather than a fixed count and knows
no words. Every call draws the same number of random values for a given batch shape, from ``generator``
or torch's global RNG, so reseeding (or restoring the RNG state on resume) reproduces the masks exactly.
"""

from __future__ import annotations

import torch

from bertkit.data.padding import IGNORE
from bertkit.errors import BertkitError

MASK_SHARE, RANDOM_SHARE = 0.8, 0.1  # of the chosen: [MASK], a random id; the rest stay as they are


def mask_tokens(
    input_ids: torch.Tensor,
    word_starts: torch.Tensor,
    maskable: torch.Tensor,
    *,
    mask_id: int,
    random_ids: torch.Tensor,
    probability: float = 0.15,
    whole_word: bool = False,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Choose ``max(1, round(n * probability))`` of the ``n`` maskable tokens of each sequence; return
    ``(masked input ids, labels)``, labels holding the original id where chosen and -100 elsewhere.

    Of the chosen, 80% become ``mask_id``, 10% a random id from ``random_ids`` and 10% stay unchanged.
    With ``whole_word``, a word (a run from a True in ``word_starts`` over the Falses after it) is
    chosen, and meets its fate, as one: all its pieces masked, all random, or all kept.
    """
    _check_inputs(input_ids, word_starts, maskable, random_ids, probability)
    batch, length = input_ids.shape
    starts = word_starts if whole_word else torch.ones_like(maskable)
    # (batch, length): the word each position is in; positions before a first start join word 0.
    # A word may then hold non-maskable positions (against the convention): they are never chosen.
    word_of = (starts.long().cumsum(dim=1) - 1).clamp(min=0)
    word_len = torch.zeros(batch, length, dtype=torch.long).scatter_add_(1, word_of, maskable.long())

    n_maskable = maskable.sum(dim=1)
    budget = torch.where(n_maskable > 0, (n_maskable.double() * probability).round().long().clamp(min=1), 0)
    chosen_words = _choose_words(word_len, budget, generator)
    fate = torch.rand(batch, length, generator=generator).gather(1, word_of)
    picks = torch.randint(len(random_ids), (batch * length,), generator=generator)
    # index_select, not random_ids[picks]: the latter takes ~10 ms for 64x128 on CPU in torch 2.13
    replacements = random_ids.index_select(0, picks).view(batch, length)

    chosen = chosen_words.gather(1, word_of) & maskable
    labels = torch.where(chosen, input_ids, IGNORE)
    masked = torch.where(chosen & (fate < MASK_SHARE), mask_id, input_ids)
    randomised = chosen & (fate >= MASK_SHARE) & (fate < MASK_SHARE + RANDOM_SHARE)
    masked = torch.where(randomised, replacements, masked)
    return masked, labels


def _choose_words(
    word_len: torch.Tensor, budget: torch.Tensor, generator: torch.Generator | None
) -> torch.Tensor:
    """(batch, words) bool: words taken in random order until each row's ``budget`` tokens are covered.

    As in Google's create_pretraining_data.py, a word that would overshoot the budget is skipped and
    later, shorter ones may still fit; unlike it, the first word is always taken, so a sequence whose
    words are all longer than its budget still gets a prediction.
    """
    scores = torch.rand(word_len.shape, generator=generator).masked_fill(word_len == 0, 2.0)
    order = scores.argsort(dim=1)  # words with something to mask first, in random order
    lengths = word_len.gather(1, order)
    taken = torch.zeros_like(lengths, dtype=torch.bool)
    taken[:, 0] = lengths[:, 0] > 0
    covered = lengths[:, 0].clone()
    undecided = lengths > 0
    undecided[:, 0] = False
    # Each round takes, per row, the longest run of undecided words that fits in the room left: that is
    # what the one-word-at-a-time loop does up to its next skip. The word it would skip is longer than the
    # room then left, so the next round drops it; rounds = skips + 1, not one per word.
    while True:
        room = (budget - covered).unsqueeze(1)
        undecided &= lengths <= room  # the room only shrinks: a word too long now never fits
        if not bool(undecided.any()):
            break
        fits = undecided & ((lengths * undecided).cumsum(dim=1) <= room)
        taken |= fits
        covered += (lengths * fits).sum(dim=1)
        undecided &= ~fits
    return torch.zeros_like(taken).scatter_(1, order, taken)


def _check_inputs(
    input_ids: torch.Tensor,
    word_starts: torch.Tensor,
    maskable: torch.Tensor,
    random_ids: torch.Tensor,
    probability: float,
) -> None:
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must be (batch, length), got shape {tuple(input_ids.shape)}")
    for name, flags in (("word_starts", word_starts), ("maskable", maskable)):
        if flags.shape != input_ids.shape or flags.dtype != torch.bool:
            raise ValueError(
                f"{name} must be a bool tensor shaped like input_ids {tuple(input_ids.shape)}, "
                f"got {flags.dtype} {tuple(flags.shape)}"
            )
    if random_ids.dim() != 1 or len(random_ids) == 0:
        raise BertkitError("random_ids must be a non-empty 1-d tensor: the vocabulary has no ordinary token")
    if not 0 < probability <= 1:
        raise BertkitError(f"the masking probability must be in (0, 1], got {probability}")
