"""A local tokenizer file (a Hugging Face `tokenizer.json`) to count tokens offline.

For a target that reports no `usage`: the calibration then counts synthesised prompts with
this file instead of asking the service. Loaded with the optional `tokenizers` package
(`pip install 'loadkit[tokenizer]'`) from the file only: nothing is ever downloaded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def load_tokenizer(path: str | Path) -> Any:
    """The tokenizer in `path`; ValueError with a one-line reason when it cannot be used."""
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"tokenizer file not found: {p}")
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise ValueError(
            "a tokenizer file needs the optional `tokenizers` package: "
            "pip install 'loadkit[tokenizer]'"
        ) from None
    try:
        return Tokenizer.from_file(str(p))
    except Exception as exc:  # the Rust side raises its own Exception subclass
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ValueError(f"not a Hugging Face tokenizer.json ({p.name}): {reason[:160]}") from None


def count_tokens(tokenizer: Any, text: str) -> int:
    """Tokens of `text` without special tokens (the chat template's are not in the text)."""
    return len(tokenizer.encode(text, add_special_tokens=False).ids)
