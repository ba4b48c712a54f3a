"""Task families by name. Adding one means a subpackage here and one line in ``TASKS``."""

from __future__ import annotations

from typing import Any

from bertkit.tasks.base import Task
from bertkit.tasks.classify.task import ClassifyTask
from bertkit.tasks.ner.task import NerTask
from bertkit.tasks.qa.task import QaTask
from bertkit.tasks.relation.task import RelationTask
from bertkit.tasks.seq2seq.task import Seq2SeqTask

TASKS: dict[str, type] = {
    "ner": NerTask,
    "classify": ClassifyTask,
    "qa": QaTask,
    "re": RelationTask,
    "seq2seq": Seq2SeqTask,
}


def make_task(cfg: Any, tokenizer: Any, labels: list[str] | None = None) -> Task:
    """The task object for ``cfg.task_name`` with its config section, tokenizer and (known) labels."""
    return TASKS[cfg.task_name](cfg.task, cfg.model, cfg.data, tokenizer, labels)
