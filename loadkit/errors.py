"""The one exception type for a user's mistake.

A user's mistake (bad YAML, unknown key, unreachable target, missing API key) is one line
on stderr and exit code 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake the user can fix; `str()` is the whole message, without the `error: ` prefix."""

    exit_code = 2
