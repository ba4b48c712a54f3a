"""What the predictor's character limit counts: the text a model reads, once, not file names or labels."""

from __future__ import annotations

from bertkit.inference.predictor import record_chars
from bertkit.records import QaExample, TextExample, TokenExample


def test_raw_text_cut_into_tokens_counts_once():
    text = "Bob went to Lima ."
    record = TokenExample(tokens=text.split(), text=text, path="/a/long/path/to/input.txt")
    assert record_chars(record) == len(text)


def test_pretokenized_input_counts_its_tokens_not_its_tags():
    record = TokenExample(tokens=["Bob", "went"], tags=["B-PER", "O"], path="x.conll")
    assert record_chars(record) == 7


def test_pair_and_question_context_count_both_texts():
    assert record_chars(TextExample(text="good film", pair="bad film", label="positive")) == 17
    qa = QaExample(id="q-000001", question="Who?", context="Alice did.")
    assert record_chars(qa) == 4 + 10
