"""The optional token of loadkit's control APIs (the chaos proxy's `/chaos/*`, the mock's
`/admin/*`): one check, so both accept the same credentials the same way.
"""

from __future__ import annotations

import hmac

from aiohttp import web


def token_ok(request: web.Request, token: str, header: str) -> bool:
    """True when `Authorization: Bearer TOKEN` or `<header>: TOKEN` carries `token`.

    Compared in constant time, so response timing does not reveal how much of a guess matched.
    """
    auth = request.headers.get("authorization", "")
    given = auth[7:] if auth[:7].lower() == "bearer " else ""
    given = given or request.headers.get(header, "")
    return hmac.compare_digest(given.encode(), token.encode())
