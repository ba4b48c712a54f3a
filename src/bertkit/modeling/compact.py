"""Train only the rows of the word-embedding matrix that the training data uses.

A fine-tuning step updates MiniLM's 30,522 x 384 embedding matrix as a whole: half the model's
parameters, zeroed, clipped and stepped by AdamW every step, though a batch of SST-2 sentences touches a
few hundred rows and all of SST-2 only 11.6k of them. A row whose token never occurs in training gets a
zero gradient at every step, so AdamW's moments for it stay zero and its only change is the decoupled
weight decay, ``p *= 1 - lr * weight_decay`` per step. ``CompactEmbedding`` therefore makes the used rows
one smaller parameter and keeps the rest frozen, scaled by that product of decays: the same weights as
training the whole matrix, to float rounding, for about a third of its cost on SST-2. torch's sparse
embedding gradients do not help: the fused AdamW takes dense gradients only, and AdamW keeps moving
rows whose moments are non-zero after the batch that touched them has gone.

The module saves and loads as the ``nn.Embedding`` it replaces (a ``weight`` in the state dict), so
checkpoints and ``save_pretrained`` write the ordinary layout; ``restore`` puts that embedding back.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from bertkit.data.features import ShardedFeatures
from bertkit.errors import BertkitError

log = logging.getLogger(__name__)


class CompactEmbedding(nn.Module):
    """``embedding`` with only the rows ``used`` trainable (one parameter, ``rows``)."""

    def __init__(self, embedding: nn.Embedding, used: torch.Tensor):
        super().__init__()
        weight = embedding.weight.detach()
        self.num_embeddings, self.embedding_dim = weight.shape
        self.used = used.to(device=weight.device, dtype=torch.long)
        self.rows = nn.Parameter(weight[self.used].clone())
        # plain attributes, not buffers: DDP would broadcast a buffer at every forward pass
        self.frozen = weight
        self.decay = 1.0  # product of (1 - lr * weight_decay) over the steps taken: the frozen rows' scale
        self.index = torch.full((self.num_embeddings,), -1, dtype=torch.long, device=weight.device)
        self.index[self.used] = torch.arange(len(self.used), device=weight.device)
        pad = embedding.padding_idx
        self.padding_idx = None if pad is None or self.index[pad] < 0 else int(self.index[pad])
        self.__dict__["original"] = embedding  # not a submodule: its parameter is not trained

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        index = self.index[input_ids]
        unknown = index < 0
        if not bool(unknown.any()):
            return F.embedding(index, self.rows, self.padding_idx)
        if self.training:
            token = int(input_ids[unknown][0])
            raise BertkitError(
                f"token id {token} reached training but is not in the training features it was counted "
                "from; train with --train.compact_embeddings false"
            )
        trained = F.embedding(index.clamp(min=0), self.rows)
        return torch.where(unknown.unsqueeze(-1), F.embedding(input_ids, self.frozen) * self.decay, trained)

    @property
    def weight(self) -> torch.Tensor:
        """The whole matrix as ``nn.Embedding.weight`` would hold it now (a copy, not the parameter)."""
        return self.full_weight()

    def full_weight(self) -> torch.Tensor:
        full = self.frozen * self.decay if self.decay != 1.0 else self.frozen.clone()
        full[self.used] = self.rows.detach()
        return full

    def step_taken(self, lr: float, weight_decay: float) -> None:
        """AdamW's decoupled decay of one step, for the rows it did not see."""
        self.decay *= 1.0 - lr * weight_decay

    def resume(self, start: torch.Tensor, decay: float) -> None:
        """After a checkpoint's weights are loaded: the frozen rows as the run began and the decay
        they have had since (saved with the training state), so that a resumed run rounds exactly as
        one that never stopped (the checkpoint holds their product, rounded)."""
        with torch.no_grad():
            self.frozen.copy_(start)
        self.decay = decay

    def _save_to_state_dict(self, destination: dict, prefix: str, keep_vars: bool) -> None:
        destination[prefix + "weight"] = self.full_weight()

    def _load_from_state_dict(
        self,
        state_dict: dict,
        prefix: str,
        local_metadata: dict,
        strict: bool,
        missing_keys: list,
        unexpected_keys: list,
        error_msgs: list,
    ) -> None:
        key = prefix + "weight"
        if key not in state_dict:
            missing_keys.append(key)
            return
        weight = state_dict[key]
        if tuple(weight.shape) != (self.num_embeddings, self.embedding_dim):
            error_msgs.append(f"{key}: shape {tuple(weight.shape)}, expected {tuple(self.frozen.shape)}")
            return
        with torch.no_grad():
            self.frozen.copy_(weight)
            self.rows.copy_(self.frozen[self.used])
        self.decay = 1.0

    def _apply(self, fn: Any, recurse: bool = True) -> CompactEmbedding:
        super()._apply(fn, recurse)  # ``rows``; ``.to(device)`` and friends move the rest alike
        self.frozen, self.index, self.used = fn(self.frozen), fn(self.index), fn(self.used)
        return self

    def restore(self) -> nn.Embedding:
        """The original ``nn.Embedding``, holding the trained matrix (on this module's device)."""
        full = self.full_weight()
        self.original.to(device=full.device, dtype=full.dtype)
        with torch.no_grad():
            self.original.weight.copy_(full)
        return self.original

    def extra_repr(self) -> str:
        return f"{self.num_embeddings}, {self.embedding_dim}, trainable rows={len(self.used)}"


