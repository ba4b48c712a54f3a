"""Token tag schemes (IO, IOB1, IOB2, BIOES, BMES): tags to spans and back, detection and checks.

Decoding follows conlleval, so an ill-formed sequence still has one well-defined reading; every other
operation (conversion, repair, the seqeval hand-off) goes through that reading.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from bertkit.records import Span

SCHEMES = ("io", "iob1", "iob2", "bioes", "bmes")

# The prefixes each scheme may use; the letter for "inside" is I except in BMES, where it is M.
_PREFIXES = {
    "io": ("I", "O"),
    "iob1": ("B", "I", "O"),
    "iob2": ("B", "I", "O"),
    "bioes": ("B", "I", "O", "E", "S"),
    "bmes": ("B", "M", "E", "S", "O"),
}
_KNOWN_PREFIXES = frozenset("BIOESM")


def _check_scheme(scheme: str) -> None:
    if scheme not in SCHEMES:
        raise ValueError(f"unknown tag scheme {scheme!r}; expected one of {', '.join(SCHEMES)}")


def split_tag(tag: str) -> tuple[str, str]:
    """Split a tag into prefix and type: ``"B-PER"`` -> ``("B", "PER")``, ``"O"`` -> ``("O", "")``.

    Only the first ``-`` after the one-letter prefix separates, so ``"I-creative-work"`` keeps its type.
    Raises ValueError for anything else (an unknown prefix, a missing type, ``"O-PER"``).
    """
    if tag == "O":
        return "O", ""
    if len(tag) > 2 and tag[1] == "-" and tag[0] in _KNOWN_PREFIXES and tag[0] != "O":
        return tag[0], tag[2:]
    message = f"malformed tag {tag!r}; expected O or a prefix B-, I-, E-, S- or M- and a type"
    if len(tag) > 2 and tag[1] == "-" and tag[0] in "UL":
        message += " (BILOU's U- and L- are BIOES's S- and E-: rename them to read the file as BIOES)"
    raise ValueError(message)


def _conll_prefix(prefix: str) -> str:
    # BMES's M plays the part of I; conlleval's rules then cover every scheme.
    return "I" if prefix == "M" else prefix


def _chunk_ends(prev: str, prev_type: str, cur: str, cur_type: str) -> bool:
    """conlleval's endOfChunk: does the chunk open before this token close here?"""
    if prev in ("E", "S"):
        return True
    if prev in ("B", "I") and cur in ("B", "S", "O"):
        return True
    return prev != "O" and prev_type != cur_type


def _chunk_starts(prev: str, prev_type: str, cur: str, cur_type: str) -> bool:
    """conlleval's startOfChunk: does a chunk open at this token?"""
    if cur in ("B", "S"):
        return True
    if prev in ("E", "S", "O") and cur in ("E", "I"):
        return True
    return cur != "O" and prev_type != cur_type


def tags_to_spans(tags: Sequence[str], scheme: str) -> list[Span]:
    """The entities of one sentence as token spans ``[start, end)``, read the way conlleval reads them.

    Ill-formed sequences are read leniently: an ``I-X`` after ``O`` or after another type starts an
    entity, a type change starts a new one, an unclosed BIOES entity ends where the next one starts.
    Raises ValueError on a malformed tag.
    """
    _check_scheme(scheme)
    spans: list[Span] = []
    prev, prev_type, start = "O", "", -1
    for i, tag in enumerate([*tags, "O"]):
        prefix, kind = split_tag(tag)
        cur = _conll_prefix(prefix)
        if start >= 0 and _chunk_ends(prev, prev_type, cur, kind):
            spans.append(Span(start, i, prev_type))
            start = -1
        if _chunk_starts(prev, prev_type, cur, kind):
            start = i
        prev, prev_type = cur, kind
    return spans


