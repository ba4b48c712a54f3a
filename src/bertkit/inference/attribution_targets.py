"""What an explanation attributes, per task family: an input's words, the window the prediction is read
from, where each word's sub-words sit in it, and the score of the prediction as a function of the
model's outputs. ``SUBJECTS`` maps a task name to the function that says so for its records.

Windows are rebuilt with the task's own windowing over *coded* sub-words, ``(segment, index)`` pairs in
place of ids, so the position of every sub-word is known without re-implementing any family's layout;
each rebuilt window is checked against the task's ``encode``.
"""

from __future__ import annotations

import dataclasses
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from bertkit.data.padding import IGNORE
from bertkit.data.readers.text import split_words
from bertkit.data.tagschemes import tags_to_spans
from bertkit.errors import BertkitError

Score = Callable[[Any], torch.Tensor]  # model outputs -> one score per batch row


@dataclass(frozen=True)
class Word:
    """A unit attributions are reported on: characters ``[start, end)`` of one text of the input."""

    text: str
    start: int
    end: int
    segment: str  # which text of the input: "text", "pair", "question" or "context"


@dataclass
class Window:
    """One model input (a batch of one row) and, per position, the word it belongs to (None: a special
    token or an entity marker, which the baseline keeps)."""

    batch: dict[str, torch.Tensor]
    word_of: list[int | None]
    index: int  # which window of the input this is
    count: int  # how many windows the input has


@dataclass
class Target:
    """One prediction to explain: its name, the scalar score that stands for it, and its window."""

    name: str  # for people: "class pos", "PER 'alice' (words 0-0)", "answer start"
    score_name: str  # what ``score`` computes: "log-probability of class pos"
    score: Score
    focus: list[int]  # positions the attention method reads attention from
    window: Window


@dataclass
class Subject:
    """One input: its texts, its words, the prediction as the API answers it, and what to explain."""

    texts: dict[str, str]
    words: list[Word]
    prediction: dict[str, Any]
    targets: list[Target]
    note: str = ""


def text_words(text: str, segment: str) -> list[Word]:
    """BERT's basic-tokenizer words of ``text``: punctuation and each CJK character are words alone."""
    return [Word(w, s, e, segment) for w, s, e in split_words(text)]


def word_index(words: Sequence[Word], offsets: Sequence[tuple[int, int]], first: int = 0) -> list[int | None]:
    """For each sub-word (character offsets), the index (plus ``first``) of the word it overlaps."""
    ends = [w.end for w in words]
    out: list[int | None] = []
    for start, end in offsets:
        w = bisect_right(ends, start)  # the first word ending after the sub-word starts
        inside = end > start and w < len(words) and words[w].start < end
        out.append(w + first if inside else None)
    return out


def model_inputs(task: Any, feature: Any, device: torch.device) -> dict[str, torch.Tensor]:
    """One window as a batch of one, without the padding a batch gets (``--model.pad_multiple``): an
    attribution is read off for each of the window's own tokens."""
    batch = task.collate([feature])
    width = len(feature.input_ids)
    tensors = {n: batch[n] for n in task.input_names if torch.is_tensor(batch.get(n))}
    return {n: (t[:, :width] if t.dim() == 2 else t).to(device) for n, t in tensors.items()}


def layout_ids(layout: Sequence[Any], pieces: Any, want: Sequence[int]) -> list[int]:
    """The ids of a coded window (``pieces[segment][index]`` for a coded sub-word); it must be the
    window the task's ``encode`` made (else a bug here)."""
    ids = [pieces[x[0]][x[1]] if isinstance(x, tuple) else x for x in layout]
    if list(ids) != list(want):
        raise RuntimeError("the rebuilt window differs from the task's encoding: explanations would be off")
    return ids


def best_window(task: Any, model: Any, windows: list[Window], score: Score) -> Window:
    """The window whose score is highest: the one that speaks most for the prediction."""
    if len(windows) == 1:
        return windows[0]
    with torch.no_grad():
        scores = [float(score(task.forward(model, w.batch))[0]) for w in windows]
    return windows[max(range(len(windows)), key=scores.__getitem__)]


def class_score(mode: str, index: int) -> Score:
    if mode == "regression":
        return lambda out: out.logits[:, 0].float()
    if mode == "multi":
        return lambda out: torch.nn.functional.logsigmoid(out.logits[:, index].float())
    return lambda out: torch.log_softmax(out.logits.float(), -1)[:, index]


