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


def test_loading_starts_stops_or_keeps_the_thread_governor(ner_model, monkeypatch):
    from bertkit.inference.predictor import Predictor
    from bertkit.training import threads

    calls = []
    monkeypatch.setattr(threads, "start_governor", lambda enabled, device: calls.append(enabled))
    monkeypatch.setattr("bertkit.training.runtime.start_governor", threads.start_governor)
    for adapt in (True, False, None):
        Predictor.load(ner_model, precision="fp32", adapt_threads=adapt)
    Predictor.load(ner_model, engine="torch", precision="int8", adapt_threads=True)  # torch's int8 kernels
    assert calls == [True, False, True]  # None: a predictor inside a training run keeps the run's
