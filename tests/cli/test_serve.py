"""`bertkit serve`: bad flags are one clear line before anything loads, missing server packages say what
to install, the flags reach the predictor and the server, and binding beyond loopback warns."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest

from bertkit.cli import serve as serve_cli
from bertkit.cli.app import main
from bertkit.inference import serving
from bertkit.inference.predictor import Limits, Predictor


@pytest.fixture
def started(monkeypatch, tmp_path) -> list[dict]:
    """Predictor.load and the server stubbed: records what they were given."""
    calls: list[dict] = []

    def load(model_dir, **kwargs):
        calls.append({"load": model_dir, **kwargs})
        return SimpleNamespace(task=SimpleNamespace(name="ner"))

    monkeypatch.setattr(Predictor, "load", load)
    monkeypatch.setattr(serving, "create_app", lambda predictor, options: ("app", options))
    monkeypatch.setattr(
        serving, "serve", lambda app, host, port, quiet: calls.append({"serve": (host, port, app)})
    )
    return calls


def serve_argv(model, *flags) -> list[str]:
    return ["-q", "serve", "--model", str(model), *flags]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--max-batch", "0"], "--max-batch must be >= 1, got 0"),
        (["--max-wait-ms", "-1"], "--max-wait-ms must be >= 0, got -1"),
        (["--max-request-bytes", "0"], "--max-request-bytes must be >= 1, got 0"),
        (["--max-texts", "0"], "--max-texts must be >= 1, got 0"),
        (["--max-chars", "0"], "--max-chars must be >= 1, got 0"),
        (["--port", "70000"], "--port must be 0..65535, got 70000"),
    ],
)
def test_bad_numbers_are_refused_before_loading(started, tmp_path, capsys, flags, message):
    assert main(serve_argv(tmp_path, *flags)) == 2
    assert message in capsys.readouterr().err
    assert started == []


def test_a_missing_model_directory_is_refused(started, tmp_path, capsys):
    assert main(serve_argv(tmp_path / "missing")) == 2
    assert "no such directory" in capsys.readouterr().err


def test_missing_server_packages_say_what_to_install(started, tmp_path, capsys, monkeypatch):
    real = serve_cli.importlib.util.find_spec
    monkeypatch.setattr(
        serve_cli.importlib.util, "find_spec", lambda name: None if name == "uvicorn" else real(name)
    )
    assert main(serve_argv(tmp_path)) == 2
    assert "pip install 'bertkit[serve]'" in capsys.readouterr().err


def test_flags_reach_the_predictor_and_the_server(started, tmp_path):
    flags = ["--port", "8123", "--max-batch", "4", "--max-wait-ms", "0",
             "--max-texts", "3", "--max-chars", "99"]  # fmt: skip
    assert main(serve_argv(tmp_path, *flags, "--threads", "1")) == 0
    load, run = started
    assert load["limits"] == Limits(max_inputs=3, max_chars=99) and load["threads"] == 1
    assert "engine" not in load  # torch is Predictor.load's default: nothing to pass
    host, port, (_, options) = run["serve"]
    assert (host, port) == ("127.0.0.1", 8123)
    assert (options.max_batch, options.max_wait_ms, options.max_texts, options.threads) == (4, 0, 3, 1)


def test_the_onnx_engine_is_asked_of_the_predictor(started, tmp_path):
    assert main(serve_argv(tmp_path, "--engine", "onnx")) == 0
    assert started[0]["engine"] == "onnx"


@pytest.mark.parametrize(("host", "warns"), [("127.0.0.1", False), ("localhost", False), ("0.0.0.0", True)])
def test_binding_beyond_loopback_warns(monkeypatch, caplog, host, warns):
    import uvicorn

    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: None)
    with caplog.at_level(logging.WARNING):
        serving.serve("app", host, 8000)
    assert ("reachable from other machines" in caplog.text) == warns


def test_help_lists_the_limits(capsys):
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = capsys.readouterr().out
    for flag in [
        "--max-batch",
        "--max-wait-ms",
        "--max-request-bytes",
        "--max-texts",
        "--max-chars",
        "--engine",
    ]:
        assert flag in out
