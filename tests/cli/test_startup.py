"""What every bertkit process pays before it does anything: the libraries that only some commands use
stay unimported until those commands run (each costs resident memory under the whole of training,
which the peak-memory comparison with Trainer counts, and start-up time for every command)."""

from __future__ import annotations

import json
import subprocess
import sys

# Libraries needed by one command or one task family's scoring only -> who needs them.
ON_DEMAND = {
    "rouge_score": "seq2seq scoring",
    "nltk": "rouge_score's stemmer",
    "sacrebleu": "seq2seq scoring",
    "captum": "explain",
    "onnx": "export",
    "onnxruntime": "predict --engine onnx",
    "fastapi": "serve",
    "uvicorn": "serve",
    "optuna": "tune",
    "jieba": "Chinese word boundaries",
    "matplotlib": "plots, written after training",
}


def test_the_cli_entry_point_imports_no_library_that_only_one_command_needs():
    probe = (
        "import json, sys; import bertkit.cli.app, bertkit.tasks; "
        f"print(json.dumps(sorted(m for m in {sorted(ON_DEMAND)!r} if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    loaded = json.loads(out.strip().splitlines()[-1])
    assert not loaded, {name: ON_DEMAND[name] for name in loaded}
