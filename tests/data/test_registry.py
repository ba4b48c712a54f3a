"""Tests for datasets.py: resolving registered data sets to local files, offline fetches, md5 checks."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pytest

from bertkit.config import build_config
from bertkit.data import registry as datasets
from bertkit.data.registry import DatasetSpec, RemoteFile, default_data_dir, resolve
from bertkit.errors import BertkitError
from bertkit.tasks import TASKS

CONTENT = b"alice\tB-PER\nwent\tO\n\n" * 100


def remote_for(tmp_path: Path, name: str, content: bytes = CONTENT, md5: str | None = None) -> RemoteFile:
    """A RemoteFile served from a local file through a file:// URL."""
    source = tmp_path / "server" / name
    source.parent.mkdir(parents=True, exist_ok=True)
    source.write_bytes(content)
    return RemoteFile(name, source.as_uri(), md5 or hashlib.md5(content).hexdigest())


@pytest.fixture
def toy(tmp_path, monkeypatch) -> dict[str, RemoteFile]:
    """A data set "toy" registered for the test, with train and test splits served from tmp_path."""
    splits = {
        "train": remote_for(tmp_path, "toy.train"),
        "test": remote_for(tmp_path, "toy.test", b"bob\tB-PER\n"),
    }
    monkeypatch.setitem(datasets.DATASETS, "toy", DatasetSpec(task="ner", splits=splits))
    return splits


def no_fetch(remote, path):
    raise AssertionError(f"fetched {remote.url} although {path} should have been found")


def test_existing_files_are_found_without_fetching(toy, tmp_path, monkeypatch):
    data_dir = tmp_path / "data"
    for remote in toy.values():
        (data_dir / "toy").mkdir(parents=True, exist_ok=True)
        (data_dir / "toy" / remote.name).write_text("local copy")  # not the md5 of the remote: never checked
    monkeypatch.setattr(datasets, "fetch", no_fetch)
    paths = resolve("toy", data_dir)
    assert paths == {"train": data_dir / "toy" / "toy.train", "test": data_dir / "toy" / "toy.test"}


def test_missing_files_are_fetched_and_verified(toy, tmp_path):
    data_dir = tmp_path / "data"
    paths = resolve("toy", data_dir)
    assert paths["train"].read_bytes() == CONTENT
    assert paths["test"].read_bytes() == b"bob\tB-PER\n"
    assert sorted(p.name for p in (data_dir / "toy").iterdir()) == ["toy.test", "toy.train"]


def test_only_the_missing_split_is_fetched(toy, tmp_path, monkeypatch):
    data_dir = tmp_path / "data"
    (data_dir / "toy").mkdir(parents=True)
    (data_dir / "toy" / "toy.train").write_text("kept")
    fetched = []
    real_fetch = datasets.fetch

    def counting_fetch(remote, path):
        fetched.append(remote.name)
        real_fetch(remote, path)

    monkeypatch.setattr(datasets, "fetch", counting_fetch)
    resolve("toy", data_dir)
    assert fetched == ["toy.test"]
    assert (data_dir / "toy" / "toy.train").read_text() == "kept"


def test_wrong_md5_raises_and_leaves_no_file(tmp_path, monkeypatch):
    bad = remote_for(tmp_path, "toy.train", md5="0" * 32)
    monkeypatch.setitem(datasets.DATASETS, "toy", DatasetSpec(task="ner", splits={"train": bad}))
    data_dir = tmp_path / "data"
    with pytest.raises(BertkitError, match="checksum mismatch") as info:
        resolve("toy", data_dir)
    assert hashlib.md5(CONTENT).hexdigest() in str(info.value) and "0" * 32 in str(info.value)
    assert not (data_dir / "toy" / "toy.train").exists()
    assert list((data_dir / "toy").iterdir()) == []  # no temporary file either


def test_unreachable_source_says_where_to_put_the_file(tmp_path, monkeypatch):
    gone = RemoteFile("toy.train", (tmp_path / "nowhere" / "toy.train").as_uri(), "0" * 32)
    monkeypatch.setitem(datasets.DATASETS, "toy", DatasetSpec(task="ner", splits={"train": gone}))
    target = tmp_path / "data" / "toy" / "toy.train"
    with pytest.raises(BertkitError, match=re.escape(f"Put the file at {target}")):
        resolve("toy", tmp_path / "data")
    assert not target.exists()


def test_no_download_when_downloads_are_off(toy, tmp_path):
    with pytest.raises(BertkitError, match="downloads are off"):
        resolve("toy", tmp_path / "data", download=False)
    assert not (tmp_path / "data" / "toy" / "toy.train").exists()


def test_unknown_name_lists_the_registered_ones(toy):
    with pytest.raises(BertkitError) as info:
        resolve("wnut16")
    message = str(info.value)
    assert "'wnut16'" in message
    for name in ("toy", "wnut17", "weibo_ner"):
        assert name in message


def test_bertkit_data_dir_env_var(toy, tmp_path, monkeypatch):
    monkeypatch.setenv("BERTKIT_DATA_DIR", str(tmp_path / "env-data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_data_dir() == tmp_path / "env-data"
    paths = resolve("toy")
    assert paths["train"] == tmp_path / "env-data" / "toy" / "toy.train"
    assert paths["train"].read_bytes() == CONTENT
    assert not (tmp_path / "cache").exists()
    # an explicit data_dir beats the environment
    assert resolve("toy", tmp_path / "explicit")["train"].parent == tmp_path / "explicit" / "toy"


def test_user_cache_without_the_env_var(monkeypatch, tmp_path):
    monkeypatch.delenv("BERTKIT_DATA_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert default_data_dir() == tmp_path / "cache" / "bertkit" / "data"


@pytest.mark.parametrize("name", sorted(datasets.DATASETS))
def test_registered_data_sets_are_well_formed(name):
    spec = datasets.DATASETS[name]
    assert spec.task in TASKS
    assert spec.splits and "train" in spec.splits
    assert len({r.name for r in spec.splits.values()}) == len(spec.splits)
    for remote in spec.splits.values():
        assert re.fullmatch(r"[0-9a-f]{32}", remote.md5), remote
        assert remote.url.startswith("https://") and remote.url.endswith("/" + remote.name)
    # the config a data set brings must name real options with valid values
    build_config(spec.task, TASKS[spec.task].config_class, spec.config)