def _sorted_checked(spans: Iterable[Span], n: int) -> list[Span]:
    ordered = sorted(spans, key=lambda s: (s.start, s.end))
    last_end = 0
    for span in ordered:
        if not 0 <= span.start < span.end <= n:
            raise ValueError(f"span {span} lies outside a sentence of {n} tokens or is empty")
        if span.start < last_end:
            raise ValueError(f"span {span} overlaps the span before it")
        last_end = span.end
    return ordered


def spans_to_tags(spans: Iterable[Span], n: int, scheme: str) -> list[str]:
    """Tags for a sentence of ``n`` tokens holding the given non-overlapping token spans.

    IO cannot separate two adjacent entities of one type, so they come back from ``tags_to_spans`` as
    one; every other scheme keeps them apart (IOB1 marks the second with ``B-``).
    """
    _check_scheme(scheme)
    tags = ["O"] * n
    inside = "M" if scheme == "bmes" else "I"
    prev_end, prev_label = -1, ""
    for span in _sorted_checked(spans, n):
        label, length = span.label, span.end - span.start
        tags[span.start : span.end] = [f"{inside}-{label}"] * length
        if scheme == "iob2" or (scheme == "iob1" and prev_end == span.start and prev_label == label):
            tags[span.start] = f"B-{label}"
        elif scheme in ("bioes", "bmes"):
            if length == 1:
                tags[span.start] = f"S-{label}"
            else:
                tags[span.start], tags[span.end - 1] = f"B-{label}", f"E-{label}"
        prev_end, prev_label = span.end, label
    return tags


def convert_tags(tags: Sequence[str], src: str, dst: str) -> list[str]:
    """Re-write one sentence's tags from scheme ``src`` to ``dst`` (through its spans)."""
    return spans_to_tags(tags_to_spans(tags, src), len(tags), dst)


def repair_tags(tags: Sequence[str], scheme: str) -> list[str]:
    """The conlleval reading of a possibly ill-formed sequence, written out as a valid one."""
    return convert_tags(tags, scheme, scheme)


def detect_scheme(tag_sequences: Iterable[Sequence[str]]) -> str:
    """Guess the scheme of a corpus from the prefixes it uses, by these rules in order:

    1. any ``M-`` -> ``"bmes"``; 2. any ``E-`` or ``S-`` -> ``"bioes"``;
    3. no entity tags at all -> ``"iob2"`` (nothing to tell the schemes apart; the common default);
    4. no ``B-`` -> ``"io"``;
    5. ``B-`` appears only right after an entity of the same type and some entity starts with ``I-``
       -> ``"iob1"`` (its ``B-`` only separates adjacent entities); 6. otherwise, when at least as
       many entities start with ``B-`` as with ``I-`` -> ``"iob2"`` (a few ``I-`` starts are treated
       as annotation noise), else ``"iob1"``.
    Raises ValueError on a malformed tag.
    """
    prefixes: set[str] = set()
    b_starts = i_starts = b_after_same = 0
    for tags in tag_sequences:
        prev, prev_type = "O", ""
        for tag in tags:
            prefix, kind = split_tag(tag)
            prefixes.add(prefix)
            continues = prev in ("B", "I") and prev_type == kind
            if prefix == "B":
                b_starts += 1
                b_after_same += continues
            elif prefix == "I" and not continues:
                i_starts += 1
            prev, prev_type = prefix, kind
    if "M" in prefixes:
        return "bmes"
    if prefixes & {"E", "S"}:
        return "bioes"
    if not prefixes - {"O"}:
        return "iob2"
    if "B" not in prefixes:
        return "io"
    if b_after_same == b_starts and i_starts > 0:
        return "iob1"
    return "iob2" if b_starts >= i_starts else "iob1"


def _foreign_prefix(tag: str, prefix: str, scheme: str) -> str | None:
    if prefix in _PREFIXES[scheme]:
        return None
    allowed = ", ".join(p if p == "O" else f"{p}-" for p in _PREFIXES[scheme])
    return f"{tag} is not allowed in {scheme}, which uses {allowed}"


