"""Tests for pretrain/corpus.py: documents from plain-text files, streamed, and cut into sentences."""

from __future__ import annotations

import inspect
import os
from pathlib import Path

import pytest

from bertkit.errors import BadInputError, BertkitError
from bertkit.pretrain.corpus import (
    CorpusOptions,
    CorpusStats,
    corpus_files,
    corpus_fingerprint,
    one_sentence_warning,
    read_documents,
    split_sentences,
    unwrap_lines,
)

GUTENBERG = CorpusOptions(documents="file", keep_from=r"^\*\*\* ?START OF", keep_until=r"^\*\*\* ?END OF")


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, str):
        text = text.encode("utf-8")
    path.write_bytes(text)
    return path


def read(inputs, **options) -> list[tuple[list[str], int]]:
    return [(doc.sentences, doc.line) for doc in read_documents(inputs, CorpusOptions(**options))]


TEXT = "A one. A two.\n\nB one.\n\n\n \t\nC one. C two.\nC three.\n"


def test_blank_lines_end_documents(tmp_path):
    path = write(tmp_path / "c.txt", TEXT)
    assert read([path]) == [
        (["A one.", "A two."], 1),
        (["B one."], 3),
        (["C one.", "C two.", "C three."], 7),  # a whitespace-only line is blank too
    ]


def test_file_mode_gives_one_document_per_file(tmp_path):
    first = write(tmp_path / "a.txt", TEXT)
    second = write(tmp_path / "b.txt", "\n\nOnly one.\n")
    docs = list(read_documents([first, second], CorpusOptions(documents="file")))
    assert [d.sentences for d in docs] == [
        ["A one.", "A two.", "B one.", "C one.", "C two.", "C three."],
        ["Only one."],
    ]
    assert [(Path(d.path).name, d.line) for d in docs] == [("a.txt", 1), ("b.txt", 3)]


def test_line_mode_gives_one_document_per_line(tmp_path):
    path = write(tmp_path / "c.txt", "First. Second.\nThird\n\n  \nFourth!\n")
    assert read([path], documents="line") == [(["First.", "Second."], 1), (["Third"], 2), (["Fourth!"], 5)]


def test_sentences_line_keeps_each_line_as_one_sentence(tmp_path):
    # BERT's create_pretraining_data.py input: one sentence per line, blank lines between documents;
    # lines without end punctuation (tweets, titles) would otherwise be unwrapped into one "sentence"
    text = "@user so tired today\nwho is up for pizza\nMr. Smith arrived. He sat.\n\n"
    text += "两个句子。没有标点\n下一行\n"
    path = write(tmp_path / "c.txt", text)
    assert read([path], sentences="line") == [
        (["@user so tired today", "who is up for pizza", "Mr. Smith arrived. He sat."], 1),
        (["两个句子。没有标点", "下一行"], 5),
    ]
    assert read([path]) == [
        (["@user so tired today who is up for pizza Mr. Smith arrived.", "He sat."], 1),
        (["两个句子。", "没有标点下一行"], 5),
    ]
    assert read([path], sentences="line", documents="line")[0] == (["@user so tired today"], 1)
    stats = CorpusStats()
    list(read_documents([path], CorpusOptions(sentences="line", min_sentence_chars=5), stats))
    assert (stats.sentences, stats.short_sentences) == (4, 1)  # "下一行" is shorter than 5 characters


def test_doc_start_cuts_wikitext_articles_and_drop_lines_drops_headings(tmp_path):
    text = " = Alpha = \n \n Alpha is a letter . It is first .\n \n = = History = = \n \n Old .\n"
    text += " = Beta = \n \n Beta follows .\n"
    path = write(tmp_path / "wiki.txt", text)
    options = dict(documents="file", doc_start=r"^ = [^=].* = $", drop_lines=r"^ (= )+.* (= )+$")
    assert read([path], **options) == [
        (["Alpha is a letter .", "It is first .", "Old ."], 3),
        (["Beta follows ."], 10),
    ]


def test_doc_start_works_without_blank_lines(tmp_path):
    path = write(tmp_path / "c.txt", "# One\nText one.\n# Two\nText two.\n")
    assert read([path], doc_start=r"^# ") == [(["# One Text one."], 1), (["# Two Text two."], 3)]


