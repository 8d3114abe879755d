"""One join of base URL and API path, for the client, the chaos proxy and the start-up check."""

from __future__ import annotations

import pytest

from loadkit.apis.urls import api_path, api_url
from loadkit.chaos.upstream import Origin, build_request

FORMS = [
    ("http://h:8000", "/v1/chat/completions"),
    ("http://h:8000/", "/v1/chat/completions"),
    ("http://h:8000/v1", "/v1/chat/completions"),
    ("http://h:8000/v1/", "/v1/chat/completions"),
    ("http://h:8000/openai/v1", "/openai/v1/chat/completions"),
    ("http://h:8000/openai/v1/", "/openai/v1/chat/completions"),
    ("http://h:8000/openai", "/openai/v1/chat/completions"),
]


@pytest.mark.parametrize(("base", "path"), FORMS)
def test_every_documented_base_url_form_reaches_the_path_once(base: str, path: str) -> None:
    assert api_path(base, "/v1/chat/completions") == path
    assert api_url(base, "/v1/models") == "http://h:8000" + path.replace(
        "/chat/completions", "/models"
    )
    # the chaos proxy forwards the client's full API path to its upstream the same way
    request = build_request("POST", Origin.parse(base), "/v1/chat/completions", [], b"{}")
    assert request.startswith(f"POST {path} HTTP/1.1\r\n".encode())
