"""Tests for tasks/tag_decoding.py: Viterbi within the scheme's rules, the transition masks, the decoder."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from bertkit.tasks.ner.decoding import TagDecoder, allowed_transitions, can_follow, viterbi

IOB2 = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
BIOES = ["O", "B-PER", "I-PER", "E-PER", "S-PER", "B-LOC", "E-LOC"]
BMES = [t.replace("I-", "M-") for t in BIOES]
LABELS = {"iob2": IOB2, "bioes": BIOES, "bmes": BMES, "io": ["O", "I-PER", "I-LOC"], "iob1": IOB2}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def decode(scores: list[list[float]], labels: list[str], scheme: str) -> list[str]:
    path = viterbi(np.array(scores, np.float32), *allowed_transitions(labels, scheme))
    return [labels[i] for i in path]


# --- viterbi by hand ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("scores", "expected"),
    [
        # argmax: O, I-PER (forbidden: I- after O). Allowed paths and their sums:
        #   O,O -0.1-2.0=-2.1   O,B -0.1-1.5=-1.6   B,O -2.5-2.0=-4.5   B,B -4.0   B,I -2.5-0.2=-2.7
        ([[-0.1, -2.5, -3.0], [-2.0, -1.5, -0.2]], ["O", "B-PER"]),
        # same second word, but B-PER is nearly as likely as O at the first:
        #   O,O -2.1   O,B -1.6   B,O -2.9   B,B -2.4   B,I -0.9-0.2=-1.1  <- best
        ([[-0.1, -0.9, -3.0], [-2.0, -1.5, -0.2]], ["B-PER", "I-PER"]),
    ],
)
def test_viterbi_iob2_best_allowed_path_by_hand(scores, expected):
    labels = ["O", "B-PER", "I-PER"]
    assert [labels[i] for i in np.argmax(scores, -1)] == ["O", "I-PER"]  # what argmax would say
    assert decode(scores, labels, "iob2") == expected


def test_viterbi_bioes_does_not_leave_an_entity_open_by_hand():
    labels = ["O", "B-PER", "I-PER", "E-PER", "S-PER"]
    scores = [[-1.0, -0.2, -5.0, -5.0, -0.9], [-0.1, -3.0, -3.0, -1.5, -2.0]]
    # argmax: B-PER, O (B- never closed). Allowed (start not I/E, B followed by I/E, end not B/I):
    #   O,O -1.1   O,S -3.0   S,O -0.9-0.1=-1.0  <- best   S,S -2.9   B,E -0.2-1.5=-1.7
    assert decode(scores, labels, "bioes") == ["S-PER", "O"]
    # one word that looks most like B-PER: a sentence cannot end in B-, S-PER (-0.9) beats O (-1.0)
    assert decode(scores[:1], labels, "bioes") == ["S-PER"]


def test_viterbi_io_and_iob1_are_argmax():
    scores = [[-0.1, -2.5, -3.0], [-2.0, -1.5, -0.2]]
    assert decode(scores, ["O", "I-PER", "I-LOC"], "io") == ["O", "I-LOC"]
    assert decode(scores, ["O", "B-PER", "I-PER"], "iob1") == ["O", "I-PER"]


def test_viterbi_edge_cases():
    start, trans, end = allowed_transitions(["B-PER"], "bioes")
    assert viterbi(np.zeros((0, 1), np.float32), start, trans, end).tolist() == []
    # nothing is allowed (a lone B-PER can never close): fall back to argmax instead of failing
    assert viterbi(np.zeros((2, 1), np.float32), start, trans, end).tolist() == [0, 0]


def path_score(path, scores, start, trans, end) -> float:
    total = start[path[0]] + scores[0][path[0]] + end[path[-1]]
    for i in range(1, len(path)):
        total += trans[path[i - 1], path[i]] + scores[i][path[i]]
    return float(total)


@settings(max_examples=150, deadline=None)
@given(data=st.data(), scheme=st.sampled_from(sorted(LABELS)), n=st.integers(1, 4))
def test_viterbi_matches_brute_force_over_allowed_paths(data, scheme, n):
    labels = LABELS[scheme]
    scores = np.array(
        data.draw(
            st.lists(
                st.lists(st.floats(-6, 0, width=32), min_size=len(labels), max_size=len(labels)),
                min_size=n,
                max_size=n,
            )
        ),
        np.float32,
    )
    start, trans, end = allowed_transitions(labels, scheme)
    paths = itertools.product(range(len(labels)), repeat=n)
    best = max(path_score(p, scores, start, trans, end) for p in paths)
    path = viterbi(scores, start, trans, end).tolist()
    assert len(path) == n
    assert math.isfinite(path_score(path, scores, start, trans, end))  # an allowed path
    assert path_score(path, scores, start, trans, end) == pytest.approx(best, abs=1e-5)


# --- allowed transitions ------------------------------------------------------------------------------


def allowed_sets(labels: list[str], scheme: str) -> tuple[set, dict, set]:
    start, trans, end = allowed_transitions(labels, scheme)
    for mask in (start, trans, end):
        assert set(np.unique(mask).tolist()) <= {0.0, -math.inf}
    return (
        {labels[i] for i in np.flatnonzero(start == 0)},
        {a: {labels[j] for j in np.flatnonzero(trans[i] == 0)} for i, a in enumerate(labels)},
        {labels[i] for i in np.flatnonzero(end == 0)},
    )


@pytest.mark.parametrize("scheme", ["bioes", "bmes"])
def test_allowed_transitions_bioes_and_bmes(scheme):
    inside = "M" if scheme == "bmes" else "I"
    labels = BMES if scheme == "bmes" else BIOES
    start, follow, end = allowed_sets(labels, scheme)
    outside = {"O", "B-PER", "S-PER", "B-LOC"}  # what may come when no entity is open
    assert start == outside
    assert follow == {
        "O": outside,
        "B-PER": {f"{inside}-PER", "E-PER"},  # an open entity must go on or end, in its own type
        f"{inside}-PER": {f"{inside}-PER", "E-PER"},
        "E-PER": outside,
        "S-PER": outside,
        "B-LOC": {"E-LOC"},
        "E-LOC": outside,
    }
    assert end == {"O", "E-PER", "S-PER", "E-LOC"}  # never end on B- or an inside tag


def test_allowed_transitions_iob2():
    start, follow, end = allowed_sets(IOB2, "iob2")
    assert start == {"O", "B-PER", "B-LOC"}
    assert follow["O"] == {"O", "B-PER", "B-LOC"}
    assert follow["B-LOC"] == {"O", "B-PER", "B-LOC", "I-LOC"}
    assert follow["B-PER"] == follow["I-PER"] == {"O", "B-PER", "I-PER", "B-LOC"}
    assert follow["I-LOC"] == {"O", "B-PER", "B-LOC", "I-LOC"}
    assert end == set(IOB2)


@pytest.mark.parametrize("scheme", ["io", "iob1"])
def test_io_and_iob1_allow_everything(scheme):
    labels = LABELS[scheme]
    start, follow, end = allowed_sets(labels, scheme)
    assert start == end == set(labels) and all(v == set(labels) for v in follow.values())


def test_can_follow_sentence_start_is_o():
    assert not can_follow("O", "I-PER", "iob2") and can_follow("B-PER", "I-PER", "iob2")
    assert not can_follow("B-PER", "I-LOC", "iob2")
    assert not can_follow("S-PER", "E-PER", "bioes") and not can_follow("B-PER", "O", "bmes")


# --- the decoder: windows in any order ----------------------------------------------------------------

# three records: #0 has 5 words over two windows (window A owns words 0-2, window B words 3-4 and
# also holds copies of words 1-2 that it does not own); #1 has no words (one empty window); #2 has
# 2 words in one window. The decoder sees only slots, records and logits.
WINDOWS = [
    {"record": 0, "slots": [(1, 0), (2, 1), (4, 2)]},  # A: word 2 starts after a continuation sub-word
    {"record": 0, "slots": [(3, 3), (4, 4)]},  # B
    {"record": 1, "slots": []},  # C
    {"record": 2, "slots": [(1, 0), (2, 1)]},  # D
]
DECODER_LABELS = ["O", "B-PER", "I-PER"]
LENGTH = 6


def window_logits() -> list[torch.Tensor]:
    """Owned slots favour the expected tag by 3; every other position strongly favours a wrong tag."""
    expected = {0: ["B-PER", "I-PER", "O", "O", "B-PER"], 2: ["O", "O"]}
    out = []
    for window in WINDOWS:
        logits = torch.zeros(LENGTH, 3)
        logits[:, 2] = 9.0  # I-PER everywhere else, which would also break the IOB2 rules
        for pos, word in window["slots"]:
            logits[pos] = 0.0
            logits[pos, DECODER_LABELS.index(expected[window["record"]][word])] = 3.0
        out.append(logits)
    return out


def run_decoder(order: list[int], batch_size: int, method: str) -> list:
    logits = window_logits()
    decoder = TagDecoder(DECODER_LABELS, "iob2", method, [5, 0, 2], Counter(w["record"] for w in WINDOWS))
    for begin in range(0, len(order), batch_size):
        idx = order[begin : begin + batch_size]
        batch = {"record": [WINDOWS[i]["record"] for i in idx], "slots": [WINDOWS[i]["slots"] for i in idx]}
        decoder.add(type("Out", (), {"logits": torch.stack([logits[i] for i in idx])})(), batch)
    return decoder.predictions()


@pytest.mark.parametrize("method", ["viterbi", "argmax"])
def test_decoder_gives_the_same_tags_whatever_order_the_windows_come_in(method):
    # softmax of [3, 0, 0]: e^3 / (e^3 + 2)
    p = math.exp(3) / (math.exp(3) + 2)
    for order in itertools.permutations(range(len(WINDOWS))):
        for batch_size in (1, 2, 3, 4):
            predictions = run_decoder(list(order), batch_size, method)
            tags = [pred.tags for pred in predictions]
            assert tags == [["B-PER", "I-PER", "O", "O", "B-PER"], [], ["O", "O"]]
            probs = [pred.probs for pred in predictions]
            assert probs == [[pytest.approx(p)] * 5, [], [pytest.approx(p)] * 2]


def test_decoder_viterbi_repairs_what_argmax_leaves_illegal():
    decoder_args = (DECODER_LABELS, "iob2")
    batch = {"record": [0], "slots": [[(1, 0), (2, 1)]]}
    logits = torch.tensor([[[0.0, 0.0, 0.0], [2.0, 0.0, 0.0], [0.0, 1.0, 1.5], [0.0, 0.0, 0.0]]])
    out = type("Out", (), {"logits": logits})()
    tags = {}
    for method in ("argmax", "viterbi"):
        decoder = TagDecoder(*decoder_args, method, [2], Counter({0: 1}))
        decoder.add(out, batch)
        tags[method] = decoder.predictions()[0].tags
    # word 1: I-PER (1.5) beats B-PER (1.0) but may not follow O; Viterbi takes O, B-PER
    assert tags == {"argmax": ["O", "I-PER"], "viterbi": ["O", "B-PER"]}


def test_decoder_frees_a_record_once_its_last_window_is_in():
    logits = window_logits()
    decoder = TagDecoder(DECODER_LABELS, "iob2", "viterbi", [5, 0, 2], Counter(w["record"] for w in WINDOWS))

    def add(i):
        decoder.add(
            type("Out", (), {"logits": logits[i][None]})(),
            {"record": [WINDOWS[i]["record"]], "slots": [WINDOWS[i]["slots"]]},
        )

    add(1)
    assert 0 in decoder.scores  # window A of record 0 is still to come
    add(3)
    add(0)
    assert decoder.scores == {}  # only predictions are kept, not scores
    with pytest.raises(RuntimeError, match="#1"):
        decoder.predictions()  # record 1's (empty) window never came
    add(2)
    assert [p.tags for p in decoder.predictions()][1] == []
