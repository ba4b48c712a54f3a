"""Run fingerprints: which differences refuse a resume."""

from __future__ import annotations

from bertkit.training.state import fingerprint_differences


def test_a_field_added_since_takes_the_value_of_the_runs_before_it():
    old = {"train.lr": 0.1}  # written before train.compact_embeddings existed: the whole matrix trained
    assert fingerprint_differences(old, {"train.lr": 0.1, "train.compact_embeddings": False}) == []
    assert fingerprint_differences(old, {"train.lr": 0.1, "train.compact_embeddings": True}) == [
        "train.compact_embeddings: False in the checkpoint, True now"
    ]
    assert fingerprint_differences(old, {"train.lr": 0.2}) == ["train.lr: 0.1 in the checkpoint, 0.2 now"]
    assert fingerprint_differences({}, {"train.new_field": 1}) == [
        "train.new_field: '(absent)' in the checkpoint, 1 now"
    ]


def test_a_field_resolved_from_the_data_matches_as_given_or_as_resolved():
    saved = {"ner.tag_scheme": "auto", "resolved": {"ner.tag_scheme": "iob2"}}
    assert fingerprint_differences(saved, {"ner.tag_scheme": "auto"}) == []
    assert fingerprint_differences(saved, {"ner.tag_scheme": "iob2"}) == []
    assert fingerprint_differences(saved, {"ner.tag_scheme": "bioes"}) == [
        "ner.tag_scheme: 'auto' in the checkpoint, 'bioes' now"
    ]
