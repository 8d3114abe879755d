"""Synthetic output text: every token is a 3-letter word plus a space (4 characters).

So `loadkit.tokens.estimate_tokens(text)` of a completion equals its token count. Words come
from a fixed, shuffled table; a request's text is a window into it starting at its `word0`.
"""

from __future__ import annotations

import numpy as np

_WORD_LIST = (
    "the and for are but not you all any can her was one our out day get has him his how man "
    "new now old see two way who boy did its let put say she too use act add age ago aid aim "
    "air arm art ask bad bag bar bed big bit box bus buy car cat cup cut dog dry ear eat egg "
    "end eye far few fit fly fun gas god gun hat hot ice job key kid law lay leg lie lot low "
    "map mix net oil own pay per pen pet pop red row run sea set sit six sky son sun tax tea "
    "ten tie top toy try war web win yes yet"
)
_WORDS = tuple(_WORD_LIST.split())

TOKEN_COUNT = 1024
TOKEN_MASK = TOKEN_COUNT - 1


def _table() -> tuple[tuple[str, ...], tuple[bytes, ...]]:
    rng = np.random.default_rng(20240601)
    idx = rng.integers(0, len(_WORDS), TOKEN_COUNT)
    words = tuple(f"{_WORDS[i]} " for i in idx)
    return words, tuple(w.encode("ascii") for w in words)


TOKEN_TEXT, TOKEN_BYTES = _table()


def text_of(word0: int, n: int) -> str:
    """The text of `n` tokens starting at table position `word0`."""
    return "".join(TOKEN_TEXT[(word0 + i) & TOKEN_MASK] for i in range(n))
