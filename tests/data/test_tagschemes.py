"""Tests for tagschemes: split, decode, encode, convert, detect, check, repair, and the seqeval hand-off."""

from __future__ import annotations

import itertools

import pytest
import seqeval.scheme
from hypothesis import given, settings
from hypothesis import strategies as st

from bertkit.data.tagschemes import (
    SCHEMES,
    convert_tags,
    detect_scheme,
    invalid_transitions,
    repair_tags,
    spans_to_tags,
    split_tag,
    tags_to_spans,
    to_seqeval,
)
from bertkit.records import Span

# --- split_tag ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("B-PER", ("B", "PER")),
        ("O", ("O", "")),
        ("I-creative-work", ("I", "creative-work")),
        ("E-PER.NAM", ("E", "PER.NAM")),
        ("M-LOC", ("M", "LOC")),
        ("S-x", ("S", "x")),
    ],
)
def test_split_tag(tag, expected):
    assert split_tag(tag) == expected


@pytest.mark.parametrize("tag", ["X-PER", "B-", "BPER", "O-PER", "", "B", "b-PER", "PER"])
def test_split_tag_rejects_malformed(tag):
    with pytest.raises(ValueError, match="malformed tag"):
        split_tag(tag)


def test_bilou_tags_are_refused_with_their_bioes_names():
    for tag in ("U-PER", "L-LOC"):
        with pytest.raises(ValueError, match="BILOU's U- and L- are BIOES's S- and E-"):
            split_tag(tag)


# --- tags_to_spans -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tags", "scheme", "spans"),
    [
        (["B-PER", "I-PER", "O", "B-LOC"], "iob2", [(0, 2, "PER"), (3, 4, "LOC")]),
        (["B-PER", "B-PER"], "iob2", [(0, 1, "PER"), (1, 2, "PER")]),
        (["I-PER", "I-PER", "B-PER", "O"], "iob1", [(0, 2, "PER"), (2, 3, "PER")]),
        (["I-PER", "I-PER", "O", "I-LOC"], "io", [(0, 2, "PER"), (3, 4, "LOC")]),
        (
            ["B-PER", "E-PER", "S-LOC", "B-X", "I-X", "E-X"],
            "bioes",
            [(0, 2, "PER"), (2, 3, "LOC"), (3, 6, "X")],
        ),
        (["B-PER", "M-PER", "E-PER", "S-PER"], "bmes", [(0, 3, "PER"), (3, 4, "PER")]),
        (["I-creative-work", "I-creative-work"], "iob2", [(0, 2, "creative-work")]),
        ([], "iob2", []),
    ],
)
def test_tags_to_spans(tags, scheme, spans):
    assert tags_to_spans(tags, scheme) == [Span(*s) for s in spans]


@pytest.mark.parametrize(
    ("tags", "spans"),
    [
        (["O", "I-PER", "I-PER"], [(1, 3, "PER")]),  # I- after O starts an entity
        (["B-PER", "I-LOC", "I-LOC"], [(0, 1, "PER"), (1, 3, "LOC")]),  # a type change starts another
        (["B-PER", "I-PER", "O"], [(0, 2, "PER")]),  # an unclosed BIOES entity ends at O
        (["O", "E-PER", "O"], [(1, 2, "PER")]),  # an E- after O is an entity of one token
        (["S-PER", "I-PER"], [(0, 1, "PER"), (1, 2, "PER")]),  # S- always ends
    ],
)
def test_tags_to_spans_is_lenient_like_conlleval(tags, spans):
    assert tags_to_spans(tags, "bioes") == [Span(*s) for s in spans]


def test_unknown_scheme_is_rejected():
    with pytest.raises(ValueError, match="unknown tag scheme"):
        tags_to_spans(["O"], "bilou")


# --- spans_to_tags and conversion --------------------------------------------------------------------

# Two adjacent PER entities (one of three tokens) and a LOC: every scheme but IO can keep them apart.
SPANS = [Span(0, 3, "PER"), Span(3, 4, "PER"), Span(5, 6, "LOC")]
EXPECTED = {
    "io": ["I-PER", "I-PER", "I-PER", "I-PER", "O", "I-LOC", "O"],
    "iob1": ["I-PER", "I-PER", "I-PER", "B-PER", "O", "I-LOC", "O"],
    "iob2": ["B-PER", "I-PER", "I-PER", "B-PER", "O", "B-LOC", "O"],
    "bioes": ["B-PER", "I-PER", "E-PER", "S-PER", "O", "S-LOC", "O"],
    "bmes": ["B-PER", "M-PER", "E-PER", "S-PER", "O", "S-LOC", "O"],
}


