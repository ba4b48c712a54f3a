"""Tests for checkpoint.py and atomic.py: Hugging Face layout, atomic writes, training state, safe loads."""

from __future__ import annotations

import errno
import os
import pickle
import pickletools
import zipfile
from pathlib import Path

import pytest
import torch
from transformers import (
    AutoModelForTokenClassification,
    AutoTokenizer,
    BertForMaskedLM,
    BertForTokenClassification,
)

from bertkit import atomic
from bertkit.atomic import atomic_dir_files, atomic_path, write_json, write_text
from bertkit.training.checkpoint import STATE_FILE, load_training_state, save_model, save_training_state

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
SENTENCES = ["alice smith went to paris", "bob saw zzzz in tokyo today", "the"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def token_classifier(tiny_bert: Path, seed: int = 0) -> BertForTokenClassification:
    torch.manual_seed(seed)
    model = BertForTokenClassification.from_pretrained(
        tiny_bert,
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)},
    )
    return model.eval()


def leftovers(folder: Path) -> list[str]:
    """Temporary files or scratch directories the atomic writers could leave behind."""
    return sorted(p.name for p in folder.rglob("*") if p.name.startswith(".") or p.name.endswith(".tmp"))


# --- save_model: the Hugging Face layout --------------------------------------------------------------


def test_saved_model_reloads_with_auto_classes_and_gives_identical_logits(tiny_bert, tmp_path):
    model = token_classifier(tiny_bert)
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    out = tmp_path / "model"
    save_model(model, tokenizer, out)

    reloaded = AutoModelForTokenClassification.from_pretrained(out).eval()
    reloaded_tokenizer = AutoTokenizer.from_pretrained(out)
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    again = reloaded_tokenizer(SENTENCES, padding=True, return_tensors="pt")
    assert torch.equal(batch["input_ids"], again["input_ids"])
    assert (batch["input_ids"] == tokenizer.unk_token_id).sum() == 0  # a real vocabulary, not all [UNK]
    with torch.no_grad():
        expected = model(**batch).logits
        got = reloaded(**again).logits
    assert got.shape == (3, batch["input_ids"].shape[1], len(LABELS))
    assert torch.equal(got, expected)
    assert reloaded.config.id2label == dict(enumerate(LABELS))
    assert reloaded.config.label2id == {label: i for i, label in enumerate(LABELS)}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in out.iterdir()}
    assert leftovers(out) == []


def test_a_tokenizer_without_a_length_is_saved_with_the_models_positions(tiny_bert, tmp_path):
    # tokenizers' default length (1e30) would let truncation=True pass 700 ids to a 512-position model
    model = token_classifier(tiny_bert)
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    tokenizer.model_max_length = int(1e30)
    save_model(model, tokenizer, tmp_path / "model")
    assert tokenizer.model_max_length == int(1e30)  # the tokenizer in use is left as it was
    reloaded = AutoTokenizer.from_pretrained(tmp_path / "model")
    positions = model.config.max_position_embeddings
    assert reloaded.model_max_length == positions
    ids = reloaded(" ".join(["alice"] * (2 * positions)), truncation=True)["input_ids"]
    assert len(ids) == positions


def test_save_model_over_an_older_model_replaces_it(tiny_bert, tmp_path):
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    out = tmp_path / "model"
    save_model(token_classifier(tiny_bert, seed=0), tokenizer, out)
    newer = token_classifier(tiny_bert, seed=1)
    save_model(newer, tokenizer, out)
    reloaded = AutoModelForTokenClassification.from_pretrained(out)
    assert torch.equal(reloaded.classifier.weight, newer.classifier.weight)
    assert leftovers(out) == []


# --- atomic writes ------------------------------------------------------------------------------------


def test_atomic_path_failure_keeps_the_old_file(tmp_path):
    path = tmp_path / "metrics.json"
    path.write_text("old")
    with pytest.raises(RuntimeError, match="crash"), atomic_path(path) as tmp:
        tmp.write_text("half of the new")
        assert tmp.parent == path.parent and tmp != path
        raise RuntimeError("crash")
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]


