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


def test_evaluate_refuses_a_file_without_gold_before_predicting_it(tiny_bert, tmp_path, monkeypatch):
    import json

    import pytest
    from inference.saved_models import save_untrained

    import bertkit.inference.predictor as predictor_module
    from bertkit.errors import BertkitError
    from bertkit.inference.predictor import Predictor

    model = save_untrained("qa", tiny_bert, tmp_path / "model")
    unlabelled = tmp_path / "questions.jsonl"
    unlabelled.write_text(
        json.dumps({"id": "q1", "question": "who went?", "context": "alice went home"}) + "\n"
    )
    predictor = Predictor.load(model)

    def no_pass(*args, **kwargs):
        raise AssertionError("the file was predicted before its missing answers were noticed")

    monkeypatch.setattr(predictor_module, "predict_features", no_pass)
    with pytest.raises(BertkitError, match="no answers to evaluate against"):
        predictor.evaluate(str(unlabelled))