def compactable(model: nn.Module) -> nn.Embedding | None:
    """The model's input word embedding if compacting it changes nothing but the cost: a trained,
    plain ``nn.Embedding`` whose matrix no other module shares (an MLM decoder tied to it, say)."""
    get = getattr(model, "get_input_embeddings", None)
    embedding = get() if callable(get) else None
    if type(embedding) is not nn.Embedding or not embedding.weight.requires_grad:
        return None
    if embedding.max_norm is not None or embedding.scale_grad_by_freq or embedding.sparse:
        return None
    pointer = embedding.weight.data_ptr()
    sharing = [name for name, p in model.named_parameters(remove_duplicate=False) if p.data_ptr() == pointer]
    return embedding if len(sharing) == 1 else None


def used_token_ids(source: Any, added: Iterable[int] = ()) -> np.ndarray:
    """The sorted distinct ``input_ids`` of every feature of ``source`` and the ``added`` ids (those a
    collate function puts in: padding, and ``[CLS]``/``[SEP]`` where features hold the text alone)."""
    if isinstance(source, ShardedFeatures) and "input_ids" in source.fields:
        # read each shard's flat id array rather than rebuilding every feature
        parts = [np.asarray(source.shard(n)["input_ids.ints"]) for n in range(len(source.ends))]
    else:
        parts = [np.asarray(source[i].input_ids, dtype=np.int64) for i in range(len(source))]
    parts.append(np.array(sorted(set(added)), dtype=np.int64))
    return np.unique(np.concatenate(parts))


def parent_and_name(model: nn.Module, target: nn.Module) -> tuple[nn.Module, str]:
    for module in model.modules():
        for name, child in module.named_children():
            if child is target:
                return module, name
    raise BertkitError("the input embedding is not a submodule of the model")


@contextmanager
def compact_embeddings(
    model: nn.Module, source: Any, added: Iterable[int] = ()
) -> Iterator[CompactEmbedding | None]:
    """Train ``model``'s word embedding as a ``CompactEmbedding`` over the ids of ``source`` (and
    ``added``, see ``used_token_ids``) inside the block, and put the ``nn.Embedding`` back, trained,
    when it ends (also on an error). Yields None, changing nothing, where the embedding is frozen,
    shared with another module, or wholly used."""
    embedding = compactable(model)
    if embedding is None:
        yield None
        return
    pad = [] if embedding.padding_idx is None else [embedding.padding_idx]
    used = used_token_ids(source, [*added, *pad])
    if len(used) in (0, embedding.num_embeddings):
        yield None  # every row in use: nothing to save
        return
    parent, name = parent_and_name(model, embedding)
    compact = CompactEmbedding(embedding, torch.from_numpy(used))
    setattr(parent, name, compact)
    log.info(
        "training %d of the %d word-embedding rows (those the training data uses)",
        len(used),
        len(compact.index),
    )
    try:
        yield compact
    finally:
        setattr(parent, name, compact.restore())


def track_decay(optimizer: torch.optim.Optimizer, compact: CompactEmbedding) -> None:
    """After each ``optimizer.step()``, apply its weight decay to the rows ``compact`` keeps frozen."""

    def hook(opt: torch.optim.Optimizer, args: Any, kwargs: Any) -> None:
        # looked up at each step: ``load_state_dict`` (a resume) replaces the group dictionaries
        group = next(g for g in opt.param_groups if any(p is compact.rows for p in g["params"]))
        if group["weight_decay"]:
            compact.step_taken(group["lr"], group["weight_decay"])

    optimizer.register_step_post_hook(hook)