def chosen_label(labels: list[str], wanted: str | None, predicted: str) -> int:
    label = wanted if wanted is not None else predicted
    if label not in labels:
        raise BertkitError(f"--target {label!r} is not a label of this model; it has {', '.join(labels)}")
    return labels.index(label)


def classify_subjects(
    task: Any,
    model: Any,
    records: Sequence[Any],
    predictions: Sequence[Any],
    wanted: str | None,
    device: torch.device,
) -> list[Subject]:
    """The predicted class (or ``wanted``) of the window that speaks most for it."""
    out = []
    for record, prediction in zip(records, predictions):
        texts = {"text": record.text} if record.pair is None else {"text": record.text, "pair": record.pair}
        words: list[Word] = []
        pieces: dict[str, list[int]] = {}
        piece_word: dict[str, list[int | None]] = {}
        for name, text in texts.items():
            enc = task.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
            segment_words = text_words(text, name)
            pieces[name] = enc["input_ids"]
            piece_word[name] = word_index(segment_words, enc["offset_mapping"], len(words))
            words += segment_words
        coded = {name: [(name, i) for i in range(len(ids))] for name, ids in pieces.items()}
        features = task.encode([record])
        windows = []
        for k, ((a, b), feature) in enumerate(zip(task.windows(coded["text"], coded.get("pair")), features)):
            layout = task.template.build(a, b)[0]
            layout_ids(layout, pieces, feature.input_ids)
            word_of = [piece_word[x[0]][x[1]] if isinstance(x, tuple) else None for x in layout]
            windows.append(Window(model_inputs(task, feature, device), word_of, k, len(features)))
        labels = task.labels or []
        if task.mode == "regression":
            name, score_name, score = "value", "predicted value", class_score("regression", 0)
        else:
            best = max(prediction.probs, key=prediction.probs.get)
            predicted = prediction.label if task.mode == "single" else (prediction.label or [best])[0]
            c = chosen_label(labels, wanted, predicted)
            kind = "log-probability" if task.mode == "single" else "log-sigmoid"
            name, score_name, score = (
                f"class {labels[c]}",
                f"{kind} of class {labels[c]}",
                class_score(task.mode, c),
            )
        window = best_window(task, model, windows, score)
        target = Target(name, score_name, score, [0], window)
        out.append(Subject(texts, words, task.result(record, prediction).to_dict(), [target]))
    return out


def ner_windows(task: Any, record: Any, device: torch.device) -> list[tuple[Window, set[int]]]:
    """The windows of one sentence alone (document context, if the model reads it, is left out), each
    with the words it owns (whose tags are read from it)."""
    pieces = task.subword_pieces([record])[0]
    coded = [[(w, k) for k in range(len(p))] for w, p in enumerate(pieces)]
    windows = []
    features = task.windows(0, coded, None, [], [])
    for k, feature in enumerate(features):
        ids = [pieces[x[0]][x[1]] if isinstance(x, tuple) else x for x in feature.input_ids]
        plain = dataclasses.replace(feature, input_ids=ids, labels=[IGNORE] * len(ids))
        word_of = [x[0] if isinstance(x, tuple) else None for x in feature.input_ids]
        window = Window(model_inputs(task, plain, device), word_of, k, len(features))
        windows.append((window, {w for _, w in feature.slots}))
    return windows


def entity_score(positions: list[int], tags: list[int]) -> Score:
    """The entity's log-probability: the sum over its words of the log-probability of the word's
    predicted tag (at its first sub-word, where the tag is read)."""
    rows, cols = torch.tensor(positions), torch.tensor(tags)
    return lambda out: torch.log_softmax(out.logits.float(), -1)[:, rows, cols].sum(-1)


