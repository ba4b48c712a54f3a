"""Attributions: a model whose answer depends on one token puts the mass on that token's word, IG's
completeness holds on a random BERT, sub-words sum into words and Chinese characters are words alone."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from inference.saved_models import save_untrained
from torch import nn
from transformers import BertTokenizerFast
from transformers.modeling_outputs import SequenceClassifierOutput

from bertkit.errors import BertkitError
from bertkit.inference.attribution_targets import Word, subjects, text_words, word_index
from bertkit.inference.explain import ExplainOptions, aggregate, explain_records
from bertkit.inference.predictor import Predictor

pytestmark = pytest.mark.usefixtures("one_torch_thread")


class OneTokenClassifier(nn.Module):
    """Class "pos" wins exactly when token ``token`` is in the input: only that token's embedding has
    a component along the one direction the classifier reads (every other token, [PAD] included, has
    random components elsewhere, which the tanh mixes but the read-out ignores)."""

    def __init__(self, vocab_size: int, token: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, 4)
        self.out = nn.Linear(4, 3)
        with torch.no_grad():
            self.embed.weight.normal_()
            self.embed.weight[:, 0] = 0.0
            self.embed.weight[token, 0] = 2.0
            self.out.weight.zero_()
            self.out.bias.copy_(torch.tensor([0.5, -0.5, 0.0]))  # "neg" wins without the token
            self.out.weight[1, 0] = 3.0

    def get_input_embeddings(self) -> nn.Module:
        return self.embed

    def forward(self, input_ids, attention_mask=None, token_type_ids=None) -> SequenceClassifierOutput:
        hidden = torch.tanh((self.embed(input_ids) * attention_mask[..., None]).sum(1))
        return SequenceClassifierOutput(logits=self.out(hidden))


@pytest.fixture(scope="module")
def classifier(tiny_bert, tmp_path_factory) -> Predictor:
    return Predictor.load(save_untrained("classify", tiny_bert, tmp_path_factory.mktemp("explain") / "m"))


def test_integrated_gradients_put_the_mass_on_the_one_token_the_answer_depends_on(classifier):
    task = classifier.task
    token = task.tokenizer.convert_tokens_to_ids("paris")
    model = OneTokenClassifier(len(task.tokenizer), token).eval()
    records = [task.to_record("alice went to paris with bob today")]
    with torch.no_grad():
        logits = model(
            **{k: v for k, v in task.collate(task.encode(records)).items() if k != "record"}
        ).logits
    predictions = [task.predict_from_logits(logits[0].numpy())]
    assert predictions[0].label == "pos"
    (row,) = explain_records(task, model, records, predictions, ExplainOptions(n_steps=64))
    words = [w["text"] for w in row["words"]]
    scores = dict(zip(words, row["scores"]))
    total = sum(abs(s) for s in row["scores"])
    assert scores["paris"] / total > 0.999
    assert row["target"] == "class pos" and not row["flagged"]


def test_completeness_holds_on_a_random_bert_with_enough_steps(classifier):
    """Gauss-Legendre quadrature (captum's default) of a smooth path integral converges fast: with 128
    steps on a 2-layer BERT the error left is float32 rounding, far below the 5% flag (we allow 1%)."""
    records = [classifier.task.to_record(t) for t in ("alice went to paris", "a big old home with dave")]
    predictions = classifier.predict_records(records)
    rows = explain_records(
        classifier.task, classifier.model, records, predictions, ExplainOptions(n_steps=128)
    )
    for row in rows:
        assert row["completeness_error"] < 0.01
        assert sum(row["scores"]) == pytest.approx(row["f_input"] - row["f_baseline"], abs=1e-3)


def test_occlusion_and_attention_score_every_word(classifier):
    records = [classifier.task.to_record("bob saw oslo")]
    predictions = classifier.predict_records(records)
    for method in ("occlusion", "attention"):
        (row,) = explain_records(
            classifier.task, classifier.model, records, predictions, ExplainOptions(method=method)
        )
        assert [w["text"] for w in row["words"]] == ["bob", "saw", "oslo"]
        assert all(isinstance(s, float) for s in row["scores"])
        assert row["completeness_error"] is None
    assert "not a faithful" in row["note"]


def test_sub_word_scores_sum_into_their_word():
    # positions: [CLS] x ##y ##z saw [SEP] -> words 0 (three pieces) and 1
    assert aggregate([9.0, 1.0, 2.0, 0.5, 4.0, 9.0], [None, 0, 0, 0, 1, None], 3) == [3.5, 4.0, None]


def test_pieces_of_a_word_map_to_it_and_chinese_characters_are_words(tiny_bert):
    tokenizer = BertTokenizerFast.from_pretrained(str(tiny_bert))
    text = "bob xyz 我爱paris"
    words = text_words(text, "text")
    assert [w.text for w in words] == ["bob", "xyz", "我", "爱", "paris"]
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    # bob | x ##y ##z | 我 ([UNK]) | 爱 ([UNK]) | paris
    assert word_index(words, enc["offset_mapping"]) == [0, 1, 1, 1, 2, 3, 4]
    assert word_index([Word("ab", 0, 2, "text")], [(0, 1), (1, 2), (2, 2)], first=5) == [5, 5, None]


def test_an_unknown_target_label_and_seq2seq_are_refused(classifier):
    records = [classifier.task.to_record("bob saw oslo")]
    predictions = classifier.predict_records(records)
    with pytest.raises(BertkitError, match="not a label"):
        explain_records(
            classifier.task, classifier.model, records, predictions, ExplainOptions(target="nope")
        )
    with pytest.raises(BertkitError, match="seq2seq: explanations are not supported"):
        subjects(SimpleNamespace(name="seq2seq"), None, [], [])
    with pytest.raises(BertkitError, match="method must be"):
        ExplainOptions(method="lime")


def relation(before: int, first: int, between: int, second: int, after: int) -> dict:
    """A relation record whose parts have the given numbers of words."""
    parts = [" ".join(["the"] * before), " ".join(["bob"] * first), " ".join(["went to"] * between)]
    parts += [" ".join(["paris"] * second), " ".join(["today"] * after)]
    text = " ".join(p for p in parts if p)
    head = text.index("bob")
    tail = text.index("paris")
    return {
        "text": text,
        "head": {"start": head, "end": head + len(parts[1])},
        "tail": {"start": tail, "end": tail + len(parts[3])},
    }


def test_relation_windows_map_every_kept_sub_word_to_its_word(tiny_bert, tmp_path):
    """Short, trimmed (long text around the entities), shortened (entities far apart) and cut (long
    entities) windows of 48 sub-words: each rebuilt window must equal the task's (checked inside)."""
    predictor = Predictor.load(save_untrained("re", tiny_bert, tmp_path / "re"))
    task = predictor.task
    shapes = [(1, 1, 1, 1, 1), (30, 1, 1, 1, 30), (2, 1, 40, 1, 2), (0, 30, 1, 30, 0)]
    records = [task.to_record(relation(*shape)) for shape in shapes]
    found = subjects(task, predictor.model, records, predictor.predict_records(records))
    for subject in found:
        window = subject.targets[0].window
        ids = window.batch["input_ids"][0].tolist()
        texts = {subject.words[w].text for w in window.word_of if w is not None}
        assert texts <= {"the", "bob", "went", "to", "paris", "today"}
        for position, word in enumerate(window.word_of):
            if word is not None:  # every word of this vocabulary is one sub-word: the same token
                assert task.tokenizer.convert_ids_to_tokens(ids[position]) == subject.words[word].text
    shortened = found[2].targets[0].window.word_of
    assert {found[2].words[w].text for w in shortened if w is not None} >= {"bob", "went", "paris"}


def test_a_long_input_is_explained_through_one_of_its_windows(classifier, tiny_bert, tmp_path):
    """Windows of 48 sub-words: the explained window is named, its words scored, the others None."""
    text = " ".join(["alice went to paris and then bob saw oslo"] * 8)  # 72 words
    ner = Predictor.load(save_untrained("ner", tiny_bert, tmp_path / "ner"))
    for predictor in (classifier, ner):
        records = [predictor.task.to_record(text)]
        predictions = predictor.predict_records(records)
        rows = explain_records(
            predictor.task, predictor.model, records, predictions, ExplainOptions(method="occlusion")
        )
        for row in rows:
            if row["target"] is None:
                continue
            assert row["windows"] > 1 and len(row["words"]) == 72
            scored = [s is not None for s in row["scores"]]
            assert 0 < sum(scored) < 72
            first, last = scored.index(True), len(scored) - scored[::-1].index(True)
            assert all(scored[first:last])  # one window: a contiguous run of words
