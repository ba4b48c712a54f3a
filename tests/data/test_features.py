"""Tests for features.py: sharded features give back equal features, are reused by fingerprint, and
refuse values they cannot store."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bertkit.data.features import InMemoryFeatures, ShardedFeatures, open_or_write_sharded, write_sharded
from bertkit.errors import BertkitError


@dataclass
class TokenFeature:
    input_ids: list[int]
    labels: list[int]
    record: int
    slots: list[tuple[int, int]]


@dataclass
class TextFeature:
    input_ids: list[int]
    token_type_ids: list[int]
    record: int
    target: Any  # int, float, list of floats or None


ids = st.lists(st.integers(0, 30_000), max_size=12)
token_features = st.builds(
    TokenFeature,
    input_ids=ids,
    labels=st.lists(st.integers(-100, 20), max_size=12),
    record=st.integers(0, 10**9),
    slots=st.lists(st.tuples(st.integers(0, 511), st.integers(0, 10**6)), max_size=6),
)
targets = st.one_of(
    st.none(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False),
    st.lists(st.floats(allow_nan=False, width=32), min_size=1, max_size=4),
)
text_features = st.builds(
    TextFeature, input_ids=ids, token_type_ids=ids, record=st.integers(0, 99), target=targets
)


@settings(max_examples=25, deadline=None)
@given(
    features=st.one_of(st.lists(token_features, max_size=9), st.lists(text_features, max_size=9)),
    shard=st.integers(1, 4),
)
def test_sharded_features_give_back_equal_features(tmp_path_factory, features, shard):
    folder = tmp_path_factory.mktemp("shards") / "train"
    stored = write_sharded(iter(features), folder, "fp", shard_features=shard)
    assert len(stored) == len(features)
    assert stored.lengths.tolist() == [len(f.input_ids) for f in features]
    assert [stored[i] for i in range(len(stored))] == features
    if features:
        assert stored[-1] == features[-1]
    assert len(list(folder.glob("shard-*"))) == -(-len(features) // shard)  # bounded shards
    assert stored.lengths.tolist() == InMemoryFeatures(features).lengths.tolist()


def test_shards_are_reused_for_the_same_fingerprint_and_rewritten_for_another(tmp_path):
    features = [TokenFeature([2, 5, 3], [0, 1, 0], i, [(1, 0)]) for i in range(5)]
    folder = tmp_path / "train"
    open_or_write_sharded(folder, "one", iter(features))

    def never():
        raise AssertionError("re-encoded although the shards exist")
        yield

    again = open_or_write_sharded(folder, "one", never())
    assert isinstance(again, ShardedFeatures) and again.fingerprint == "one" and again[4] == features[4]
    other = open_or_write_sharded(folder, "two", iter(features[:2]))
    assert other.fingerprint == "two" and len(other) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["train"]  # no scratch left behind


def test_a_value_that_cannot_be_stored_is_refused_naming_its_field(tmp_path):
    bad = TextFeature([1, 2], [0, 0], 0, target={"label": 1})
    with pytest.raises(BertkitError, match="'target'"):
        write_sharded([bad], tmp_path / "x", "fp")
    assert not (tmp_path / "x").exists()


def test_in_memory_fingerprint_follows_the_content():
    a = [TokenFeature([2, 3], [0, 0], 0, [])]
    b = [TokenFeature([2, 4], [0, 0], 0, [])]
    assert InMemoryFeatures(a).fingerprint == InMemoryFeatures(list(a)).fingerprint
    assert InMemoryFeatures(a).fingerprint != InMemoryFeatures(b).fingerprint
    assert InMemoryFeatures(a, fingerprint="given").fingerprint == "given"
