"""The per-run prompt salt: cold prompt caches by default, shared prefixes kept.

A server keeps its prompt (prefix / KV) cache across runs, so a rerun with the same seed
would be served largely from it and look faster than it is. Every run therefore gets a
short salt derived from its run id, written at the start of the first user message of each
session (after the workload's system prefix). Inside the run the salt is the same for every
request, so what the workload shares on purpose stays shared: the system prefix, a
session's history (whose first message carries the salt) and anything built behind it; from
one run to the next the prompts differ right after the system prefix.

The salt replaces the first characters of the text rather than being added, so a prompt
keeps its planned size (4 characters per estimated token); a text too short for it gets it
in front. `prompt_cache: warm` gives an empty salt: prompts exactly as the seed makes them.
"""

from __future__ import annotations

import hashlib

SALT_CHARS = 10  # hex digits; the salted head is these plus a space (11 characters)


def run_salt(run_id: str) -> str:
    """The salt of a run: hex digits derived from its (random) run id."""
    return hashlib.blake2b(run_id.encode("utf-8"), digest_size=8).hexdigest()[:SALT_CHARS]


def salted(text: str, salt: str) -> str:
    """`text` starting with `salt` and a space, the same length when the text allows it."""
    if not salt:
        return text
    head = salt + " "
    if len(text) > len(head) + 1:
        return head + text[len(head) :]
    return head + text