def ner_subjects(
    task: Any,
    model: Any,
    records: Sequence[Any],
    predictions: Sequence[Any],
    wanted: str | None,
    device: torch.device,
) -> list[Subject]:
    """Each predicted entity (of type ``wanted`` when given), in the window that owns its first word."""
    out = []
    for record, prediction in zip(records, predictions):
        text, offsets = record.text, record.offsets
        if text is None or offsets is None:  # pre-tokenised input: the tokens joined by spaces
            text, offsets, at = " ".join(record.tokens), [], 0
            for token in record.tokens:
                offsets.append((at, at + len(token)))
                at += len(token) + 1
        words = [Word(t, s, e, "text") for t, (s, e) in zip(record.tokens, offsets)]
        windows = ner_windows(task, record, device) if words else []
        targets = []
        for span in tags_to_spans(prediction.tags, task.scheme):
            if wanted is not None and span.label != wanted:
                continue
            window = next(w for w, owned in windows if span.start in owned)
            inside = [w for w in range(span.start, span.end) if w in window.word_of]
            positions = [window.word_of.index(w) for w in inside]
            tags = [task.label2id[prediction.tags[w]] for w in inside]
            shown = text[offsets[span.start][0] : offsets[span.end - 1][1]]
            targets.append(
                Target(
                    f"{span.label} {shown!r}",
                    f"log-probability of its tags {' '.join(prediction.tags[span.start : span.end])}",
                    entity_score(positions, tags),
                    positions,
                    window,
                )
            )
        note = "" if targets else "no entity predicted" + (f" of type {wanted}" if wanted else "")
        out.append(Subject({"text": text}, words, task.result(record, prediction).to_dict(), targets, note))
    return out


def qa_windows(
    task: Any, record: Any, q_words: list[Word], c_words: list[Word], device: torch.device
) -> tuple[list[Any], list[Window]]:
    enc = task.tokenizer(
        record.question, add_special_tokens=False, return_offsets_mapping=True, verbose=False
    )
    q_word = word_index(q_words, enc["offset_mapping"][: task.cfg.max_question_length])
    q_begin = len(task.template.pair[0])
    features = task.encode([record])
    windows = []
    for k, feature in enumerate(features):
        word_of: list[int | None] = [None] * len(feature.input_ids)
        word_of[q_begin : q_begin + len(q_word)] = q_word
        c_word = word_index(c_words, feature.offsets, len(q_words))
        word_of[feature.context_begin : feature.context_begin + len(c_word)] = c_word
        windows.append(Window(model_inputs(task, feature, device), word_of, k, len(features)))
    return features, windows


def answer_positions(features: list[Any], prediction: Any) -> tuple[int, int, int]:
    """(window, start position, end position) of the predicted span; [CLS] of window 0 for no answer."""
    if prediction.start is None:
        return 0, 0, 0
    for k, f in enumerate(features):
        starts = [i for i in range(f.owned_begin, f.owned_end) if f.offsets[i][0] == prediction.start]
        if starts:
            ends = [j for j in range(starts[0], len(f.offsets)) if f.offsets[j][1] == prediction.end]
            if ends:
                return k, f.context_begin + starts[0], f.context_begin + ends[0]
    raise RuntimeError(f"the predicted answer {prediction.text!r} is in no window")


def qa_subjects(
    task: Any,
    model: Any,
    records: Sequence[Any],
    predictions: Sequence[Any],
    wanted: str | None,
    device: torch.device,
) -> list[Subject]:
    """Two targets per question: the start logit and the end logit of the predicted span."""
    out = []
    for record, prediction in zip(records, predictions):
        q_words = text_words(record.question, "question")
        c_words = text_words(record.context, "context")
        features, windows = qa_windows(task, record, q_words, c_words, device)
        k, start, end = answer_positions(features, prediction)
        what = "no answer ([CLS])" if prediction.start is None else repr(prediction.text)
        targets = [
            Target(
                f"answer start: {what}",
                "start logit",
                lambda o, p=start: o.start_logits[:, p].float(),
                [start],
                windows[k],
            ),
            Target(
                f"answer end: {what}",
                "end logit",
                lambda o, p=end: o.end_logits[:, p].float(),
                [end],
                windows[k],
            ),
        ]
        texts = {"question": record.question, "context": record.context}
        out.append(Subject(texts, q_words + c_words, task.result(record, prediction).to_dict(), targets))
    return out


def entity_segments(record: Any) -> list[str]:
    """The text cut at the entity edges, in text order: before, first entity, between, second, after."""
    first, second = sorted((record.head, record.tail), key=lambda a: a.start)
    edges = [0, first.start, first.end, second.start, second.end, len(record.text)]
    return [record.text[a:b] for a, b in zip(edges, edges[1:])]