def _bad_follow(tag: str, prefix: str, kind: str, prev_tag: str, scheme: str) -> str | None:
    """Message when ``tag`` may not follow ``prev_tag`` in ``scheme`` (None when it may)."""
    inside = "M" if scheme == "bmes" else "I"
    prev_prefix, prev_kind = split_tag(prev_tag) if prev_tag else ("O", "")
    continues = prev_prefix in ("B", inside) and prev_kind == kind
    if scheme == "iob2" and prefix == "I" and not continues:
        return f"{tag} follows {prev_tag or 'the sentence start'}; iob2 entities start with B-"
    if scheme in ("bioes", "bmes") and prefix in (inside, "E") and not continues:
        return f"{tag} follows {prev_tag or 'the sentence start'}; {scheme} entities start with B- or S-"
    return None


def _bad_next(tag: str, prefix: str, kind: str, next_tag: str, scheme: str) -> str | None:
    """Message when an open BIOES/BMES entity is not continued by ``next_tag`` (None when it is)."""
    inside = "M" if scheme == "bmes" else "I"
    if scheme not in ("bioes", "bmes") or prefix not in ("B", inside):
        return None
    next_prefix, next_kind = split_tag(next_tag) if next_tag else ("O", "")
    if next_prefix in (inside, "E") and next_kind == kind:
        return None
    where = f"is followed by {next_tag}" if next_tag else "ends the sentence"
    return f"{tag} {where}; a {scheme} entity of several tokens ends with E- (one token: S-)"


def invalid_transitions(tags: Sequence[str], scheme: str) -> list[tuple[int, str]]:
    """Token positions whose tag ``scheme`` forbids, with a message for each (at most one per token).

    IO and IOB1 forbid only foreign prefixes (``B-`` in IO, ``E-`` in IOB1); IOB2 also forbids an
    ``I-X`` that does not continue ``B-X``/``I-X``; BIOES/BMES also forbid an inside or end tag that
    does not continue its entity, and a begin or inside tag whose entity is not continued.
    Raises ValueError on a malformed tag.
    """
    _check_scheme(scheme)
    found: list[tuple[int, str]] = []
    for i, tag in enumerate(tags):
        prefix, kind = split_tag(tag)
        prev_tag = tags[i - 1] if i else ""
        next_tag = tags[i + 1] if i + 1 < len(tags) else ""
        message = (
            _foreign_prefix(tag, prefix, scheme)
            or _bad_follow(tag, prefix, kind, prev_tag, scheme)
            or _bad_next(tag, prefix, kind, next_tag, scheme)
        )
        if message:
            found.append((i, message))
    return found


# seqeval's strict-mode classes (seqeval/scheme.py) for the schemes it knows; IO has none.
_SEQEVAL_SCHEME = {"iob2": "IOB2", "bioes": "IOBES", "bmes": "IOBES", "io": None}


def to_seqeval(tags: Sequence[str], scheme: str) -> tuple[list[str], str | None]:
    """Tags in a form seqeval accepts, and the name of the seqeval scheme class for strict mode.

    The name is None for IO, which seqeval only scores in its default (conlleval-like) mode. BMES is
    handed over as IOBES (``M-`` becomes ``I-``), IOB1 as its spans written in IOB2. The caller maps
    the name to ``seqeval.scheme``'s class.
    """
    _check_scheme(scheme)
    for tag in tags:
        split_tag(tag)
    if scheme == "bmes":
        # rename only: converting via spans would repair ill-formed predictions and score BMES leniently
        return [f"I-{t[2:]}" if t.startswith("M-") else t for t in tags], "IOBES"
    if scheme == "iob1":
        # seqeval's strict IOB1 lets no B- after O or after another type start an entity (gold entities
        # vanish from the support, wrong predicted ones are not counted), and reads I- I- against B- I-
        # as different spans. IOB1 has no ill-formed sequences; its reading (conlleval's) written as
        # IOB2 is scored strictly instead.
        return convert_tags(tags, "iob1", "iob2"), "IOB2"
    return list(tags), _SEQEVAL_SCHEME[scheme]