@pytest.mark.parametrize("scheme", SCHEMES)
def test_spans_to_tags(scheme):
    assert spans_to_tags(SPANS, 7, scheme) == EXPECTED[scheme]


def test_io_merges_adjacent_entities_of_one_type():
    assert tags_to_spans(EXPECTED["io"], "io") == [Span(0, 4, "PER"), Span(5, 6, "LOC")]


@pytest.mark.parametrize(("src", "dst"), [p for p in itertools.permutations(SCHEMES, 2) if "io" not in p])
def test_convert_between_schemes(src, dst):
    assert convert_tags(EXPECTED[src], src, dst) == EXPECTED[dst]


# Hand-written sentences without adjacent same-type entities, so IO takes part in every round trip.
HAND_WRITTEN = [
    [Span(0, 1, "PER")],
    [Span(1, 4, "creative-work"), Span(4, 5, "PER"), Span(6, 8, "LOC")],
    [Span(0, 2, "ORG"), Span(2, 3, "PER"), Span(3, 5, "ORG")],
    [],
]


@pytest.mark.parametrize(("src", "dst"), list(itertools.permutations(SCHEMES, 2)))
@pytest.mark.parametrize("spans", HAND_WRITTEN)
def test_conversion_round_trips(spans, src, dst):
    tags = spans_to_tags(spans, 8, src)
    converted = convert_tags(tags, src, dst)
    assert tags_to_spans(converted, dst) == spans
    assert convert_tags(converted, dst, src) == tags


@pytest.mark.parametrize("spans", [[Span(0, 2, "A"), Span(1, 3, "B")], [Span(2, 5, "A")], [Span(1, 1, "A")]])
def test_spans_to_tags_rejects_overlapping_or_outside_spans(spans):
    with pytest.raises(ValueError):
        spans_to_tags(spans, 4, "iob2")


@st.composite
def span_sets(draw):
    """A sentence length and sorted, non-overlapping spans over it (gaps of zero tokens allowed)."""
    spans, pos = [], 0
    for _ in range(draw(st.integers(0, 6))):
        pos += draw(st.integers(0, 2))
        length = draw(st.integers(1, 4))
        spans.append(Span(pos, pos + length, draw(st.sampled_from(["PER", "LOC", "creative-work"]))))
        pos += length
    return pos + draw(st.integers(0, 2)), spans


def merge_adjacent_same_type(spans):
    merged = []
    for span in spans:
        if merged and merged[-1].end == span.start and merged[-1].label == span.label:
            span = Span(merged.pop().start, span.end, span.label)
        merged.append(span)
    return merged


@settings(max_examples=150, deadline=None)
@given(span_sets(), st.sampled_from(SCHEMES), st.sampled_from(SCHEMES))
def test_spans_survive_any_scheme(sentence, scheme, other):
    n, spans = sentence
    tags = spans_to_tags(spans, n, scheme)
    assert len(tags) == n
    assert invalid_transitions(tags, scheme) == []
    expected = merge_adjacent_same_type(spans) if "io" in (scheme, other) else spans
    assert tags_to_spans(convert_tags(tags, scheme, other), other) == expected


TAGS = st.sampled_from(["O", "B-A", "I-A", "E-A", "S-A", "M-A", "B-B", "I-B", "E-B", "S-B"])


@settings(max_examples=150, deadline=None)
@given(st.lists(TAGS, max_size=10), st.sampled_from(SCHEMES))
def test_repair_gives_a_valid_sequence_with_the_same_reading(tags, scheme):
    repaired = repair_tags(tags, scheme)
    assert invalid_transitions(repaired, scheme) == []
    expected = tags_to_spans(tags, scheme)
    if scheme == "io":
        expected = merge_adjacent_same_type(expected)
    assert tags_to_spans(repaired, scheme) == expected
    # A valid sequence is left as it is; IOB1 also accepts a B- that starts an entity after O, which the
    # repair writes in the canonical form (I-), and IO's repair merges adjacent entities.
    if not invalid_transitions(tags, scheme) and scheme not in ("io", "iob1"):
        assert repaired == list(tags)


def test_repair_tags():
    assert repair_tags(["O", "I-PER", "I-PER", "O"], "iob2") == ["O", "B-PER", "I-PER", "O"]
    assert repair_tags(["B-PER", "I-PER", "O"], "bioes") == ["B-PER", "E-PER", "O"]
    assert repair_tags(["B-PER", "I-PER"], "bmes") == ["B-PER", "E-PER"]