def test_atomic_path_failure_on_a_new_file_leaves_nothing(tmp_path):
    path = tmp_path / "sub" / "new.txt"
    with pytest.raises(KeyboardInterrupt), atomic_path(path) as tmp:
        tmp.write_text("partial")
        raise KeyboardInterrupt
    assert list(path.parent.iterdir()) == []


def test_atomic_path_success_replaces_and_cleans_up(tmp_path):
    path = tmp_path / "a.json"
    path.write_text("old")
    write_json(path, {"f1": 0.5, "name": "größe"})
    assert path.read_text(encoding="utf-8") == '{\n  "f1": 0.5,\n  "name": "größe"\n}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"]


def test_atomic_write_respects_the_umask(tmp_path):
    old = os.umask(0o022)
    try:
        plain = tmp_path / "plain.txt"
        plain.write_text("x")
        write_text(tmp_path / "atomic.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "atomic.txt").stat().st_mode & 0o777 == plain.stat().st_mode & 0o777 == 0o644


def test_atomic_dir_files_failure_keeps_the_old_files(tmp_path):
    out = tmp_path / "model"
    out.mkdir()
    (out / "config.json").write_text("old config")
    (out / "model.safetensors").write_text("old weights")
    with pytest.raises(OSError, match="disk full"), atomic_dir_files(out) as scratch:
        (scratch / "model.safetensors").write_text("new weights")
        (scratch / "config.json").write_text("new config")
        raise OSError("disk full")
    assert (out / "config.json").read_text() == "old config"
    assert (out / "model.safetensors").read_text() == "old weights"
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors"]


def test_atomic_dir_files_moves_everything_config_last(tmp_path, monkeypatch):
    out = tmp_path / "model"
    moved: list[str] = []
    real_replace = os.replace

    def recording_replace(src, dst):
        moved.append(Path(dst).relative_to(out).as_posix())
        real_replace(src, dst)

    monkeypatch.setattr(atomic.os, "replace", recording_replace)
    with atomic_dir_files(out) as scratch:
        for name in ("config.json", "model.safetensors", "tokenizer.json", "vocab.txt"):
            (scratch / name).write_text(name)
        (scratch / "sub").mkdir()
        (scratch / "sub" / "extra.bin").write_text("extra")
    assert moved[-1] == "config.json"
    assert sorted(moved) == [
        "config.json",
        "model.safetensors",
        "sub/extra.bin",
        "tokenizer.json",
        "vocab.txt",
    ]
    assert (out / "sub" / "extra.bin").read_text() == "extra"
    assert (out / "vocab.txt").read_text() == "vocab.txt"
    assert leftovers(out) == []


# --- training state -----------------------------------------------------------------------------------


def one_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: dict) -> None:
    optimizer.zero_grad()
    model(**batch).loss.backward()
    optimizer.step()


def assert_same(a, b, where: str = "state") -> None:
    """Recursive equality of nested state (tensors compared exactly)."""
    assert type(a) is type(b), where
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


@pytest.fixture
def labelled_batch(tiny_bert) -> dict:
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    batch = dict(tokenizer(SENTENCES, padding=True, return_tensors="pt"))
    generator = torch.Generator().manual_seed(0)
    batch["labels"] = torch.randint(0, len(LABELS), batch["input_ids"].shape, generator=generator)
    return batch


