"""The probe's templates and word lists: exhaustive expansion, errors that name file:line, and the
bundled English and Chinese sets."""

from __future__ import annotations

import itertools
import json
import math

import pytest

from bertkit.errors import BadInputError, BertkitError
from bertkit.inference.probe_templates import (
    expand,
    load_templates,
    load_words,
    parse_templates,
    read_words,
    template_language,
)

WORDS = {
    "name": {"a": ["alice", "bob"], "b": ["carol"]},
    "city": {"x": ["paris"], "y": ["oslo", "lima"]},
}


def templates_of(tmp_path, text: str, name: str = "t.txt"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return load_templates(str(path))


def test_expansion_is_every_combination_of_every_slot(tmp_path):
    templates = templates_of(tmp_path, "# two slots\nwe saw {name} in {city}.\n\n{city} is big.\n")
    fillings = expand(templates, WORDS)
    first = [f.text for f in fillings if f.template == 0]
    assert len(first) == 3 * 3  # (2 + 1 names) x (1 + 2 cities)
    assert sorted(first) == sorted(
        f"we saw {n} in {c}." for n in ("alice", "bob", "carol") for c in ("paris", "oslo", "lima")
    )
    # a word that starts a sentence is capitalised; the choice keeps the word as listed
    assert [f.text for f in fillings if f.template == 1] == ["Paris is big.", "Oslo is big.", "Lima is big."]
    assert fillings[-1].choices["city"].word == "lima" and fillings[-1].choices["city"].index == 1
    # each slot's span points at its word in the sentence
    for f in fillings:
        for slot, spans in f.spans.items():
            assert [f.text[s:e].lower() for s, e in spans] == [f.choices[slot].word]


def test_a_slot_repeated_takes_one_word_and_json_templates_restrict_groups(tmp_path):
    line = json.dumps({"template": "{name} and {name} at {city}", "slots": {"city": {"groups": ["y"]}}})
    templates = templates_of(tmp_path, line + "\n")
    fillings = expand(templates, WORDS)
    assert len(fillings) == 3 * 2
    assert fillings[0].text == "Alice and alice at oslo"
    assert fillings[0].spans["name"] == ((0, 5), (10, 15))
    assert {f.choices["city"].group for f in fillings} == {"y"}


def test_literal_braces_and_hash_inside_a_line_are_text(tmp_path):
    [template] = templates_of(tmp_path, "# a comment line\n  # another\nwe #1 {{x}} {name}\n")
    assert template.line == 3
    assert [f.text for f in expand([template], WORDS)][0] == "we #1 {x} alice"


@pytest.mark.parametrize(
    "text, line, message",
    [
        ("{name} ok\n\n{nme} went home\n", 3, "unknown slot {nme}"),
        ("# c\nno slot here\n", 2, "no slot in the template"),
        ("{name went home\n", 1, "'{' at column 1 is never closed"),
        ("{name} went} home\n", 1, "'}' at column 12 has no '{'"),
        ("{first name} went\n", 1, "bad slot {first name}"),
        ("{name}\n{}\n", 2, "bad slot {}"),
        ('{name}\n{"template": "{name}", \n', 2, "bad JSON"),
        ('{"template": "{name}", "slots": {"city": {}}}\n', 1, "not in the template"),
        ('{"template": "{name}", "extra": 1}\n', 1, "unknown key"),
        ('{"template": "{city}", "slots": {"city": {"groups": ["z"]}}}\n', 1, "no group(s) ['z']"),
    ],
)
def test_template_errors_name_file_and_line(tmp_path, text, line, message):
    with pytest.raises(BadInputError) as err:
        expand(templates_of(tmp_path, text), WORDS)
    assert err.value.line == line and err.value.path.endswith("t.txt")
    assert f"t.txt:{line}:" in str(err.value) and message in str(err.value)


def test_a_file_without_templates_is_refused(tmp_path):
    with pytest.raises(BadInputError, match="no templates"):
        templates_of(tmp_path, "# only a comment\n\n")
    with pytest.raises(BertkitError, match="no such file"):
        load_templates(str(tmp_path / "missing.txt"))
    with pytest.raises(BertkitError, match="builtin:en, builtin:zh"):
        load_templates("builtin:fr")


@pytest.mark.parametrize(
    "data, message",
    [
        ({"name": {"a": ["x", "y"], "b": ["y"]}}, "'y' is in both group 'a' and 'b'"),
        ({"name": ["x"]}, "expected a mapping group -> [words]"),
        ({"name": {"a": []}}, "non-empty list of words"),
        ({"first name": {"a": ["x"]}}, "bad slot name"),
        ([1, 2], "slot -> group -> [words]"),
    ],
)
def test_word_list_errors_name_the_file_slot_and_group(tmp_path, data, message):
    path = tmp_path / "words.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(BadInputError, match="words.json") as err:
        read_words(path)
    assert message in str(err.value)


def test_user_words_replace_a_bundled_slot_and_keep_the_others(tmp_path):
    path = tmp_path / "words.yaml"
    path.write_text("name:\n  x: [Ann]\n  y: [Bo]\ncolour:\n  warm: [red]\n", encoding="utf-8")
    words = load_words("en", [str(path)])
    assert words["name"] == {"x": ["Ann"], "y": ["Bo"]} and words["colour"] == {"warm": ["red"]}
    assert "muslim" in words["religion"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("name:\n  x: [a\n  y: b\n", encoding="utf-8")
    with pytest.raises(BadInputError, match=r"bad.yaml:\d+: not valid YAML"):
        read_words(bad)


@pytest.mark.parametrize("language", ["en", "zh"])
def test_bundled_sets_load_and_expand_exhaustively(language):
    templates = load_templates(f"builtin:{language}")
    words = load_words(language)
    assert template_language(templates) == language
    fillings = expand(templates, words)
    expected = sum(math.prod(sum(map(len, words[s].values())) for s in t.slots) for t in templates)
    assert len(fillings) == expected
    for index, template in enumerate(templates):
        got = {tuple((s, f.choices[s].word) for s in template.slots) for f in fillings if f.template == index}
        every = itertools.product(*[[(s, w) for g in words[s].values() for w in g] for s in template.slots])
        assert got == set(every)
    # each slot's groups are aligned: the same number of words in each, for index pairing
    for slot, groups in words.items():
        assert len({len(g) for g in groups.values()}) == 1, slot
    assert templates[0].path == f"builtin:{language}" and templates[0].id == f"{language}:{templates[0].line}"


def test_template_language_reads_chinese_off_the_text():
    assert template_language(parse_templates(["{name}去了商店。"], "t")) == "zh"
    assert template_language(parse_templates(["{name} went home"], "t")) == "en"
