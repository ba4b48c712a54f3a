"""A model as ONNX (and int8), checked against PyTorch before it is kept; int8 PyTorch for the CPU.

Task-agnostic: the caller hands the model, its input names and sample batches of input tensors; what
a task feeds and reads stays in ``tasks/`` (``recipes/export.py`` wires the two). An export is kept
only when onnxruntime gives the PyTorch outputs, within ``FP32_TOLERANCE``, at batch sizes and lengths
other than the ones it was traced with.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from bertkit.errors import BertkitError

log = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
FP32_TOLERANCE = 1e-4  # max |onnxruntime - PyTorch| of any output element of an fp32 export
OPSET = 18  # the dynamo exporter's own opset; onnxruntime >= 1.18 runs it
# protobuf caps a single file at 2 GiB; larger weights go to a side file (model.onnx.data)
SINGLE_FILE_BYTES = 1_800_000_000
BATCH, SEQUENCE = "batch", "sequence"


class TupleOutputs(nn.Module):
    """The model with positional inputs in ``input_names`` order and a tuple of named outputs, which is
    what an ONNX graph declares (a ``ModelOutput`` is a dict whose keys depend on what was passed)."""

    def __init__(self, model: nn.Module, input_names: Sequence[str], output_names: Sequence[str]):
        super().__init__()
        self.model, self.input_names, self.output_names = model, tuple(input_names), tuple(output_names)

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(**dict(zip(self.input_names, inputs)))
        return tuple(out[name] for name in self.output_names)


def output_names(model: nn.Module, batch: dict[str, torch.Tensor]) -> list[str]:
    """The tensor outputs of ``model`` on ``batch`` (logits; start/end logits for QA), in order."""
    with torch.inference_mode():
        out = model(**batch)
    names = [name for name, value in out.items() if isinstance(value, torch.Tensor) and name != "loss"]
    if not names:
        raise BertkitError(f"{type(model).__name__} returns no tensor to export")
    return names


@contextlib.contextmanager
def quiet_exporter() -> Iterator[None]:
    """The exporter warns about things that are not ours to fix (torchvision absent, pytree deprecations,
    axis names merged); keep them out of bertkit's output."""
    names = ("torch.onnx", "torch.onnx._internal.exporter._registration", "onnx_ir", "onnxscript")
    noisy = [logging.getLogger(name) for name in names]
    levels = [logger.level for logger in noisy]
    for logger in noisy:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=(FutureWarning, UserWarning, DeprecationWarning))
            yield
    finally:
        for logger, level in zip(noisy, levels):
            logger.setLevel(level)


def export_onnx(
    model: nn.Module, batch: dict[str, torch.Tensor], input_names: Sequence[str], path: str | Path
) -> list[str]:
    """Write ``model`` as ONNX to ``path`` with dynamic batch and sequence axes; its output names.

    ``batch`` is traced: it must have at least 2 rows and 2 positions, or the exporter may bake a size of
    1 into the graph as a constant.
    """
    require_onnx_packages("onnx", "onnxscript")  # what torch.onnx.export(dynamo=True) imports
    first = batch[input_names[0]]
    if first.dim() < 2 or first.shape[0] < 2 or first.shape[1] < 2:
        raise BertkitError(f"an export traces a batch of >= 2 rows of >= 2 tokens, got {tuple(first.shape)}")
    model = model.eval()
    names = output_names(model, batch)
    batch_dim, seq_dim = torch.export.Dim(BATCH), torch.export.Dim(SEQUENCE)
    # a [batch] input (relation's head_start) shares the batch axis; [batch, seq] ones share both
    axes = [{0: batch_dim, 1: seq_dim} if batch[n].dim() > 1 else {0: batch_dim} for n in input_names]
    wrapped = TupleOutputs(model, input_names, names)
    large = sum(p.numel() * p.element_size() for p in model.parameters()) > SINGLE_FILE_BYTES
    with quiet_exporter():
        try:
            program = torch.onnx.export(
                wrapped,
                tuple(batch[n] for n in input_names),
                None,
                input_names=list(input_names),
                output_names=names,
                dynamic_shapes=(tuple(axes),),  # one entry: the *inputs of TupleOutputs.forward
                opset_version=OPSET,
                dynamo=True,
                verbose=False,
            )
        except Exception as err:  # the exporter's errors run to pages; the summary line says it
            summary = next((line for line in str(err).splitlines() if "<class" in line), str(err)[:300])
            raise BertkitError(f"torch.onnx.export failed for {type(model).__name__}: {summary}") from err
        program.save(str(path), external_data=large)
    return names


