"""Embedding vectors and the `/v1/embeddings` response body, built without stalling the loop.

A body for 2,048 inputs of 1,536 dimensions is about 65 MB of JSON and over a second of
CPU; built in one go it froze every stream's decode steps for that long. Here vectors are
serialised one input at a time, the loop gets control back every `SLICE_S` of work, and the
body leaves in pieces of about `PIECE_BYTES` (no second copy of the whole body).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
from collections.abc import AsyncIterator, Sequence

import numpy as np

from mocks.errors import ApiError

MAX_INPUTS = 2048  # OpenAI: an input array holds at most 2,048 items
MAX_TOKENS = 300_000  # OpenAI: tokens summed over all inputs of one request
SLICE_S = 0.001  # serialise for at most about this long between yields to the loop
PIECE_BYTES = 256 * 1024  # write the body in pieces of about this size
SMALL_FLOATS = 1 << 16  # up to this many floats in all, answer with one plain body

Item = str | list[int]


def check_limits(items: Sequence[Item], tokens: int) -> None:
    """OpenAI's per-request limits on embeddings, with OpenAI's errors."""
    if len(items) > MAX_INPUTS:
        raise ApiError(
            400,
            "'$.input' is invalid. Please check the API reference: "
            "https://platform.openai.com/docs/api-reference.",
        )
    if tokens > MAX_TOKENS:
        raise ApiError(
            400,
            f"Requested {tokens} tokens, max {MAX_TOKENS} tokens per request",
            "max_tokens_per_request",
            code="max_tokens_per_request",
        )


def vector(item: Item, model: str, seed: int, dims: int) -> np.ndarray:
    """A unit vector determined by the input, the model and the seed."""
    raw = item if isinstance(item, str) else ",".join(map(str, item))
    digest = hashlib.blake2b(f"{model}\x00{raw}".encode(), digest_size=8).digest()
    rng = np.random.default_rng([seed, int.from_bytes(digest, "little")])
    vec = rng.standard_normal(dims).astype(np.float32)
    vec /= np.float32(np.linalg.norm(vec) or 1.0)
    return vec.astype("<f4")


def _dumps(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def is_small(n_items: int, dims: int) -> bool:
    return n_items * dims <= SMALL_FLOATS


async def body_pieces(
    items: Sequence[Item], model: str, seed: int, dims: int, fmt: str, tokens: int
) -> AsyncIterator[bytes]:
    """The JSON body (the same bytes as one `json.dumps` of it) in pieces."""
    buf = bytearray(b'{"object":"list","data":[')
    t0 = time.perf_counter()
    for i, item in enumerate(items):
        vec = vector(item, model, seed, dims)
        emb = base64.b64encode(vec.tobytes()).decode() if fmt == "base64" else vec.tolist()
        if i:
            buf += b","
        buf += _dumps({"object": "embedding", "index": i, "embedding": emb})
        if len(buf) >= PIECE_BYTES:
            yield bytes(buf)
            buf.clear()
        if time.perf_counter() - t0 > SLICE_S:
            await asyncio.sleep(0)  # let the decode loops and other requests run
            t0 = time.perf_counter()
    usage = _dumps({"prompt_tokens": tokens, "total_tokens": tokens})
    buf += b'],"model":' + _dumps(model) + b',"usage":' + usage + b"}"
    yield bytes(buf)
