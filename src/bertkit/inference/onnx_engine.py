"""The ONNX engine: an exported model run by onnxruntime, behind the interface of the PyTorch model.

``OnnxModel`` is called like the model it was exported from (``model(input_ids=..., ...)``) and
returns an object with the same output attributes (``logits``; ``start_logits``/``end_logits``) as
torch tensors, so the tasks' decoders and ``predict_features`` run on it unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn

from bertkit.errors import BertkitError
from bertkit.modeling.export import INT8_FILE, ONNX_FILE, onnx_session, run_session

ENGINES = ("torch", "onnx")


class EngineOutputs(dict):
    """Named output tensors, read as attributes (``out.logits``) or keys, like a ``ModelOutput``."""

    def __getattr__(self, name: str) -> torch.Tensor:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class OnnxModel(nn.Module):
    """An onnxruntime session posing as the PyTorch model (an ``nn.Module`` without weights, so that
    ``.eval()``, ``.to()`` and ``eval_mode`` work on it as on the model)."""

    def __init__(self, session: Any, path: Path):
        super().__init__()
        self.session, self.path = session, path
        self.input_names = tuple(i.name for i in session.get_inputs())

    @classmethod
    def load(cls, model_dir: str | Path, precision: str = "auto", threads: int = 1) -> OnnxModel:
        path = onnx_file(model_dir, precision)
        return cls(onnx_session(path, threads), path)

    def forward(self, **inputs: torch.Tensor) -> EngineOutputs:
        outputs = run_session(self.session, inputs)
        return EngineOutputs({name: torch.from_numpy(value) for name, value in outputs.items()})


def onnx_file(model_dir: str | Path, precision: str) -> Path:
    """The ONNX file of ``model_dir`` for ``precision``: fp32 (``auto`` too: int8 is lossy, so it is
    chosen by name only) or int8; a clear error where ``bertkit export`` has not written it."""
    model_dir = Path(model_dir)
    if precision == "bf16":
        raise BertkitError("--engine onnx runs fp32 or int8, not bf16 (bf16 is for --engine torch)")
    if precision == "int8":
        path = model_dir / INT8_FILE
        if not path.is_file():
            raise BertkitError(
                f"{model_dir}: no {INT8_FILE}; run `bertkit export --model DIR --out {model_dir} "
                "--format onnx --quantize int8` first"
            )
        return path
    path = model_dir / ONNX_FILE
    if not path.is_file():
        raise BertkitError(
            f"{model_dir}: no {ONNX_FILE}, so --engine onnx cannot run it; run "
            f"`bertkit export --model {model_dir} --out EXPORTED_DIR --format onnx` and predict with "
            "--model EXPORTED_DIR"
        )
    return path
