"""Where the training loop reads its encoded features from: a list in memory, or shards on disk.

Both give ``len()``, ``lengths`` (for length-grouped batches), ``feature[i]`` and a ``fingerprint``
that names their content (saved with a checkpoint so a resume over other features is refused). Sharded
features are memory-mapped numpy arrays written once from an iterator, so a corpus larger than memory
is encoded once and reused by every later run with the same fingerprint.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import itertools
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from bertkit.errors import BertkitError

FORMAT = 1
META_FILE = "features.json"
SHARD_FEATURES = 100_000  # features per shard: bounds the memory of writing one shard

# how one field value is stored: its kind per feature, and its numbers in a flat int or float array
NONE, INT, FLOAT, BOOL, INTS, FLOATS, PAIRS = range(7)


class FeatureSource(Protocol):
    """What ``fit`` reads: random access to encoded features, their lengths and an identity."""

    fingerprint: str

    @property
    def lengths(self) -> np.ndarray: ...

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> Any: ...


class InMemoryFeatures:
    """Features held in a list (the default for data that fits in memory)."""

    def __init__(self, features: Sequence[Any], fingerprint: str | None = None):
        self.features = features
        self.fingerprint = fingerprint or content_fingerprint(features)
        self._lengths: np.ndarray | None = None

    @property
    def lengths(self) -> np.ndarray:
        if self._lengths is None:
            self._lengths = np.array([len(f.input_ids) for f in self.features], dtype=np.int64)
        return self._lengths

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, index: int) -> Any:
        return self.features[index]


def as_feature_source(features: FeatureSource | Sequence[Any]) -> FeatureSource:
    """A plain list becomes ``InMemoryFeatures``; a source is returned as it is."""
    return features if hasattr(features, "fingerprint") else InMemoryFeatures(features)


def content_fingerprint(features: Sequence[Any]) -> str:
    """A hash of every feature's fields, so equal features give equal fingerprints in every run."""
    digest = hashlib.sha256()
    for feature in features:
        digest.update(repr(feature).encode())
    return f"sha256:{digest.hexdigest()}"


class ShardedFeatures:
    """Features stored as memory-mapped arrays on disk: per field a kind per feature and flat numbers."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        meta = json.loads((self.folder / META_FILE).read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT:
            raise BertkitError(f"{self.folder}: feature shards of format {meta.get('format')}, need {FORMAT}")
        self.fingerprint: str = meta["fingerprint"]
        self.fields: list[str] = meta["fields"]
        self.cls = import_class(meta["class"], self.folder)
        self.ends = np.cumsum(meta["shards"])  # features before the end of each shard
        self._lengths = np.load(self.folder / "lengths.npy", mmap_mode="r")
        self._shards: dict[int, dict[str, np.ndarray]] = {}

    @property
    def lengths(self) -> np.ndarray:
        return self._lengths

    def __len__(self) -> int:
        return int(self.ends[-1]) if len(self.ends) else 0

    def __getitem__(self, index: int) -> Any:
        if not -len(self) <= index < len(self):
            raise IndexError(f"feature {index} of {len(self)}")
        index %= len(self)
        shard = int(np.searchsorted(self.ends, index, side="right"))
        row = index - (int(self.ends[shard - 1]) if shard else 0)
        arrays = self.shard(shard)
        return self.cls(**{name: field_value(arrays, name, row) for name in self.fields})

    def shard(self, number: int) -> dict[str, np.ndarray]:
        if number not in self._shards:
            folder = self.folder / f"shard-{number:05d}"
            self._shards[number] = {p.stem: np.load(p, mmap_mode="r") for p in folder.glob("*.npy")}
        return self._shards[number]


def field_value(arrays: dict[str, np.ndarray], name: str, row: int) -> Any:
    """Rebuild one field of one feature from its kind and its slice of the flat arrays."""
    kind = int(arrays[f"{name}.kind"][row])
    ints = arrays[f"{name}.ints"][arrays[f"{name}.int_offsets"][row] : arrays[f"{name}.int_offsets"][row + 1]]
    floats = arrays[f"{name}.floats"][
        arrays[f"{name}.float_offsets"][row] : arrays[f"{name}.float_offsets"][row + 1]
    ]
    if kind == NONE:
        return None
    if kind == INT:
        return int(ints[0])
    if kind == BOOL:
        return bool(ints[0])
    if kind == FLOAT:
        return float(floats[0])
    if kind == INTS:
        return ints.tolist()
    if kind == FLOATS:
        return floats.tolist()
    return [tuple(pair) for pair in ints.reshape(-1, 2).tolist()]


def open_or_write_sharded(
    folder: str | Path,
    fingerprint: str,
    features: Iterable[Any] | None = None,
    shard_features: int = SHARD_FEATURES,
) -> ShardedFeatures:
    """Reuse the shards in ``folder`` if they were written for ``fingerprint``; else write ``features``.

    ``features`` may be a generator: it is consumed once, one shard at a time. Pass a callable's result
    lazily by giving ``None`` only when the shards are known to exist.
    """
    folder = Path(folder)
    meta = folder / META_FILE
    if meta.is_file() and json.loads(meta.read_text(encoding="utf-8")).get("fingerprint") == fingerprint:
        return ShardedFeatures(folder)
    if features is None:
        raise BertkitError(f"{folder}: no feature shards for fingerprint {fingerprint}")
    return write_sharded(features, folder, fingerprint, shard_features)


def write_sharded(
    features: Iterable[Any], folder: str | Path, fingerprint: str, shard_features: int = SHARD_FEATURES
) -> ShardedFeatures:
    """Write ``features`` (dataclasses of ints, floats, None, int/float lists, int pairs) as shards.

    Written under a temporary name and renamed into place, so ``folder`` holds complete shards or none.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
    try:
        meta = write_shards(iter(features), scratch, shard_features)
        (scratch / META_FILE).write_text(json.dumps({**meta, "fingerprint": fingerprint}), encoding="utf-8")
        if folder.exists():
            shutil.rmtree(folder)  # shards of an older fingerprint
        os.replace(scratch, folder)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return ShardedFeatures(folder)