def test_training_state_round_trip_resumes_exactly(tiny_bert, tmp_path, labelled_batch):
    model = token_classifier(tiny_bert, seed=0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    one_step(model, optimizer, labelled_batch)
    one_step(model, optimizer, labelled_batch)
    state = {
        "optimizer": optimizer.state_dict(),
        "step": 2,
        "epoch": 0.5,
        "rng": torch.get_rng_state(),
        "best": None,
        "history": [{"f1": 0.25}],
    }
    save_training_state(tmp_path / "ckpt", model, state)
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["model.safetensors", STATE_FILE]

    fresh = token_classifier(tiny_bert, seed=1)
    assert not torch.equal(fresh.classifier.weight, model.classifier.weight)
    loaded = load_training_state(tmp_path / "ckpt", fresh)
    assert_same(fresh.state_dict(), model.state_dict(), "weights")
    assert_same(loaded, state)

    resumed = torch.optim.AdamW(fresh.parameters(), lr=1e-2)
    resumed.load_state_dict(loaded["optimizer"])
    one_step(model, optimizer, labelled_batch)
    one_step(fresh, resumed, labelled_batch)
    assert_same(fresh.state_dict(), model.state_dict(), "weights after one more step")


def test_training_state_of_a_model_with_tied_weights(tiny_bert, tmp_path):
    torch.manual_seed(0)
    model = BertForMaskedLM.from_pretrained(tiny_bert)
    decoder, embeddings = model.cls.predictions.decoder.weight, model.bert.embeddings.word_embeddings.weight
    assert decoder.data_ptr() == embeddings.data_ptr()  # the case safetensors would refuse undeduplicated
    with torch.no_grad():
        embeddings.add_(1.0)
    save_training_state(tmp_path, model, {"step": 1})

    torch.manual_seed(1)
    fresh = BertForMaskedLM.from_pretrained(tiny_bert)
    assert load_training_state(tmp_path, fresh) == {"step": 1}
    assert_same(fresh.state_dict(), model.state_dict(), "weights")
    tied = fresh.cls.predictions.decoder.weight, fresh.bert.embeddings.word_embeddings.weight
    assert tied[0].data_ptr() == tied[1].data_ptr()


def test_loading_weights_of_another_architecture_is_refused(tiny_bert, tmp_path):
    save_training_state(tmp_path, token_classifier(tiny_bert), {"step": 0})
    torch.manual_seed(0)
    with pytest.raises(ValueError, match="do not match"):
        load_training_state(tmp_path, BertForMaskedLM.from_pretrained(tiny_bert))


UNPICKLED: list[str] = []


def record_unpickling(tag: str) -> str:
    UNPICKLED.append(tag)
    return tag


class Payload:
    """An object whose unpickling runs code: what a malicious training_state.pt would hold."""

    def __reduce__(self):
        return (record_unpickling, ("ran",))


def test_training_state_load_refuses_arbitrary_objects(tiny_bert, tmp_path):
    model = token_classifier(tiny_bert)
    save_training_state(tmp_path, model, {"step": 1})
    torch.save({"step": 2, "x": Payload()}, tmp_path / STATE_FILE)
    UNPICKLED.clear()
    with pytest.raises(pickle.UnpicklingError):
        load_training_state(tmp_path, model)
    assert UNPICKLED == []
    # the file really is hostile: its pickle imports and calls record_unpickling (read, never executed)
    assert "record_unpickling" in pickled_globals(tmp_path / STATE_FILE)


def pickled_globals(path: Path) -> set[str]:
    """Names a torch.save file's pickle would import, from its opcodes, without unpickling anything."""
    with zipfile.ZipFile(path) as archive:
        data = archive.read(next(n for n in archive.namelist() if n.endswith("data.pkl")))
    names, strings = set(), []
    for op, arg, _ in pickletools.genops(data):
        if isinstance(arg, str):
            strings.append(arg)
        if op.name == "STACK_GLOBAL":
            names.add(strings[-1])
        elif op.name == "GLOBAL":
            names.add(arg.split()[-1])
    return names


# --- a kill at any moment of a checkpoint write -------------------------------------------------------


class SimulatedKill(BaseException):
    """Raised where a kill -9 would strike; a BaseException, so nothing on the way catches it."""


class KillingOs:
    """``os`` for atomic.py (the checkpoint swap): its ``kill_at``-th fsync, rename or delete dies."""

    def __init__(self, kill_at: int):
        self.kill_at, self.calls = kill_at, 0

    def __getattr__(self, name):
        return getattr(os, name)

    def step(self) -> None:
        self.calls += 1
        if self.calls == self.kill_at:
            raise SimulatedKill

    def fsync(self, fd):
        self.step()
        os.fsync(fd)

    def replace(self, src, dst):
        self.step()
        os.replace(src, dst)


WRITE_STEPS = (
    7  # fsync weights, fsync state, fsync dir, rename old aside, rename new in, fsync parent, rmtree
)


@pytest.mark.parametrize("kill_at", range(1, WRITE_STEPS + 1))
def test_a_kill_during_a_checkpoint_write_leaves_the_previous_or_the_new_one(tmp_path, monkeypatch, kill_at):
    from bertkit import atomic
    from bertkit.training import checkpoint

    ckpt = tmp_path / "checkpoint"
    model = torch.nn.Linear(3, 2)
    with torch.no_grad():
        model.weight.fill_(1.0)
    save_training_state(ckpt, model, {"step": 1})
    with torch.no_grad():
        model.weight.fill_(2.0)
    killing = KillingOs(kill_at)
    real_rmtree = atomic.shutil.rmtree

    def dying_rmtree(path, *args, **kwargs):
        if Path(path).name == ".checkpoint.old":
            killing.step()
        real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(atomic, "os", killing)  # the swap's renames and fsyncs (atomic.swap_folder)
    monkeypatch.setattr(atomic.shutil, "rmtree", dying_rmtree)
    with pytest.raises(SimulatedKill):
        save_training_state(ckpt, model, {"step": 2})
    monkeypatch.undo()

    fresh = torch.nn.Linear(3, 2)
    step = load_training_state(ckpt, fresh)["step"]
    assert step == (2 if kill_at > 5 else 1)  # new once it is renamed into place, else the previous one
    assert torch.equal(fresh.weight, torch.full((2, 3), float(step)))  # never step-2 weights with step 1
    checkpoint.clean_orphans(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]
    assert sorted(p.name for p in ckpt.iterdir()) == ["model.safetensors", STATE_FILE]


def test_clean_orphans_removes_what_killed_writers_left(tmp_path):
    from bertkit.training.checkpoint import clean_orphans

    (tmp_path / ".checkpoint.abc.tmp").mkdir()
    (tmp_path / ".saving-xyz").mkdir()
    (tmp_path / ".metrics.json.123.tmp").write_text("half")
    (tmp_path / "metrics.json").write_text("{}")
    (tmp_path / ".hidden-by-the-user").write_text("mine")
    clean_orphans(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".hidden-by-the-user", "metrics.json"]


# --- a write that fails: disk full, read-only directory -----------------------------------------------

DISK_FULL = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def fill_disk_at(monkeypatch, target: str) -> None:
    """The checkpoint's weights (safetensors' own error type) or its training state fails to write."""
    import safetensors.torch
    from safetensors import SafetensorError

    def full(*args, **kwargs):
        if target == "weights":
            raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
        raise DISK_FULL

    monkeypatch.setattr(*((safetensors.torch, "save_file") if target == "weights" else (torch, "save")), full)


@pytest.mark.parametrize("target", ["weights", "state"])
def test_a_full_disk_during_a_checkpoint_is_a_write_error_and_keeps_the_previous_one(
    tmp_path, monkeypatch, target
):
    from bertkit.errors import BertkitError

    ckpt = tmp_path / "checkpoint"
    model = torch.nn.Linear(3, 2)
    save_training_state(ckpt, model, {"step": 1})
    before = {p.name: p.read_bytes() for p in ckpt.iterdir()}
    fill_disk_at(monkeypatch, target)
    with pytest.raises(atomic.WriteError) as info:
        save_training_state(ckpt, model, {"step": 2})
    monkeypatch.undo()
    message = str(info.value)
    assert message.startswith(f"cannot write {ckpt}: ") and message.endswith(
        "; the previous checkpoint is kept"
    )
    assert "No space left on device" in message
    assert isinstance(info.value, BertkitError) and isinstance(info.value, OSError)
    assert {p.name: p.read_bytes() for p in ckpt.iterdir()} == before
    assert load_training_state(ckpt, torch.nn.Linear(3, 2)) == {"step": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]  # the half-written one is gone


def test_a_safetensors_error_that_is_not_about_the_disk_is_not_called_a_write_error(tmp_path, monkeypatch):
    import safetensors.torch
    from safetensors import SafetensorError

    def refuses(*args, **kwargs):
        raise SafetensorError("tensors share memory")

    monkeypatch.setattr(safetensors.torch, "save_file", refuses)
    with pytest.raises(SafetensorError, match="share memory"):
        save_training_state(tmp_path / "checkpoint", torch.nn.Linear(3, 2), {"step": 1})
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_during_a_model_save_keeps_the_model_there(tiny_bert, tmp_path, monkeypatch):
    import transformers.modeling_utils
    from safetensors import SafetensorError

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    out = tmp_path / "model"
    save_model(token_classifier(tiny_bert, seed=0), tokenizer, out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def full(*args, **kwargs):
        raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(transformers.modeling_utils, "safe_save_file", full)
    with pytest.raises(
        atomic.WriteError, match=rf"^cannot write {out}: .*No space left.*; the model there is kept$"
    ):
        save_model(token_classifier(tiny_bert, seed=1), tokenizer, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert leftovers(out) == []


def test_a_full_disk_during_write_text_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    path.write_text("old")
    real = Path.write_text

    def full(self, *args, **kwargs):
        real(self, "half")  # what reached the disk before it filled
        raise DISK_FULL

    monkeypatch.setattr(Path, "write_text", full)
    with pytest.raises(atomic.WriteError) as info:
        write_json(path, {"f1": 1.0})
    monkeypatch.undo()
    assert str(info.value) == f"cannot write {path}: No space left on device; what was there before is kept"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"] and path.read_text() == "old"


def test_a_directory_that_refuses_new_files_is_a_write_error_naming_the_file(tmp_path, monkeypatch):
    def refused(*args, **kwargs):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))

    monkeypatch.setattr(atomic.tempfile, "mkstemp", refused)
    with pytest.raises(atomic.WriteError, match=rf"^cannot write {tmp_path / 'run.yaml'}: Permission denied"):
        write_text(tmp_path / "run.yaml", "task: ner\n")


def test_an_error_of_the_block_itself_is_not_relabelled(tmp_path):
    # the block may read (a download, an input file): its OSError is its own, not a failed write
    with pytest.raises(FileNotFoundError), atomic_path(tmp_path / "out.txt"):
        (tmp_path / "no-such-input").read_text()
    assert list(tmp_path.iterdir()) == []


def test_a_failed_rename_into_place_puts_the_previous_folder_back(tmp_path, monkeypatch):
    folder, scratch = tmp_path / "checkpoint", tmp_path / ".checkpoint.new.tmp"
    folder.mkdir()
    (folder / "state").write_text("old")
    scratch.mkdir()
    (scratch / "state").write_text("new")
    real = os.replace

    def refuse_the_new_one(src, dst):
        if Path(src) == scratch:
            raise DISK_FULL
        real(src, dst)

    monkeypatch.setattr(atomic.os, "replace", refuse_the_new_one)
    with pytest.raises(OSError, match="No space left"):
        atomic.swap_folder(scratch, folder)
    assert (folder / "state").read_text() == "old" and not atomic.aside(folder).exists()


def test_saved_models_and_checkpoints_follow_the_umask(tiny_bert, tmp_path):
    old = os.umask(0o022)
    try:
        save_model(token_classifier(tiny_bert), AutoTokenizer.from_pretrained(tiny_bert), tmp_path / "model")
        save_training_state(tmp_path / "checkpoint", torch.nn.Linear(3, 2), {"step": 1})
    finally:
        os.umask(old)
    files = [*(tmp_path / "model").iterdir(), *(tmp_path / "checkpoint").iterdir()]
    assert {p.name: p.stat().st_mode & 0o777 for p in files} == {p.name: 0o644 for p in files}
    assert (tmp_path / "checkpoint").stat().st_mode & 0o777 == 0o755