def require_onnx_packages(*modules: str) -> None:
    """Import ``modules`` (onnx, onnxruntime, onnxscript): a missing one says what to install."""
    import importlib

    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise BertkitError(
                f"ONNX export and --engine onnx need {module}: pip install 'bertkit[onnx]'"
            ) from err


def onnx_session(path: str | Path, threads: int = 1) -> Any:
    """An onnxruntime CPU session of ``path`` with ``threads`` intra-op threads."""
    require_onnx_packages("onnxruntime")
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1  # one graph at a time: the threads go to the matmuls
    options.log_severity_level = 3  # errors only; warnings about unused initializers are noise here
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types, with the reason in the text
        raise BertkitError(f"{path}: onnxruntime cannot load it: {str(err).splitlines()[0]}") from err


def run_session(session: Any, batch: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """The session's outputs on the inputs it declares, taken from ``batch``."""
    feeds = {}
    for declared in session.get_inputs():
        if declared.name not in batch:
            raise BertkitError(f"the ONNX model takes {declared.name!r}, which the batch does not hold")
        feeds[declared.name] = batch[declared.name].detach().cpu().numpy()
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds)))


def check_dynamic_axes(session: Any, path: str | Path) -> None:
    """Refuse a graph whose inputs lost the dynamic batch or sequence axis (a size traced as constant)."""
    for declared in session.get_inputs():
        fixed = [axis for axis, size in enumerate(declared.shape[:2]) if not isinstance(size, str)]
        if fixed:
            raise BertkitError(
                f"{path}: input {declared.name} has a fixed size on axis {fixed[0]} ({declared.shape}); "
                "the export must keep batch and sequence dynamic"
            )


@dataclass(frozen=True)
class Agreement:
    """How far onnxruntime is from PyTorch over the check batches."""

    max_abs_diff: float  # over every element of every output
    argmax_agreement: float  # share of rows (and positions) where the highest logit is the same class
    worst_output: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_abs_diff": self.max_abs_diff,
            "argmax_agreement": self.argmax_agreement,
            "worst_output": self.worst_output,
        }


def compare(
    model: nn.Module, session: Any, batches: Sequence[dict[str, torch.Tensor]], names: Sequence[str]
) -> Agreement:
    """Run PyTorch and onnxruntime on every batch; the largest difference and the argmax agreement.

    Positions that the attention mask hides are left out: their logits are never read.
    """
    worst, worst_name, same, total = 0.0, names[0], 0, 0
    for batch in batches:
        with torch.inference_mode():
            theirs = model(**batch)
        ours = run_session(session, batch)
        mask = batch.get("attention_mask")
        for name in names:
            ref, got = theirs[name].float().cpu().numpy(), ours[name]
            if ref.shape != got.shape:
                raise BertkitError(f"ONNX output {name} has shape {got.shape}, PyTorch {ref.shape}")
            # token logits [batch, seq, labels] and position scores [batch, seq] (QA) have padding
            valid = None
            if mask is not None and ref.ndim in (2, 3) and ref.shape[:2] == tuple(mask.shape):
                valid = mask.cpu().numpy().astype(bool)
            error = np.abs(ref - got) if valid is None else np.abs(ref - got)[valid]
            diff = float(error.max()) if error.size else 0.0
            if diff > worst:
                worst, worst_name = diff, name
            if ref.ndim == 3 and valid is not None:
                same += int((ref.argmax(-1) == got.argmax(-1))[valid].sum())
                total += int(valid.sum())
            elif ref.ndim == 2:
                if valid is not None:  # padding never wins a position
                    ref, got = np.where(valid, ref, -np.inf), np.where(valid, got, -np.inf)
                same += int((ref.argmax(-1) == got.argmax(-1)).sum())
                total += len(ref)
    return Agreement(worst, same / total if total else 1.0, worst_name)


