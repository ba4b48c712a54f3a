"""A source longer than the encoder's window, encoded whole: windows in, one memory out.

The source's sub-words are cut into overlapping windows (``data/windows.py``), each window is encoded on
its own, and the decoder's cross-attention reads one memory per record: the first window's ``[CLS]``,
every source sub-word once, taken from the window where it has the most context, and the last window's
``[SEP]`` (fusion-in-decoder style, without the duplicates of the overlaps). A source that fits one window
gives exactly that window's encoding, as an unwindowed encoder would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers.modeling_outputs import BaseModelOutput

from bertkit.data.padding import batch_length, pad, padding_mask
from bertkit.data.windows import Template, owning_windows, window_starts


@dataclass
class SourceLayout:
    """The windows of a batch of sources and where each record's memory comes from in them."""

    windows: list[list[int]]  # every record's windows, record after record
    rows: list[list[int]]  # per record, for each memory position: its window (a row of ``windows``)
    columns: list[list[int]]  # ... and its column in that window

    def tensors(self, pad_id: int, multiple: int = 1, window: int | None = None) -> dict[str, torch.Tensor]:
        """The batch's tensors, windows and memories padded to multiples of ``multiple`` (windows not
        past ``window``, the encoder's length; see ``data/padding.py``)."""
        width = batch_length(self.windows, multiple, window)
        memory = batch_length(self.rows, multiple)
        # flat positions in the padded windows
        index = pad(self.rows, 0, length=memory) * width + pad(self.columns, 0, length=memory)
        return {
            "input_ids": pad(self.windows, pad_id, length=width),
            "attention_mask": padding_mask(self.windows, width),
            "memory_index": index,
            "memory_mask": padding_mask(self.rows, memory),
        }


def layout_sources(
    sources: Sequence[Sequence[int]], template: Template, budget: int, stride: int
) -> SourceLayout:
    """Windows of at most ``budget`` sub-words (plus the template's special tokens) over each source,
    consecutive windows sharing ``stride`` sub-words, and each record's memory positions in them."""
    before, after = (len(part) for part in template.single)
    layout = SourceLayout([], [], [])
    for ids in sources:
        first = len(layout.windows)
        starts = window_starts(len(ids), budget, stride)
        layout.windows += [template.build(list(ids[s : s + budget]))[0] for s in starts]
        owners = owning_windows(len(ids), starts, budget)
        last, end = first + len(starts) - 1, len(layout.windows[-1])
        rows = [first] * before + [first + w for w in owners] + [last] * after
        columns = [*range(before), *(before + pos - starts[w] for pos, w in enumerate(owners))]
        columns += range(end - after, end)
        layout.rows.append(rows)
        layout.columns.append(columns)
    return layout


def encode_sources(model: torch.nn.Module, batch: dict) -> tuple[BaseModelOutput, torch.Tensor]:
    """Run the encoder over every window of the batch and gather each record's memory.

    Returns the memory as an encoder output (what ``EncoderDecoderModel`` and ``generate`` take as
    ``encoder_outputs``) and its attention mask.
    """
    hidden = model.encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])[0]
    flat = hidden.reshape(-1, hidden.shape[-1])
    memory = flat[batch["memory_index"]]
    return BaseModelOutput(last_hidden_state=memory), batch["memory_mask"]
