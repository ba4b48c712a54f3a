"""`bertkit evaluate` and `bertkit predict`: bad paths and numbers are one clear line before the model
loads, and --threads reaches the predictor."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from bertkit.cli.app import main
from bertkit.inference.predictor import Predictor


class FakePredictor:
    """Stands in for a loaded model: records how it was loaded, predicts nothing."""

    loads: list[dict] = []

    def __init__(self) -> None:
        self.task = SimpleNamespace(data_cfg=SimpleNamespace(format="auto", on_bad_line="error"))

    @classmethod
    def load(cls, model_dir, **kwargs) -> FakePredictor:
        cls.loads.append({"model_dir": model_dir, **kwargs})
        return cls()

    def evaluate(self, path: str) -> dict:
        return {"f1": 1.0}

    def predict_file(self, path: str, out: str) -> int:
        return 0


@pytest.fixture
def fake_predictor(monkeypatch) -> list[dict]:
    FakePredictor.loads = []
    monkeypatch.setattr(Predictor, "load", FakePredictor.load)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    return FakePredictor.loads


@pytest.fixture
def files(tmp_path):
    data = tmp_path / "data.conll"
    data.write_text("alice\tB-PER\n\n", encoding="utf-8")
    folder = tmp_path / "folder"
    folder.mkdir()
    return SimpleNamespace(data=data, folder=folder, missing=tmp_path / "missing.conll", tmp=tmp_path)


def evaluate(model, data, *flags) -> list[str]:
    return ["-q", "evaluate", "--model", str(model), "--data", str(data), *flags]


def predict(model, source, out, *flags) -> list[str]:
    return ["-q", "predict", "--model", str(model), "--input", str(source), "--out", str(out), *flags]


EVALUATE = ["evaluate", "--model", "{model}", "--data"]
PREDICT = ["predict", "--model", "{model}", "--input"]
IS_A_DIRECTORY = "{folder} is a directory; it takes a file"
OUT_IS_A_DIRECTORY = "--out {folder} is a directory; it takes the file to write"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([*EVALUATE, "{missing}"], "--data {missing}: no such file"),
        ([*EVALUATE, "{folder}"], f"--data {IS_A_DIRECTORY}"),
        ([*EVALUATE, "{data}", "--out", "{folder}"], OUT_IS_A_DIRECTORY),
        ([*PREDICT, "{missing}", "--out", "{tmp}/o.txt"], "--input {missing}: no such file"),
        ([*PREDICT, "{folder}", "--out", "{tmp}/o.txt"], f"--input {IS_A_DIRECTORY}"),
        ([*PREDICT, "{data}", "--out", "{folder}"], OUT_IS_A_DIRECTORY),
        (["predict", "--model", "{missing}", "--input", "{data}", "--out", "{tmp}/o.txt"],
         "--model {missing}: no such directory"),
        (["predict", "--model", "{data}", "--input", "{data}", "--out", "{tmp}/o.txt"],
         "--model {data} is a file; it takes a fine-tuned model directory"),
        ([*EVALUATE, "{data}", "--batch-size", "0"], "--batch-size must be >= 1, got 0"),
        ([*EVALUATE, "{data}", "--threads", "-1"], "--threads must be >= 0, got -1"),
    ],
)  # fmt: skip
def test_bad_path_or_number_is_one_line(tiny_bert, files, fake_predictor, capsys, argv, message):
    names = {"model": tiny_bert, "missing": files.missing, "folder": files.folder, "data": files.data}
    names["tmp"] = files.tmp
    assert main(["-q", *(arg.format(**names) for arg in argv)]) == 2
    assert capsys.readouterr().err == f"bertkit: error: {message.format(**names)}\n"
    assert fake_predictor == []  # refused before the model was loaded


@pytest.mark.parametrize(("flags", "threads"), [([], 0), (["--threads", "5"], 5)])
def test_threads_reach_the_predictor(tiny_bert, files, fake_predictor, flags, threads):
    # 0 leaves the choice to the runtime: $OMP_NUM_THREADS, else this process's cores (test_runtime.py)
    assert main(evaluate(tiny_bert, files.data, *flags)) == 0
    assert main(predict(tiny_bert, files.data, files.tmp / "out.conll", *flags)) == 0
    assert [load["threads"] for load in fake_predictor] == [threads, threads]


def test_predict_help_names_the_input_of_every_task(capsys):
    from bertkit.tasks import TASKS

    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    for name, task in TASKS.items():
        assert f"{name}: {' '.join(task.predict_io.split())}" in help_text


@pytest.mark.parametrize(("flags", "adapt"), [([], True), (["--no-adapt-threads"], False)])
def test_the_thread_governor_is_on_unless_turned_off(tiny_bert, files, fake_predictor, flags, adapt):
    assert main(evaluate(tiny_bert, files.data, *flags)) == 0
    assert main(predict(tiny_bert, files.data, files.tmp / "out.conll", *flags)) == 0
    assert [load["adapt_threads"] for load in fake_predictor] == [adapt, adapt]


def test_layout_flags_read_a_test_file_laid_out_unlike_train(tiny_bert, tmp_path, capsys):
    from inference.saved_models import save_untrained

    model = save_untrained("classify", tiny_bert, tmp_path / "model")  # trained on a "text" column
    test = tmp_path / "test.tsv"  # CoLA's test layout: index, sentence
    test.write_text("index\tsentence\n0\talice went home\n1\tbob saw paris\n")
    out = tmp_path / "p.jsonl"
    assert main(predict(model, test, out)) == 2
    assert "no text column 'text'" in capsys.readouterr().err
    assert main(predict(model, test, out, "--text-column", "sentence")) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["text"], r["line"]) for r in rows] == [("alice went home", 2), ("bob saw paris", 3)]
    # a flag of another task's layout is refused, naming both
    assert main(predict(model, test, out, "--token-column", "1")) == 2
    assert "--token-column is for ner models" in capsys.readouterr().err
