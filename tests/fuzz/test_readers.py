"""Fuzz every reader with hostile files: each must return well-formed records or raise bertkit's own
error naming the file (and, for a ``BadInputError``, a line inside it), never another exception, and
finish every input within a time bound.

``BERTKIT_FUZZ_EXAMPLES`` sets the inputs per test: small by default (CI), large for ``make fuzz``. Each
reader is fuzzed by its own structured test and by the shared raw-bytes test, so it gets twice that.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from fuzz.hostile import JSON_VALUES, NASTY_TEXT, RAW_BYTES, TEXT, hostile_file, json_line
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bertkit.data import tagschemes
from bertkit.data.readers import TokenCorpus, read_token_file
from bertkit.data.readers.relations import SEMEVAL_TAGS, read_relation_jsonl, read_semeval
from bertkit.data.readers.seq2seq import read_seq2seq
from bertkit.data.readers.squad import read_qa_file
from bertkit.data.readers.tabular import LABEL_MODES, read_table
from bertkit.errors import BadInputError, BertkitError
from bertkit.pretrain.corpus import DOCUMENT_MODES, CorpusOptions, CorpusStats, read_documents
from bertkit.records import QaExample, RelationExample, Seq2SeqExample, TextExample, TokenExample

EXAMPLES = int(os.environ.get("BERTKIT_FUZZ_EXAMPLES", "60"))
# Hypothesis's deadline measures wall time, which a shared CI machine makes noisy: the bound below
# measures CPU time instead, and a wall-clock alarm stops a reader that hangs.
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)
# per reader call: a guard against quadratic or runaway parsing, not a speed claim; inputs reach 1 MB
# (one paragraph of 35k lines took the corpus reader 2.16 s of CPU on an AVX2 AMD EPYC while its
# unwrapping was quadratic; linear since, real text reads at ~0.14 s per MB)
CPU_BOUND_S = 6.0
HANG_S = 30.0
POLICIES = ("error", "warn")


class ReaderHang(Exception):
    """A reader ran past the wall-clock alarm."""


@contextmanager
def wall_bound(seconds: float) -> Iterator[None]:
    def on_alarm(signum: int, frame: Any) -> None:
        raise ReaderHang(f"the reader ran for more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def file_lines(data: bytes) -> int:
    """The lines of a file as ``read_lines`` counts them (split at LF only)."""
    return data.count(b"\n") + (bool(data) and not data.endswith(b"\n"))


def universal_lines(data: bytes) -> int:
    """The lines of a file as ``open(newline=None)`` counts them (split at LF, CRLF and CR)."""
    return len(re.findall(rb"\r\n|\r|\n", data)) + (bool(data) and not data.endswith((b"\n", b"\r")))


@pytest.fixture(scope="session")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def write_input(tally: Any, reader: str, path: Path, data: bytes) -> Path:
    """Write one input; call it once every draw is made, so a draw hypothesis abandons is not counted."""
    path.write_bytes(data)
    tally.add_input(reader, len(data))
    return path


def fuzz_call(
    tally: Any, reader: str, path: Path, data: bytes, call: Callable[[], Any], check: Callable[[Any], None]
) -> None:
    """Call a reader on ``path``: it returns records that pass ``check``, or raises a BertkitError that
    names the file (a BadInputError at a line of it); within the CPU bound either way."""
    lines = universal_lines(data) if reader == "corpus" else file_lines(data)
    started = time.process_time()
    result = error = None
    try:
        with wall_bound(HANG_S):
            result = call()
    except BertkitError as err:
        error = err
    cpu = time.process_time() - started
    tally.add_call(reader, cpu, returned=error is None)
    assert cpu < CPU_BOUND_S, f"{reader} took {cpu:.2f} s of CPU on {len(data)} bytes"
    if isinstance(error, BadInputError):
        assert error.path == str(path), error
        assert 0 <= error.line <= lines, f"{error} (the file has {lines} lines)"
        assert str(error).startswith(f"{path}:" if error.line else f"{path}: "), error
    elif error is not None:
        assert str(path) in str(error), error
    else:
        check_lines(result, lines)
        check(result)


def check_lines(result: Any, lines: int) -> None:
    """Every record points at a line of the file (SQuAD JSON questions may say 0: unknown)."""
    if isinstance(result, TokenCorpus):
        assert all(1 <= n <= lines for ex in result.examples for n in ex.lines)
        return
    for record in result:
        low = 0 if isinstance(record, QaExample) else 1
        assert low <= record.line <= lines, (record, lines)


# -- token readers ----------------------------------------------------------------------------------

TOKENS = st.one_of(
    st.sampled_from(["John", "Paris", "我0", "e12", "30", "-DOCSTART-", ",", "a b", "B-PER", "\u3000"]), TEXT
)
TAGS = st.sampled_from(
    ["O", "B-PER", "I-PER", "E-PER", "S-PER", "M-PER", "B-LOC", "I-LOC", "B-", "I", "X-PER", "O-PER"]
    + ["b-per", "B-PER-X", "", "B-人"]
)
TAG_SETS = st.sampled_from([None, ["O", "B-PER", "I-PER"], ["B-LOC"], []])


def check_tokens(corpus: Any) -> None:
    assert isinstance(corpus, TokenCorpus) and corpus.scheme in tagschemes.SCHEMES
    assert corpus.examples
    for ex in corpus.examples:
        assert isinstance(ex, TokenExample) and all(isinstance(t, str) for t in ex.tokens)
        assert len(ex.lines) == len(ex.tokens)
        if ex.tags is not None:
            assert len(ex.tags) == len(ex.tokens)
            assert not tagschemes.invalid_transitions(ex.tags, corpus.scheme)
        if ex.offsets is not None:
            assert all(ex.text[s:e] == token for token, (s, e) in zip(ex.tokens, ex.offsets))


@st.composite
def conll_lines(draw: st.DrawFn) -> list[str]:
    width, sep = draw(st.integers(1, 4)), draw(st.sampled_from(["\t", " ", "  "]))
    lines = []
    for _ in range(draw(st.integers(0, 30))):
        kind = draw(st.sampled_from(["token"] * 6 + ["blank", "docstart"]))
        if kind == "blank":
            lines.append(draw(st.sampled_from(["", " ", "\t"])))
        elif kind == "docstart":
            lines.append(draw(st.sampled_from(["-DOCSTART- -X- O O", "-DOCSTART-", " -DOCSTART-\tO"])))
        else:
            cells = [draw(TOKENS) for _ in range(width - 1)] + [draw(TAGS) if width > 1 else draw(TOKENS)]
            lines.append(sep.join(cells))
    return lines


@st.composite
def token_json_lines(draw: st.DrawFn) -> list[str]:
    lines = []
    for _ in range(draw(st.integers(0, 12))):
        tokens = draw(st.lists(TOKENS, max_size=6))
        record: dict[str, Any] = {"tokens": tokens}
        if draw(st.integers(0, 3)):
            record["tags"] = [draw(TAGS) for _ in tokens]
        lines.append(draw(json_line(record)) if draw(st.integers(0, 7)) else "")
    return lines


SPAN_TEXTS = st.one_of(
    st.sampled_from(
        ["John Smith lives in New York.", "浙商银行企业信贷部叶老桂博士", "CPL2011 vsac米兰", " a  b "]
    ),
    NASTY_TEXT,
)


@st.composite
def span_json_lines(draw: st.DrawFn) -> list[str]:
    lines = []
    for _ in range(draw(st.integers(0, 10))):
        text = draw(SPAN_TEXTS)
        entities = []
        for _ in range(draw(st.integers(0, 3))):
            start, end = draw(st.integers(-1, len(text) + 1)), draw(st.integers(-1, len(text) + 2))
            entities.append((start, end, draw(st.sampled_from(["PER", "LOC", "name", "", "B-X", "a b"]))))
        shape = draw(st.sampled_from(["cluener", "generic", "none"]))
        record: dict[str, Any] = {"text": text}
        if shape == "cluener":
            label: dict[str, dict[str, list]] = {}
            for start, end, kind in entities:
                label.setdefault(kind, {}).setdefault(text[start:end], []).append([start, end - 1])
            record["label"] = label
        elif shape == "generic":
            with_text = draw(st.booleans())
            record["entities"] = [
                {"start": s, "end": e, "label": k, **({"text": text[s:e]} if with_text else {})}
                for s, e, k in entities
            ]
        lines.append(draw(json_line(record)))
    return lines


TEXT_LINES = st.lists(
    st.one_of(
        NASTY_TEXT,
        st.sampled_from(
            ["Hello, world!", "我爱北京天安门。", "e.g. U.S. 3.14", "", "\t", "a\u200bb", "\x00"]
        ),
    ),
    max_size=20,
)
TOKEN_FORMATS = {
    "conll": (conll_lines(), ("conll", "auto"), (".conll", ".txt", ".tsv")),
    "jsonl": (token_json_lines(), ("jsonl", "auto"), (".jsonl", ".json")),
    "spans": (span_json_lines(), ("spans", "auto"), (".jsonl", ".json")),
    "text": (TEXT_LINES, ("text", "auto"), (".txt",)),
}


@pytest.mark.parametrize("reader", sorted(TOKEN_FORMATS))
@FUZZ
@given(st.data())
def test_token_readers(tally, folder, reader, data):
    lines, formats, suffixes = TOKEN_FORMATS[reader]
    raw = data.draw(hostile_file(lines), label="file")
    path = folder / f"tokens{data.draw(st.sampled_from(suffixes))}"
    options = {
        "format": data.draw(st.sampled_from(formats)),
        "scheme": data.draw(st.sampled_from(("auto", *tagschemes.SCHEMES))),
        "labels": data.draw(TAG_SETS),
        "token_column": data.draw(st.sampled_from([0, 0, 1, -1, 3])),
        "strip_position_suffix": data.draw(st.booleans()),
    }
    tag_column = data.draw(st.sampled_from([-1, -1, 1, 5]))
    write_input(tally, reader, path, raw)
    for policy in POLICIES:
        for column in (tag_column, None):
            call = partial(read_token_file, path, **options, tag_column=column, on_bad_line=policy)
            fuzz_call(tally, reader, path, raw, call, check_tokens)


# -- tables -----------------------------------------------------------------------------------------

CELLS = st.one_of(
    st.sampled_from(
        ["good movie", "pos", "neg", "1.5", "nan", "inf", "", " ", "a,b", 'say "hi"', '"', "x|y"]
    ),
    TEXT,
)
LABEL_VALUES = st.one_of(CELLS, st.integers(), st.floats(), st.lists(CELLS, max_size=3), JSON_VALUES)


@st.composite
def table_lines(draw: st.DrawFn) -> list[str]:
    shape = draw(st.sampled_from(["tsv", "csv", "jsonl"]))
    rows = [[draw(CELLS), draw(CELLS), draw(LABEL_VALUES)] for _ in range(draw(st.integers(0, 12)))]
    if shape == "jsonl":
        return [draw(json_line({"text": t, "pair": p, "label": label})) for t, p, label in rows]
    header = draw(st.sampled_from([["sentence", "pair", "label"], ["text", "text", "label"], ["text"], []]))
    rows = [header, *rows] if header else rows
    if shape == "tsv":
        return ["\t".join(map(str, row)) for row in rows]
    out = io.StringIO()
    quoting = draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL, csv.QUOTE_NONNUMERIC]))
    csv.writer(out, quoting=quoting, lineterminator="\n").writerows([map(str, row) for row in rows])
    return out.getvalue().split("\n")


def check_table(mode: str, labelled: bool) -> Callable[[Any], None]:
    def check(examples: Any) -> None:
        assert isinstance(examples, list)
        for ex in examples:
            # unlabelled (prediction input) keeps rows with an empty text: each row gets a prediction
            assert isinstance(ex, TextExample) and (ex.text or not labelled) and ex.text == ex.text.strip()
            assert ex.pair is None or ((ex.pair or not labelled) and ex.pair == ex.pair.strip())
            if ex.label is None:
                continue
            if mode == "single":
                assert isinstance(ex.label, str) and ex.label
            elif mode == "multi":
                assert isinstance(ex.label, list) and ex.label == sorted(set(ex.label))
            else:
                assert isinstance(ex.label, float) and ex.label == ex.label

    return check


@FUZZ
@given(st.data())
def test_table_reader(tally, folder, data):
    raw = data.draw(hostile_file(table_lines()), label="file")
    suffix = data.draw(st.sampled_from([".tsv", ".csv", ".jsonl", ".json", ".txt", ".tab"]))
    path = folder / f"table{suffix}"
    mode = data.draw(st.sampled_from(LABEL_MODES))
    options = {
        "text_column": data.draw(st.sampled_from(["sentence", "text", 0, "0", -1, 7])),
        "pair_column": data.draw(st.sampled_from([None, None, "pair", 1])),
        "label_column": data.draw(st.sampled_from([None, "label", "label", 2, -1, "missing"])),
        "header": data.draw(st.sampled_from(["auto", True, False])),
        "delimiter": data.draw(st.sampled_from([None, None, "\t", ",", ";"])),
        "label_mode": mode,
        "label_delimiter": data.draw(st.sampled_from([",", "|"])),
        "labels": data.draw(st.sampled_from([None, ["pos", "neg"], ["1.5"]])),
    }
    write_input(tally, "tabular", path, raw)
    for policy in POLICIES:
        for labelled in (True, False):
            call = partial(read_table, path, **options, on_bad_line=policy, require_labels=labelled)
            fuzz_call(tally, "tabular", path, raw, call, check_table(mode, labelled))


# -- question answering -----------------------------------------------------------------------------

QA_IDS = st.one_of(st.sampled_from(["1", "2", "q", 1, 2, True, None, [1]]), TEXT)
CONTEXTS = st.one_of(
    st.sampled_from(["Paris is in France.", "aaaa aaaa", "北京是中国的首都。", ""]), NASTY_TEXT
)


@st.composite
def qa_record(draw: st.DrawFn, context: str) -> dict[str, Any]:
    answers = []
    for _ in range(draw(st.integers(0, 2))):
        start = draw(st.integers(-1, len(context) + 1))
        answers.append((context[max(start, 0) : draw(st.integers(max(start, 0), len(context) + 1))], start))
    shape = draw(st.sampled_from(["list", "columns", "texts"]))
    if shape == "list":
        given: Any = [{"text": t, "answer_start": s} for t, s in answers]
    elif shape == "columns":
        given = {"text": [t for t, _ in answers], "answer_start": [s for _, s in answers]}
    else:
        given = [t for t, _ in answers]
    record = {"id": draw(QA_IDS), "question": draw(TEXT), "answers": given}
    if draw(st.integers(0, 3)) == 0:
        record["is_impossible"] = draw(st.booleans())
    return record


@st.composite
def squad_lines(draw: st.DrawFn) -> list[str]:
    if draw(st.booleans()):  # JSON lines of questions
        lines = []
        for _ in range(draw(st.integers(0, 8))):
            context = draw(CONTEXTS)
            lines.append(draw(json_line({**draw(qa_record(context)), "context": context})))
        return lines
    articles = []
    for _ in range(draw(st.integers(0, 2))):
        paragraphs = []
        for _ in range(draw(st.integers(0, 2))):
            context = draw(CONTEXTS)
            qas = [draw(qa_record(context)) for _ in range(draw(st.integers(0, 3)))]
            paragraphs.append({"context": context, "qas": qas})
        articles.append({"title": draw(TEXT), "paragraphs": paragraphs})
    document: Any = {"version": "v2.0", "data": articles}
    indent = draw(st.sampled_from([None, 1, 2]))
    text = draw(json_line(document)) if indent is None else json.dumps(document, indent=indent)
    return text.split("\n")


def check_qa(labelled: bool) -> Callable[[Any], None]:
    def check(examples: Any) -> None:
        assert isinstance(examples, list) and examples
        assert len({ex.id for ex in examples}) == len(examples)
        for ex in examples:
            assert isinstance(ex, QaExample) and isinstance(ex.question, str) and isinstance(ex.context, str)
            assert labelled or ex.answers is None
            for answer in ex.placed:
                assert 0 <= answer.start <= answer.end <= len(ex.context)
                assert ex.context[answer.start : answer.end] in (answer.text, answer.text.strip())

    return check


@FUZZ
@given(st.data())
def test_qa_reader(tally, folder, data):
    raw = data.draw(hostile_file(squad_lines()), label="file")
    path = folder / f"qa{data.draw(st.sampled_from(['.json', '.jsonl']))}"
    fmt = data.draw(st.sampled_from(["auto", "auto", "squad", "jsonl"]))
    write_input(tally, "squad", path, raw)
    for policy in POLICIES:
        for labelled in (True, False):
            call = partial(read_qa_file, path, format=fmt, labelled=labelled, on_bad_line=policy)
            fuzz_call(tally, "squad", path, raw, call, check_qa(labelled))


# -- relations --------------------------------------------------------------------------------------

RELATION_LABELS = st.sampled_from(
    ["Other", "Cause-Effect(e1,e2)", "Other", "Cause-Effect(e2,e1)", "", " x ", "8001"]
)
LABEL_SETS = st.sampled_from([None, ["Other", "Cause-Effect(e1,e2)"]])
WORDS = st.one_of(st.sampled_from(["the", "cat", "sat", "on", "mat", "中", '"', "", "<e1>", "\t"]), TEXT)


@st.composite
def two_spans(draw: st.DrawFn, length: int) -> tuple[int, int, int, int]:
    """Head and tail ``[start, end)`` over ``length`` items: mostly valid (in order, apart), sometimes any."""
    if length >= 2 and draw(st.integers(0, 4)):
        cuts = sorted(draw(st.lists(st.integers(0, length), min_size=4, max_size=4)))
        a, b, c, d = cuts[0], max(cuts[1], cuts[0] + 1), cuts[2], cuts[3]
        c = max(c, b)
        d = max(d, c + 1)
        if d <= length:
            return (a, b, c, d) if draw(st.booleans()) else (c, d, a, b)
    return tuple(draw(st.integers(-1, length + 1)) for _ in range(4))


@st.composite
def semeval_lines(draw: st.DrawFn) -> list[str]:
    lines = []
    for number in range(draw(st.integers(0, 6))):
        words = draw(st.lists(WORDS, min_size=2, max_size=8))
        head_start, head_end, tail_start, tail_end = draw(two_spans(len(words)))
        marks = {}
        for at, tag in ((head_end, "</e1>"), (head_start, "<e1>"), (tail_end, "</e2>"), (tail_start, "<e2>")):
            marks.setdefault(at, []).append(tag)
        pieces = []
        for at in range(len(words) + 1):
            pieces += sorted(marks.get(at, []), key=lambda tag: not tag.startswith("</"))
            pieces += words[at : at + 1]
        if draw(st.integers(0, 5)) == 0:  # a tag lost, doubled or moved
            pieces.insert(
                draw(st.integers(0, len(pieces))), pieces.pop(draw(st.integers(0, len(pieces) - 1)))
            )
            pieces.insert(draw(st.integers(0, len(pieces))), draw(st.sampled_from(SEMEVAL_TAGS)))
        sentence = draw(st.sampled_from([" ", " ", ""])).join(pieces)
        ident = draw(st.sampled_from([str(8001 + number), str(8001 + number), "x", "", "1 2"]))
        lines.append(f'{ident}\t"{sentence}"' if draw(st.integers(0, 7)) else sentence)
        if draw(st.integers(0, 7)):
            lines.append(draw(RELATION_LABELS))
        if draw(st.booleans()):
            lines.append("Comment: " + draw(TEXT))
        lines.append("")
    return lines


@st.composite
def relation_json_lines(draw: st.DrawFn) -> list[str]:
    lines = []
    for _ in range(draw(st.integers(0, 8))):
        text = draw(SPAN_TEXTS)
        record: dict[str, Any] = {"text": text, "label": draw(RELATION_LABELS), "id": draw(QA_IDS)}
        spans = draw(two_spans(len(text)))
        for key, (start, end) in (("head", spans[:2]), ("tail", spans[2:])):
            record[key] = {"start": start, "end": end}
            if draw(st.booleans()):
                record[key]["type"] = draw(st.sampled_from(["PER", "ORG", ""]))
            if draw(st.booleans()):
                record[key]["text"] = text[start:end]
        lines.append(draw(json_line(record)))
    return lines


def check_relations(labelled: bool) -> Callable[[Any], None]:
    def check(examples: Any) -> None:
        assert isinstance(examples, list) and examples
        for ex in examples:
            assert isinstance(ex, RelationExample)
            for arg in (ex.head, ex.tail):
                assert 0 <= arg.start < arg.end <= len(ex.text)
            assert ex.head.end <= ex.tail.start or ex.tail.end <= ex.head.start
            assert (ex.label is not None) == labelled

    return check


RELATION_READERS = {
    "semeval": (semeval_lines(), read_semeval, (".txt", ".TXT")),
    "relation_jsonl": (relation_json_lines(), read_relation_jsonl, (".jsonl",)),
}


@pytest.mark.parametrize("reader", sorted(RELATION_READERS))
@FUZZ
@given(st.data())
def test_relation_readers(tally, folder, reader, data):
    lines, read, suffixes = RELATION_READERS[reader]
    raw = data.draw(hostile_file(lines), label="file")
    path = folder / f"relations{data.draw(st.sampled_from(suffixes))}"
    labels = data.draw(LABEL_SETS)
    write_input(tally, reader, path, raw)
    for policy in POLICIES:
        for labelled in (True, False):
            call = partial(read, path, labelled=labelled, labels=labels, on_bad_line=policy)
            fuzz_call(tally, reader, path, raw, call, check_relations(labelled))


# -- sequence to sequence ---------------------------------------------------------------------------

S2S_TEXTS = st.one_of(
    TEXT, st.lists(TEXT, max_size=3), st.sampled_from(["", " ", "中文。", "a\tb"]), JSON_VALUES
)


@st.composite
def seq2seq_lines(draw: st.DrawFn) -> list[str]:
    shape = draw(st.sampled_from(["jsonl", "table", "kdconv"]))
    if shape == "table":
        rows = [[draw(TEXT) for _ in range(draw(st.integers(0, 4)))] for _ in range(draw(st.integers(0, 8)))]
        if draw(st.booleans()):
            rows.insert(0, ["source", "target", "control"])
        sep = draw(st.sampled_from(["\t", ","]))
        return [sep.join(row) for row in rows]
    if shape == "kdconv":
        conversations = [
            {
                "name": draw(TEXT),
                "messages": [{"message": draw(S2S_TEXTS)} for _ in range(draw(st.integers(0, 4)))],
            }
            for _ in range(draw(st.integers(0, 3)))
        ]
        return json.dumps(draw(st.sampled_from([conversations, {"x": conversations}])), indent=2).split("\n")
    lines = []
    for _ in range(draw(st.integers(0, 8))):
        if draw(st.booleans()):
            record: Any = {"turns": draw(S2S_TEXTS), "id": draw(st.one_of(TEXT, st.integers()))}
        else:
            record = {"source": draw(S2S_TEXTS), "target": draw(S2S_TEXTS), "control": draw(S2S_TEXTS)}
        lines.append(draw(json_line(record)))
    return lines


def check_seq2seq(labelled: bool) -> Callable[[Any], None]:
    def check(examples: Any) -> None:
        assert isinstance(examples, list)
        for ex in examples:
            assert isinstance(ex, Seq2SeqExample) and isinstance(ex.source, str) and ex.source.strip()
            if labelled:
                assert ex.targets and all(isinstance(t, str) and t.strip() for t in ex.targets)
            assert ex.control is None or isinstance(ex.control, str)

    return check


@FUZZ
@given(st.data())
def test_seq2seq_reader(tally, folder, data):
    raw = data.draw(hostile_file(seq2seq_lines()), label="file")
    path = folder / f"pairs{data.draw(st.sampled_from(['.jsonl', '.json', '.tsv', '.csv', '.txt']))}"
    options = {
        "fmt": data.draw(st.sampled_from(["auto", "auto", "jsonl", "tsv", "csv", "kdconv"])),
        "control_field": data.draw(st.sampled_from([None, "control"])),
        "context_turns": data.draw(st.sampled_from([0, 1, 3])),
        "source_column": data.draw(st.sampled_from([0, 1, 5])),
    }
    write_input(tally, "seq2seq", path, raw)
    for policy in POLICIES:
        for labelled in (True, False):
            call = partial(read_seq2seq, path, labelled=labelled, on_bad_line=policy, **options)
            fuzz_call(tally, "seq2seq", path, raw, call, check_seq2seq(labelled))


# -- pretraining corpus -----------------------------------------------------------------------------

CORPUS_LINES = st.lists(
    st.one_of(
        st.sampled_from(
            ["Mr. Smith went home. He slept.", "我爱北京。天安门很大！", "e.g. 3.14 is pi...", ""]
        ),
        st.sampled_from([" = Heading = ", " = = Sub = = ", "*** START OF THE BOOK ***", "*** END OF IT"]),
        st.sampled_from(["# note", "_Italics._ Then", "Great!很好", "“Quote.” Next"]),
        NASTY_TEXT,
    ),
    max_size=30,
)


def check_documents(min_chars: int) -> Callable[[Any], None]:
    def check(documents: Any) -> None:
        assert isinstance(documents, list) and documents
        for doc in documents:
            assert doc.sentences and all(s == s.strip() and len(s) >= min_chars for s in doc.sentences)

    return check


def read_corpus(path: Path, options: CorpusOptions) -> list:
    stats = CorpusStats()
    documents = list(read_documents([path], options, stats))
    assert stats.documents == len(documents)
    return documents


@FUZZ
@given(st.data())
def test_corpus_reader(tally, folder, data):
    raw = data.draw(hostile_file(CORPUS_LINES), label="file")
    suffix = data.draw(st.sampled_from([".txt", ".tokens"]))
    path = folder / f"corpus{suffix}"
    options = {
        "documents": data.draw(st.sampled_from(DOCUMENT_MODES)),
        "doc_start": data.draw(st.sampled_from([None, r"^ = [^=].* = $"])),
        "keep_from": data.draw(st.sampled_from([None, None, r"^\*\*\* ?START OF"])),
        "keep_until": data.draw(st.sampled_from([None, r"^\*\*\* ?END OF"])),
        "drop_lines": data.draw(st.sampled_from([None, r"^#"])),
        "min_sentence_chars": data.draw(st.sampled_from([1, 1, 3, 40])),
    }
    write_input(tally, "corpus", path, raw)
    for policy in POLICIES:
        call = partial(read_corpus, path, CorpusOptions(**options, on_bad_line=policy))
        fuzz_call(tally, "corpus", path, raw, call, check_documents(options["min_sentence_chars"]))


# -- every reader on raw bytes ----------------------------------------------------------------------


def every_reader(policy: str) -> dict[str, tuple[Callable[[Path], Any], Callable[[Any], None]]]:
    return {
        "conll": (lambda p: read_token_file(p, format="conll", on_bad_line=policy), check_tokens),
        "jsonl": (lambda p: read_token_file(p, format="jsonl", on_bad_line=policy), check_tokens),
        "spans": (lambda p: read_token_file(p, format="spans", on_bad_line=policy), check_tokens),
        "text": (lambda p: read_token_file(p, format="auto", on_bad_line=policy), check_tokens),
        "tabular": (
            lambda p: read_table(p, text_column=0, label_column=1, on_bad_line=policy),
            check_table("single", True),
        ),
        "squad": (lambda p: read_qa_file(p, on_bad_line=policy), check_qa(True)),
        "semeval": (lambda p: read_semeval(p, on_bad_line=policy), check_relations(True)),
        "relation_jsonl": (lambda p: read_relation_jsonl(p, on_bad_line=policy), check_relations(True)),
        "corpus": (lambda p: read_corpus(p, CorpusOptions(on_bad_line=policy)), check_documents(1)),
        "seq2seq": (lambda p: read_seq2seq(p, on_bad_line=policy), check_seq2seq(True)),
    }


@FUZZ
@given(raw=RAW_BYTES, suffix=st.sampled_from([".txt", ".jsonl", ".json", ".tsv", ".csv", ".conll"]))
def test_every_reader_on_raw_bytes(tally, folder, raw, suffix):
    path = folder / f"raw{suffix}"
    path.write_bytes(raw)
    for reader in every_reader("error"):
        tally.add_input(reader, len(raw))
    for policy in POLICIES:
        for reader, (read, check) in every_reader(policy).items():
            fuzz_call(tally, reader, path, raw, partial(read, path), check)


# -- a megabyte in well under the bound -------------------------------------------------------------

MEGABYTE = 1 << 20
MEGABYTE_FILES = {
    "one long line": lambda unit: unit.rstrip("\n") * (MEGABYTE // len(unit.encode())) + "\n",
    "many lines": lambda unit: unit * (MEGABYTE // len(unit.encode())),
    "deep JSON": lambda unit: "[" * MEGABYTE + "\n",
}
UNITS = {
    "conll": "John\tB-PER\n",
    "jsonl": '{"tokens": ["a", "b"], "tags": ["B-X", "I-X"]}\n',
    "spans": '{"text": "中国 a", "label": {"LOC": {"中国": [[0, 1]]}}}\n',
    "text": "Hello, world! 我爱北京。\n",
    "tabular": "good movie\tpos\n",
    "squad": '{"id": "1", "question": "q?", "context": "aaaa", "answers": ["a"]}\n',
    "semeval": '1\t"<e1>a</e1> b <e2>c</e2>"\nOther\n\n',
    "relation_jsonl": (
        '{"text": "ab", "head": {"start": 0, "end": 1}, "tail": {"start": 1, "end": 2}, "label": "R"}\n'
    ),
    "corpus": "Mr. Smith went home. He slept.\n\n",
    "seq2seq": '{"source": "a long abstract", "target": ["a tldr", "another"]}\n',
}


@pytest.mark.parametrize("shape", sorted(MEGABYTE_FILES))
@pytest.mark.parametrize("reader", sorted(UNITS))
def test_a_megabyte_in_time(tally, folder, reader, shape):
    raw = MEGABYTE_FILES[shape](UNITS[reader]).encode()
    path = write_input(tally, reader, folder / f"megabyte-{reader}.txt", raw)
    read, check = every_reader("warn")[reader]
    fuzz_call(tally, reader, path, raw, partial(read, path), check)


# -- what fuzzing found: each once raised something other than a BertkitError ----------------------

DEEP = "[" * 10_000 + "]" * 10_000
FOUND = {
    "deep JSON line (RecursionError)": ("jsonl", ".jsonl", f'{{"tokens": ["a"]}}\n{DEEP}\n'),
    "deep JSON sniffed (RecursionError)": ("text", ".jsonl", DEEP + "\n"),
    "deep SQuAD document (RecursionError)": ("squad", ".json", '{"data": ' + DEEP + "}"),
    "deep table row (RecursionError)": ("tabular", ".jsonl", DEEP + "\n"),
    "deep relation (RecursionError)": ("relation_jsonl", ".jsonl", DEEP + "\n"),
    "5000-digit number (ValueError)": ("jsonl", ".jsonl", '{"tokens": ' + "1" * 5000 + "}\n"),
    "CLUENER positions not a list (TypeError)": (
        "spans",
        ".jsonl",
        '{"text": "abc", "label": {"X": {"a": 5}}}\n',
    ),
    "entity text not a string (TypeError)": (
        "spans",
        ".jsonl",
        '{"text": "abc", "entities": [{"start": 0, "end": 1, "label": "X", "text": [1]}]}\n',
    ),
    "answer_start not a list (TypeError)": (
        "squad",
        ".json",
        '{"data": [{"paragraphs": [{"context": "abc", "qas": [{"id": "1", "question": "q", '
        '"answers": {"text": ["a"], "answer_start": 3}}]}]}]}',
    ),
    "title nested deeply (RecursionError at the stack's edge)": (
        "squad",
        ".jsonl",
        '{"context": "abc", "question": "q", "title": ' + "[" * 900 + "]" * 900 + "}\n",
    ),
    "a long answer repeated in a long context (quadratic search)": (
        "squad",
        ".jsonl",
        json.dumps({"context": "a" * 200_000, "question": "q", "answers": ["a" * 100_000]}) + "\n",
    ),
    "10,000 ids the file escapes (quadratic search for their lines)": (
        "squad",
        ".json",
        json.dumps(
            {
                "data": [
                    {
                        "paragraphs": [
                            {"context": "x", "qas": [{"id": f"é{i}", "question": "q"} for i in range(10_000)]}
                        ]
                    }
                ]
            },
            indent=1,
        ),
    ),
    "id nested deeply (RecursionError at the stack's edge)": (
        "relation_jsonl",
        ".jsonl",
        '{"text": "ab", "head": {"start": 0, "end": 1}, "tail": {"start": 1, "end": 2}, "label": "R", '
        '"id": ' + "[" * 900 + "]" * 900 + "}\n",
    ),
}


@pytest.mark.parametrize("case", sorted(FOUND))
def test_found_by_fuzzing(tally, folder, case):
    reader, suffix, text = FOUND[case]
    raw = text.encode()
    path = write_input(tally, reader, folder / f"found{suffix}", raw)
    for policy in POLICIES:
        read, check = every_reader(policy)[reader]
        fuzz_call(tally, reader, path, raw, partial(read, path), check)