# --- detect_scheme -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sequences", "scheme"),
    [
        ([["B-PER", "I-PER", "O"], ["O", "B-LOC"]], "iob2"),
        ([["I-PER", "I-PER", "O", "I-LOC"]], "io"),
        ([["I-PER", "B-PER", "O", "I-LOC"]], "iob1"),
        ([["S-PER", "B-LOC", "E-LOC"]], "bioes"),
        ([["B-PER", "I-PER", "E-PER"]], "bioes"),
        ([["B-PER", "M-PER", "E-PER", "S-LOC"]], "bmes"),
        ([["O", "O"], []], "iob2"),
        ([], "iob2"),
        # IOB2 with a stray I- start (Weibo NER has 14): most starts are B-
        ([["B-X", "I-X", "O", "I-Y"], ["B-Y", "O", "B-X"]], "iob2"),
        # IOB1 with a stray B- after O: most starts are I-
        ([["I-X", "O", "I-Y", "O", "I-Z", "B-Z", "O", "B-X"]], "iob1"),
    ],
)
def test_detect_scheme(sequences, scheme):
    assert detect_scheme(sequences) == scheme


def test_detect_scheme_reads_a_generator_once():
    assert detect_scheme(tags for tags in [["I-A", "B-A"]]) == "iob1"


# --- invalid_transitions -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tags", "scheme", "expected"),
    [
        (["O", "I-PER"], "iob2", [(1, "I-PER follows O; iob2 entities start with B-")]),
        (["I-PER"], "iob2", [(0, "I-PER follows the sentence start; iob2 entities start with B-")]),
        (["B-LOC", "I-PER"], "iob2", [(1, "I-PER follows B-LOC; iob2 entities start with B-")]),
        (["B-PER", "E-PER"], "iob2", [(1, "E-PER is not allowed in iob2, which uses B-, I-, O")]),
        (["B-PER"], "io", [(0, "B-PER is not allowed in io, which uses I-, O")]),
        (["O", "I-PER"], "bmes", [(1, "I-PER is not allowed in bmes, which uses B-, M-, E-, S-, O")]),
        (
            ["B-PER", "O"],
            "bioes",
            [(0, "B-PER is followed by O; a bioes entity of several tokens ends with E- (one token: S-)")],
        ),
        (
            ["B-PER"],
            "bioes",
            [(0, "B-PER ends the sentence; a bioes entity of several tokens ends with E- (one token: S-)")],
        ),
        (["O", "E-PER"], "bioes", [(1, "E-PER follows O; bioes entities start with B- or S-")]),
    ],
)
def test_invalid_transitions_messages(tags, scheme, expected):
    assert invalid_transitions(tags, scheme) == expected


@pytest.mark.parametrize(
    ("tags", "scheme", "positions"),
    [
        (["S-PER", "I-PER", "E-PER"], "bioes", [1]),  # I- may not follow S-
        (["B-PER", "E-LOC"], "bioes", [0, 1]),
        (["B-A", "M-A", "O", "M-A", "E-A"], "bmes", [1, 3]),
        (["O", "I-PER", "B-LOC", "I-LOC"], "iob1", []),  # IOB1 and IO forbid only foreign prefixes
        (["I-PER", "O", "I-LOC"], "io", []),
        (["B-PER", "I-PER", "O", "B-LOC"], "iob2", []),
        (["B-PER", "I-PER", "E-PER", "S-LOC", "O"], "bioes", []),
        (["B-PER", "M-PER", "E-PER", "S-LOC", "O"], "bmes", []),
    ],
)
def test_invalid_transitions_positions(tags, scheme, positions):
    assert [i for i, _ in invalid_transitions(tags, scheme)] == positions


# --- to_seqeval --------------------------------------------------------------------------------------


@pytest.mark.parametrize("scheme", ["iob1", "iob2", "bioes", "bmes"])
def test_to_seqeval_strict_mode_reads_the_same_entities(scheme):
    tags, name = to_seqeval(EXPECTED[scheme], scheme)
    entities = seqeval.scheme.Tokens(tags, getattr(seqeval.scheme, name)).entities
    assert [(e.start, e.end, e.tag) for e in entities] == [(s.start, s.end, s.label) for s in SPANS]


def test_to_seqeval_names_and_tags():
    assert to_seqeval(["B-A", "M-A", "E-A", "S-B"], "bmes") == (["B-A", "I-A", "E-A", "S-B"], "IOBES")
    assert to_seqeval(["I-A", "O"], "io") == (["I-A", "O"], None)
    assert to_seqeval(["B-A", "I-A"], "iob2") == (["B-A", "I-A"], "IOB2")
    with pytest.raises(ValueError, match="malformed"):
        to_seqeval(["Q-A"], "iob2")