def cpu_has_vnni(cpuinfo: str | None = None) -> bool:
    """Whether the CPU multiplies u8 by s8 in int32 without an int16 step (AVX-512 VNNI, AVX-VNNI, AMX)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False  # unknown: the safe choice below is the one for a CPU without VNNI
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith("flags"):
            flags.update(line.split(":", 1)[-1].split())
    return bool(flags & {"avx512_vnni", "avx_vnni", "amx_int8"})


def quantize_onnx_int8(src: str | Path, dst: str | Path, vnni: bool | None = None) -> dict[str, Any]:
    """Dynamic int8 quantisation of ``src`` into ``dst``; the settings used.

    The MatMul weights run as int8 matmuls; the embedding tables (Gather), a third to a half of a small
    BERT's weights, are stored as int8 and dequantised on lookup, which is what shrinks the file.

    Weights are signed int8 (QInt8), per output channel: onnxruntime's fast path on x86 (u8 activations
    times s8 weights) and the more accurate choice for the wide-ranged weights of BERT's layers. Without
    VNNI that path adds pairs of u8*s8 products in int16, which saturates; ``reduce_range`` keeps the
    weights to 7 bits there, so the sums fit (onnxruntime's own advice; QUInt8 weights avoid it too but
    run slower on x86).
    """
    require_onnx_packages("onnxruntime")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    vnni = cpu_has_vnni() if vnni is None else vnni
    settings = {"weight_type": "QInt8", "per_channel": True, "reduce_range": not vnni}
    # onnxruntime logs (at WARNING) that a pre-processing step would help; it is for static
    # quantisation of convolutions and changes nothing for a transformer's dynamic MatMuls
    quant_log = logging.getLogger()
    level = quant_log.level
    quant_log.setLevel(logging.ERROR)
    try:
        quantize_dynamic(
            str(src),
            str(dst),
            op_types_to_quantize=["MatMul", "Gather"],
            per_channel=settings["per_channel"],
            reduce_range=settings["reduce_range"],
            weight_type=QuantType.QInt8,
        )
    finally:
        quant_log.setLevel(level)
    return settings


def quantize_torch_int8(model: nn.Module) -> nn.Module:
    """``model`` with every ``nn.Linear`` as a dynamically quantised int8 one (CPU only).

    ``torch.ao.quantization.quantize_dynamic`` still works in torch 2.13 but is deprecated in favour of
    torchao, which bertkit does not depend on; its deprecation warning is silenced here. The dynamic
    int8 Linear always quantises activations to 7 bits (reduce_range), so it cannot saturate on CPUs
    without VNNI, at a small cost in accuracy.
    """
    try:
        from torch.ao.quantization import quantize_dynamic
    except ImportError as err:
        raise BertkitError(
            "this torch has no torch.ao.quantization.quantize_dynamic; for int8 use "
            "`bertkit export --quantize int8` and --engine onnx --precision int8"
        ) from err
    if "x86" in torch.backends.quantized.supported_engines:
        torch.backends.quantized.engine = "x86"
    with warnings.catch_warnings():
        # torch warns (as UserWarning too) that its quantized tensors are deprecated: the same notice
        warnings.simplefilter("ignore", category=(DeprecationWarning, FutureWarning, UserWarning))
        return quantize_dynamic(model.eval().cpu(), {nn.Linear}, dtype=torch.qint8)