def kept_pieces(body: list[int], start: int, words: list[int], close: list[int]) -> int:
    """How many of an entity's sub-words the window keeps: those between its markers."""
    for k in range(len(words), -1, -1):
        end = start + k
        if body[start:end] == words[:k] and body[end : end + len(close)] == close:
            return k
    raise RuntimeError("an entity's closing marker is not in its window")


def relation_layout(
    task: Any, feature: Any, coded: list[list], pieces: list[list[int]], markers: tuple
) -> list:
    """The coded window of a relation, read off its encoded window: the text before the first
    opening marker is the end of the text before it, the entities keep a prefix of their sub-words,
    the gap between them loses its middle when shortened, the rest is the start of the text after;
    ``layout_ids`` then checks it against the window the task made."""
    o1, c1, o2, c2 = markers
    before, first, between, second, after = coded
    prefix, suffix = task.template.single
    body = feature.input_ids[len(prefix) : len(feature.input_ids) - len(suffix)]
    s1, s2 = (p - len(prefix) for p in sorted((feature.head_start, feature.tail_start)))
    k1 = kept_pieces(body, s1 + len(o1), pieces[1], c1)
    layout = [*before[len(before) - s1 :], *o1, *first[:k1], *c1]
    gap = s2 - len(layout)
    left = gap if gap >= len(between) else (gap + 1) // 2  # shortened: the words next to each entity
    layout += [*between[:left], *between[len(between) - (gap - left) :][: gap - left]]
    k2 = kept_pieces(body, s2 + len(o2), pieces[3], c2)
    layout += [*o2, *second[:k2], *c2]
    layout += after[: len(body) - len(layout)]
    return [*prefix, *layout, *suffix]


def relation_subjects(
    task: Any,
    model: Any,
    records: Sequence[Any],
    predictions: Sequence[Any],
    wanted: str | None,
    device: torch.device,
) -> list[Subject]:
    """The predicted relation (or ``wanted``) of the one window; markers are kept in the baseline."""
    out = []
    labels = task.labels or []
    for record, prediction in zip(records, predictions):
        words = text_words(record.text, "text")
        coded, pieces, piece_word, at = [], [], [], 0
        for s, segment in enumerate(entity_segments(record)):
            enc = task.tokenizer(
                segment, add_special_tokens=False, return_offsets_mapping=True, verbose=False
            )
            pieces.append(enc["input_ids"])
            piece_word.append(word_index(words, [(a + at, b + at) for a, b in enc["offset_mapping"]]))
            coded.append([(s, i) for i in range(len(enc["input_ids"]))])
            at += len(segment)
        head, tail = task.marked(record.head, 1), task.marked(record.tail, 2)
        (o1, c1), (o2, c2) = (head, tail) if record.head.start < record.tail.start else (tail, head)
        feature = task.encode([record])[0]
        layout = relation_layout(task, feature, coded, pieces, (o1, c1, o2, c2))
        layout_ids(layout, pieces, feature.input_ids)
        word_of = [piece_word[x[0]][x[1]] if isinstance(x, tuple) else None for x in layout]
        window = Window(model_inputs(task, feature, device), word_of, 0, 1)
        c = chosen_label(labels, wanted, prediction.label)
        target = Target(
            f"relation {labels[c]}",
            f"log-probability of {labels[c]}",
            class_score("single", c),
            [feature.head_start, feature.tail_start],
            window,
        )
        out.append(Subject({"text": record.text}, words, task.result(record, prediction).to_dict(), [target]))
    return out


# task name -> what its explanations attribute. seq2seq is absent on purpose: a generated text has no
# one score to attribute (each generated sub-word would need its own explanation)
SUBJECTS: dict[str, Callable[..., list[Subject]]] = {
    "classify": classify_subjects,
    "ner": ner_subjects,
    "qa": qa_subjects,
    "re": relation_subjects,
}


def subjects(
    task: Any,
    model: Any,
    records: Sequence[Any],
    predictions: Sequence[Any],
    wanted: str | None = None,
    device: torch.device | None = None,
) -> list[Subject]:
    """What to explain of each record's prediction, for the families ``SUBJECTS`` knows."""
    if task.name not in SUBJECTS:
        raise BertkitError(
            f"{task.name}: explanations are not supported for this task (a generated text has no single "
            f"score to attribute); supported: {', '.join(SUBJECTS)}"
        )
    return SUBJECTS[task.name](task, model, records, predictions, wanted, device or torch.device("cpu"))