def write_shards(features: Iterable[Any], scratch: Path, shard_features: int) -> dict[str, Any]:
    counts: list[int] = []
    lengths: list[np.ndarray] = []
    cls, fields, batch = None, [], []
    for feature in itertools.chain(features, [None]):  # None: flush the last shard
        if feature is not None:
            if cls is None:
                cls, fields = type(feature), [f.name for f in dataclasses.fields(feature)]
            elif type(feature) is not cls:
                raise BertkitError(f"feature shards hold one class: got {type(feature).__name__} after {cls}")
            batch.append(feature)
        if batch and (feature is None or len(batch) == shard_features):
            save_shard(batch, fields, scratch / f"shard-{len(counts):05d}")
            lengths.append(np.array([len(f.input_ids) for f in batch], dtype=np.int64))
            counts.append(len(batch))
            batch = []
    np.save(scratch / "lengths.npy", np.concatenate(lengths) if lengths else np.zeros(0, np.int64))
    name = f"{cls.__module__}:{cls.__qualname__}" if cls else "builtins:object"
    return {"format": FORMAT, "class": name, "fields": fields, "shards": counts}


def save_shard(features: list[Any], fields: list[str], folder: Path) -> None:
    folder.mkdir()
    for name in fields:
        kinds, ints, floats, int_ends, float_ends = [], [], [], [0], [0]
        for feature in features:
            kind = value_kind(getattr(feature, name), name)
            kinds.append(kind)
            value = getattr(feature, name)
            if kind in (INT, BOOL):
                ints.append(int(value))
            elif kind == FLOAT:
                floats.append(value)
            elif kind == INTS:
                ints.extend(value)
            elif kind == FLOATS:
                floats.extend(value)
            elif kind == PAIRS:
                ints.extend(x for pair in value for x in pair)
            int_ends.append(len(ints))
            float_ends.append(len(floats))
        np.save(folder / f"{name}.kind.npy", np.array(kinds, dtype=np.uint8))
        np.save(folder / f"{name}.ints.npy", np.array(ints, dtype=np.int64))
        np.save(folder / f"{name}.floats.npy", np.array(floats, dtype=np.float64))
        np.save(folder / f"{name}.int_offsets.npy", np.array(int_ends, dtype=np.int64))
        np.save(folder / f"{name}.float_offsets.npy", np.array(float_ends, dtype=np.int64))


def value_kind(value: Any, name: str) -> int:
    """How a field value is stored; anything else is refused, naming the field."""
    if value is None:
        return NONE
    if isinstance(value, bool):
        return BOOL
    if isinstance(value, (int, np.integer)):
        return INT
    if isinstance(value, (float, np.floating)):
        return FLOAT
    if isinstance(value, list):
        if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in value):
            return INTS  # an empty list too: it comes back as [] whatever its items would have been
        if all(
            isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) for v in value
        ):
            return FLOATS  # ints among floats come back as equal floats
        if all(isinstance(v, tuple) and len(v) == 2 and all(isinstance(x, int) for x in v) for v in value):
            return PAIRS
    raise BertkitError(
        f"feature field {name!r}: cannot store {value!r:.60} in shards "
        "(expected an int, float, bool, None, a list of ints or floats, or a list of (int, int) pairs)"
    )


def import_class(name: str, folder: Path) -> type:
    module, _, qualname = name.partition(":")
    try:
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as err:
        raise BertkitError(f"{folder}: feature class {name} cannot be imported: {err}") from err
    return obj