def test_gutenberg_file_keeps_only_the_text(tmp_path):
    lines = [
        "The Project Gutenberg EBook of Test, by Nobody",
        "",
        "*** START OF THIS PROJECT GUTENBERG EBOOK TEST ***",
        "",
        "It was a dark",
        "night. Mr. Holmes",
        "smiled.",
        "",
        "The end.",
        "*** END OF THIS PROJECT GUTENBERG EBOOK TEST ***",
        "Licence. Terms of use. Donations.",
    ]
    path = write(tmp_path / "book.txt", b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n")
    docs = list(read_documents([path], GUTENBERG))
    assert [(d.sentences, d.line) for d in docs] == [
        (["It was a dark night.", "Mr. Holmes smiled.", "The end."], 5)
    ]


def test_cr_line_endings_and_no_final_newline(tmp_path):
    path = write(tmp_path / "mac.txt", b"One.\rTwo.\r\rThree.")
    assert read([path]) == [(["One.", "Two."], 1), (["Three."], 4)]


def test_keep_from_that_never_matches_is_an_error_or_counted(tmp_path):
    missing = write(tmp_path / "a.txt", "No marker here.\n")
    marked = write(tmp_path / "b.txt", "Header.\n*** START OF IT\nKept.\n")
    with pytest.raises(BadInputError, match=r"a\.txt: no line matches keep_from"):
        list(read_documents([missing, marked], GUTENBERG))
    stats = CorpusStats()
    options = CorpusOptions(documents="file", keep_from=GUTENBERG.keep_from, on_bad_line="warn")
    assert [d.sentences for d in read_documents([missing, marked], options, stats)] == [["Kept."]]
    assert (stats.files, stats.bad_lines) == (2, 1)


def test_hard_wrapped_chinese_is_unwrapped_without_spaces():
    assert unwrap_lines(["我爱北", "京。他说", "hello", "world", "，好"]) == "我爱北京。他说 hello world ，好"
    assert unwrap_lines(["한국어", "문장"]) == "한국어 문장"  # Korean puts spaces between words


def test_segmented_chinese_keeps_a_word_boundary_at_each_line_end(tmp_path):
    # People's Daily style: words separated by spaces, a paragraph over several lines
    lines = ["（ 一九九七年 十二月 三十一日 ） 中共中央", "总书记 江 泽民"]
    assert unwrap_lines(lines) == "（ 一九九七年 十二月 三十一日 ） 中共中央总书记 江 泽民"  # glued
    assert (
        unwrap_lines(lines, always_space=True) == "（ 一九九七年 十二月 三十一日 ） 中共中央 总书记 江 泽民"
    )
    path = write(tmp_path / "seg.txt", "\n".join(lines) + "\n")
    spaced = CorpusOptions(sentences="split", space_between_lines=True)
    assert next(read_documents([path], spaced)).sentences[0].endswith("中共中央 总书记 江 泽民")


@pytest.mark.parametrize(
    ("paragraph", "expected"),
    [
        (
            'Dr. J. R. Smith paid $3.50, i.e. a bargain. Was it? Yes! "Really." She laughed.',
            ["Dr. J. R. Smith paid $3.50, i.e. a bargain.", "Was it?", "Yes!", '"Really."', "She laughed."],
        ),
        (
            '"Who?" he asked. Mrs. Brown went to St. Paul etc. and home.',
            ['"Who?" he asked.', "Mrs. Brown went to St. Paul etc. and home."],
        ),
        (
            "Pi is 3.14 today. 42 is next... (Then it ended.) Right.",
            ["Pi is 3.14 today.", "42 is next...", "(Then it ended.)", "Right."],
        ),
        (
            "So do I. Then see e.g. Fig. 3 and p. 5 or U.S. law.",
            ["So do I.", "Then see e.g. Fig. 3 and p. 5 or U.S. law."],
        ),
        ("no capital. after this. node.js is fine", ["no capital. after this. node.js is fine"]),
        (
            "他说：“你好。”我们走吧！真的吗？好；走……再见",
            ["他说：“你好。”", "我们走吧！", "真的吗？", "好；", "走……", "再见"],
        ),
        ("「走吧！」她说。（完）", ["「走吧！」", "她说。", "（完）"]),
        (
            "BERT很好。It works well. 是吗？Yes!然后 Hi! 你好",
            ["BERT很好。", "It works well.", "是吗？", "Yes!", "然后 Hi!", "你好"],
        ),
        ("  One.   Two.  ", ["One.", "Two."]),
        ("", []),
        ("   ", []),
    ],
)
def test_split_sentences(paragraph, expected):
    assert split_sentences(paragraph) == expected


def test_read_documents_streams(tmp_path):
    # the bad byte lies far past the first document: only reading the whole file would meet it
    text = b"First document.\n\n" + b"Filler line.\n" * 20_000 + b"\nbad \xff byte\n"
    path = write(tmp_path / "big.txt", text)
    docs = read_documents([path], CorpusOptions())
    assert inspect.isgenerator(docs)
    assert next(docs).sentences == ["First document."]
    with pytest.raises(BadInputError) as caught:
        list(docs)
    assert (Path(caught.value.path), caught.value.line) == (path, 20_004)
    assert "not valid UTF-8 (byte 0xff at character 5)" in str(caught.value)


def test_a_utf16_file_is_named_as_such_even_when_bad_lines_are_counted(tmp_path):
    path = write(tmp_path / "u16.txt", "First line.\nSecond line.\n".encode("utf-16"))
    for policy in ("error", "warn"):
        with pytest.raises(BadInputError, match=r"u16\.txt:1: the file is UTF-16"):
            list(read_documents([path], CorpusOptions(on_bad_line=policy)))


def test_bad_utf8_can_be_counted_and_skipped(tmp_path):
    path = write(tmp_path / "c.txt", b"Good one.\n\xc3\x28 broken\nGood two.\n")
    with pytest.raises(BadInputError, match=r"c\.txt:2: not valid UTF-8"):
        list(read_documents([path], CorpusOptions()))
    stats = CorpusStats()
    docs = list(read_documents([path], CorpusOptions(on_bad_line="warn"), stats))
    assert [d.sentences for d in docs] == [["Good one.", "Good two."]]
    assert stats.bad_lines == 1


def test_fingerprint_follows_content_and_options_only(tmp_path):
    path = write(tmp_path / "c.txt", "Some text. More text.\n")
    before = corpus_fingerprint([tmp_path], CorpusOptions())
    assert corpus_fingerprint([tmp_path], CorpusOptions()) == before
    os.utime(path, (0, 0))  # a new modification time alone is no new corpus
    assert corpus_fingerprint([path], CorpusOptions()) == before
    assert corpus_fingerprint([tmp_path], CorpusOptions(documents="file")) != before
    assert corpus_fingerprint([tmp_path], CorpusOptions(drop_lines="^x")) != before
    write(path, "Some text. More text!\n")  # same size, one byte changed
    assert corpus_fingerprint([tmp_path], CorpusOptions()) != before


def test_folders_are_searched_recursively_in_order(tmp_path, caplog):
    for name in (
        "b/z.txt",
        "b/a.TXT",
        "a.txt",
        "a-b.txt",
        ".hidden.txt",
        ".git/x.txt",
        "notes.md",
        "c.txt.gz",
    ):
        write(tmp_path / "corpus" / name, "Text.\n")
    other = write(tmp_path / "extra.tokens", "Text.\n")
    files = corpus_files([tmp_path / "corpus", other, tmp_path / "corpus" / "a.txt"])
    names = [p.relative_to(tmp_path).as_posix() for p in files]
    assert names == ["corpus/a-b.txt", "corpus/a.txt", "corpus/b/a.TXT", "corpus/b/z.txt", "extra.tokens"]
    # what a folder holds besides text is counted, not dropped unsaid (hidden files and folders aside)
    assert "4 .txt files read, 2 other files skipped" in caplog.text


def test_missing_or_empty_inputs_are_errors(tmp_path):
    with pytest.raises(BertkitError, match="nowhere.txt: no such file or folder"):
        read_documents([tmp_path / "nowhere.txt"], CorpusOptions())
    write(tmp_path / "docs" / "README.md", "Not text.\n")
    with pytest.raises(BertkitError, match=r"docs: no \.txt files in this folder \(1 other files skipped\)"):
        corpus_files([tmp_path / "docs"])
    blank = write(tmp_path / "blank.txt", "\n  \n\n")
    with pytest.raises(BertkitError, match="no documents in 1 corpus file"):
        list(read_documents([blank], CorpusOptions()))


def test_options_are_checked():
    with pytest.raises(BertkitError, match="documents must be one of"):
        CorpusOptions(documents="paragraph")
    with pytest.raises(BertkitError, match="sentences must be one of"):
        CorpusOptions(sentences="paragraph")
    with pytest.raises(BertkitError, match=r"doc_start: '\(' is not a valid regular expression"):
        CorpusOptions(doc_start="(")


def test_stats_count_what_was_read_and_short_sentences_can_be_dropped(tmp_path):
    path = write(tmp_path / "c.txt", "Ab. Cd.\n\n*\n\nEf.\n")
    stats = CorpusStats()
    docs = list(read_documents([path], CorpusOptions(min_sentence_chars=2), stats))
    assert [d.sentences for d in docs] == [["Ab.", "Cd."], ["Ef."]]
    assert (stats.files, stats.documents, stats.sentences, stats.one_sentence_documents) == (1, 2, 3, 1)
    assert (stats.characters, stats.short_sentences) == (9, 1)


def test_one_sentence_documents_are_reported(tmp_path):
    # a blank line after every sentence: each "document" is one sentence, NSP could never pair two
    path = write(tmp_path / "c.txt", "".join(f"Sentence number {i}.\n\n" for i in range(20)))
    stats = CorpusStats()
    list(read_documents([path], CorpusOptions(), stats))
    warning = one_sentence_warning(stats, CorpusOptions())
    assert warning is not None
    assert "100% of 20 documents have one sentence" in warning and "documents='file'" in warning
    stats = CorpusStats()
    list(read_documents([path], CorpusOptions(documents="file"), stats))
    assert (stats.documents, one_sentence_warning(stats, CorpusOptions(documents="file"))) == (1, None)


def test_options_come_from_any_object_with_the_same_names():
    import argparse

    from bertkit.pretrain.task import PretrainConfig

    config = PretrainConfig(documents="file", keep_from="^START", drop_lines="^#", on_bad_line="warn")
    assert CorpusOptions.of(config) == CorpusOptions(
        documents="file", keep_from="^START", drop_lines="^#", on_bad_line="warn"
    )
    flags = argparse.Namespace(documents="line", sentences="line", doc_start=None, unrelated=1)
    # what it lacks keeps its default
    assert CorpusOptions.of(flags) == CorpusOptions(documents="line", sentences="line")
    with pytest.raises(BertkitError, match="keep_from"):
        CorpusOptions.of(argparse.Namespace(keep_from="(unclosed"))
