"""Templates and word lists of the bias probe, and their exhaustive expansion into filled sentences.

A template is a sentence with slots (``{name} went to the store.``); a word list maps each slot to groups
of words (``name: {white_female: [Emily, ...], black_female: [Lakisha, ...]}``). Every template is filled
every way: each slot takes every word of every group, all slots of a template at once (their product).
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.resources import as_file, files
from pathlib import Path
from typing import Any

import yaml

from bertkit.data.readers import read_lines
from bertkit.data.readers.text import is_cjk
from bertkit.errors import BadInputError, BertkitError

BUILTIN = "builtin:"
BUILTIN_SETS = ("en", "zh")
SLOT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
JSON_LINE = re.compile(r"\s*\{\s*\"")  # a slot cannot start with a quote, so `{"` opens a JSON object
SENTENCE_END = re.compile(r"(^|[.!?]\s+)\Z")  # a slot here starts a sentence: its word is capitalised
TEMPLATE_KEYS = {"template", "slots", "id"}
SLOT_KEYS = {"entity", "groups"}

# slot -> group -> words
WordLists = dict[str, dict[str, list[str]]]


@dataclass(frozen=True)
class SlotOptions:
    """What a JSON-lines template says about one of its slots: the entity type an NER model should find
    there, and the groups to fill it with (None: all of them)."""

    entity: str | None = None
    groups: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Template:
    """One parsed template: literal text and slot names alternate in ``parts`` (slots at odd places)."""

    parts: tuple[str, ...]
    path: str
    line: int
    id: str
    options: dict[str, SlotOptions] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return "".join(p if i % 2 == 0 else "{" + p + "}" for i, p in enumerate(self.parts))

    @property
    def slots(self) -> tuple[str, ...]:
        """The distinct slot names, in order of first appearance."""
        return tuple(dict.fromkeys(self.parts[1::2]))


@dataclass(frozen=True)
class Choice:
    """The word one slot takes in a filling: its group and its position within the group."""

    group: str
    index: int
    word: str


@dataclass(frozen=True)
class Filling:
    """A template filled one way: the sentence, each slot's choice, and where each slot's word is."""

    template: int  # position in the template list
    text: str
    choices: dict[str, Choice]
    spans: dict[str, tuple[tuple[int, int], ...]]  # slot -> character spans of its word(s) in ``text``


# -- templates ----------------------------------------------------------------------------------------


def parse_slots(text: str, path: str, line: int) -> tuple[str, ...]:
    """``text`` cut into literal parts and slot names; ``{{`` and ``}}`` are literal braces."""
    parts, literal, i = [], [], 0
    while i < len(text):
        char = text[i]
        if text.startswith("{{", i) or text.startswith("}}", i):
            literal.append(char)
            i += 2
        elif char == "{":
            close = text.find("}", i)
            inner = text[i + 1 : close] if close >= 0 else ""
            if close < 0 or "{" in inner:
                raise BadInputError(path, line, f"unbalanced braces: '{{' at column {i + 1} is never closed")
            if not SLOT_NAME.match(inner):
                raise BadInputError(
                    path, line, f"bad slot {{{inner}}} at column {i + 1}: a slot is a name like {{name}}"
                )
            parts += ["".join(literal), inner]
            literal, i = [], close + 1
        elif char == "}":
            raise BadInputError(path, line, f"unbalanced braces: '}}' at column {i + 1} has no '{{'")
        else:
            literal.append(char)
            i += 1
    parts.append("".join(literal))
    if len(parts) == 1:
        raise BadInputError(path, line, "no slot in the template (slots look like {name})")
    return tuple(parts)


def parse_json_template(line_text: str, path: str, line: int) -> tuple[str, str | None, dict]:
    """(template text, id, slot options) of one JSON-lines template."""
    try:
        obj = json.loads(line_text)
    except json.JSONDecodeError as err:
        raise BadInputError(path, line, f"bad JSON: {err.msg} at column {err.colno}") from None
    if not isinstance(obj, dict) or not isinstance(obj.get("template"), str):
        raise BadInputError(path, line, 'a JSON template is an object with a "template" string')
    if unknown := set(obj) - TEMPLATE_KEYS:
        raise BadInputError(path, line, f"unknown key(s) {sorted(unknown)}; expected {sorted(TEMPLATE_KEYS)}")
    slots = obj.get("slots") or {}
    if not isinstance(slots, dict):
        raise BadInputError(path, line, '"slots" is an object: slot -> {"entity": ..., "groups": [...]}')
    options = {}
    for slot, spec in slots.items():
        if not isinstance(spec, dict) or set(spec) - SLOT_KEYS:
            raise BadInputError(
                path, line, f'slot "{slot}": expected an object with keys {sorted(SLOT_KEYS)}'
            )
        entity, groups = spec.get("entity"), spec.get("groups")
        if entity is not None and not isinstance(entity, str):
            raise BadInputError(path, line, f'slot "{slot}": "entity" is a type name such as "person"')
        if groups is not None and not (
            isinstance(groups, list) and groups and all(isinstance(g, str) for g in groups)
        ):
            raise BadInputError(path, line, f'slot "{slot}": "groups" is a non-empty list of group names')
        options[slot] = SlotOptions(entity, tuple(groups) if groups else None)
    ident = obj.get("id")
    return obj["template"], None if ident is None else str(ident), options


def parse_templates(lines: Sequence[str], path: str) -> list[Template]:
    """Templates of a file's lines: plain text or JSON objects, one per line; blank lines and lines
    starting with ``#`` are skipped (a ``#`` later in a line is text)."""
    templates = []
    for number, raw in enumerate(lines, 1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        text, ident, options = raw.strip(), None, {}
        if JSON_LINE.match(raw):
            text, ident, options = parse_json_template(raw, path, number)
        parts = parse_slots(text, path, number)
        template = Template(parts, path, number, ident or f"{Path(path).name}:{number}", options)
        if stray := set(options) - set(template.slots):
            raise BadInputError(path, number, f'"slots" names {sorted(stray)}, not in the template')
        templates.append(template)
    if not templates:
        raise BadInputError(path, 0, "no templates in the file")
    return templates


@contextmanager
def builtin_file(name: str) -> Iterator[Path]:
    with as_file(files("bertkit.inference") / "probe_words" / name) as path:
        yield path


def builtin_set(spec: str) -> str:
    language = spec.removeprefix(BUILTIN)
    if language not in BUILTIN_SETS:
        raise BertkitError(
            f"{spec}: no such bundled set; there are {', '.join(BUILTIN + s for s in BUILTIN_SETS)}"
        )
    return language


def load_templates(spec: str) -> list[Template]:
    """The templates of a file, or of a bundled set (``builtin:en``, ``builtin:zh``)."""
    if spec.startswith(BUILTIN):
        language = builtin_set(spec)
        with builtin_file(f"templates.{language}.txt") as path:
            return [
                Template(t.parts, spec, t.line, f"{language}:{t.line}", t.options)
                for t in parse_templates(read_lines(path), spec)
            ]
    if not Path(spec).is_file():
        raise BertkitError(f"--templates {spec}: no such file")
    return parse_templates(read_lines(spec), spec)


def template_language(templates: Sequence[Template]) -> str:
    """The bundled word lists that suit these templates: zh when they hold Chinese, else en."""
    return "zh" if any(is_cjk(c) for t in templates for c in t.text) else "en"


# -- word lists ---------------------------------------------------------------------------------------


def check_words(data: Any, path: str) -> WordLists:
    """``data`` as slot -> group -> words, or an error naming the slot and group that is wrong."""
    if not isinstance(data, dict) or not data:
        raise BadInputError(path, 0, "a word list maps slot -> group -> [words]")
    out: WordLists = {}
    for slot, groups in data.items():
        if not isinstance(slot, str) or not SLOT_NAME.match(slot):
            raise BadInputError(path, 0, f"bad slot name {slot!r}: a slot is a name like 'name'")
        if not isinstance(groups, dict) or not groups:
            raise BadInputError(path, 0, f"slot {slot!r}: expected a mapping group -> [words]")
        seen: dict[str, str] = {}
        out[slot] = {}
        for group, words in groups.items():
            if (
                not isinstance(words, list)
                or not words
                or not all(isinstance(w, str) and w.strip() for w in words)
            ):
                raise BadInputError(
                    path, 0, f"slot {slot!r}, group {group!r}: expected a non-empty list of words"
                )
            for word in words:
                if word in seen:
                    # one word in two groups would make a pair of fillings that differ in nothing
                    raise BadInputError(
                        path, 0, f"slot {slot!r}: {word!r} is in both group {seen[word]!r} and {group!r}"
                    )
                seen[word] = str(group)
            out[slot][str(group)] = list(words)
    return out


def read_words(path: str | Path) -> WordLists:
    """A word list file: YAML or JSON (JSON is YAML), slot -> group -> [words]."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as err:
        raise BertkitError(f"--words {path}: cannot read: {err.strerror}") from None
    except yaml.YAMLError as err:
        line = getattr(getattr(err, "problem_mark", None), "line", -1) + 1
        raise BadInputError(str(path), line, f"not valid YAML/JSON: {getattr(err, 'problem', err)}") from None
    return check_words(data, str(path))


def load_words(language: str, extra: Sequence[str] = ()) -> WordLists:
    """The bundled lists of ``language``, with each slot of each ``extra`` file (a path or
    ``builtin:LANG``) replacing the slot of that name."""
    with builtin_file(f"words.{language}.yaml") as path:
        words = read_words(path)
    for spec in extra:
        if spec.startswith(BUILTIN):
            with builtin_file(f"words.{builtin_set(spec)}.yaml") as path:
                words.update(read_words(path))
        elif not Path(spec).is_file():
            raise BertkitError(f"--words {spec}: no such file")
        else:
            words.update(read_words(spec))
    return words


def check_templates(templates: Sequence[Template], words: WordLists) -> None:
    """Every slot of every template has a word list, and the groups a template names exist."""
    for t in templates:
        for slot in t.slots:
            if slot not in words:
                raise BadInputError(
                    t.path, t.line, f"unknown slot {{{slot}}}; the word lists have {', '.join(sorted(words))}"
                )
            chosen = t.options.get(slot, SlotOptions()).groups or ()
            if missing := [g for g in chosen if g not in words[slot]]:
                raise BadInputError(t.path, t.line, f"slot {slot!r} has no group(s) {missing}")


# -- expansion ----------------------------------------------------------------------------------------


def slot_choices(template: Template, slot: str, words: WordLists) -> list[Choice]:
    groups = template.options.get(slot, SlotOptions()).groups or tuple(words[slot])
    return [Choice(g, i, w) for g in groups for i, w in enumerate(words[slot][g])]


def fill(template: Template, index: int, choices: dict[str, Choice]) -> Filling:
    """The sentence of one assignment of words to slots, with the character spans of each word."""
    text, spans = "", {slot: [] for slot in choices}
    for i, part in enumerate(template.parts):
        if i % 2 == 0:
            text += part
            continue
        word = choices[part].word
        if SENTENCE_END.search(text):
            word = word[:1].upper() + word[1:]
        spans[part].append((len(text), len(text) + len(word)))
        text += word
    return Filling(index, text, choices, {s: tuple(v) for s, v in spans.items()})


def expand(templates: Sequence[Template], words: WordLists) -> list[Filling]:
    """Every filling of every template: the product over its slots of every word of every group."""
    check_templates(templates, words)
    fillings = []
    for index, template in enumerate(templates):
        options = [slot_choices(template, slot, words) for slot in template.slots]
        for combo in itertools.product(*options):
            fillings.append(fill(template, index, dict(zip(template.slots, combo))))
    return fillings
