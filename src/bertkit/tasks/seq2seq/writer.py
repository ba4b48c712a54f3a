"""What prediction returns for one source: the generated text (and the record's id when it has one)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# CJK characters and full-width punctuation: WordPiece decoding puts a space between every two of them
CJK = r"[\u2e80-\u9fff\uf900-\ufaff\u3000-\u303f\uff00-\uffef]"
SPACE_NEXT_TO_CJK = re.compile(rf"(?<={CJK})\s+|\s+(?={CJK})")


def detokenize(tokenizer: Any, ids: list[int]) -> str:
    """Text of generated ids: special tokens dropped, no spaces around Chinese characters."""
    text = tokenizer.decode(ids, skip_special_tokens=True, clean_up_tokenization_spaces=True)
    return SPACE_NEXT_TO_CJK.sub("", text).strip()


@dataclass
class Seq2SeqResult:
    output: str
    id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "output": self.output} if self.id is not None else {"output": self.output}
