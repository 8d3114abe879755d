"""The proxy in front of an upstream over TLS (as for a real provider): a local HTTPS server
with a self-signed certificate the test trusts through SSL_CERT_FILE."""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from pathlib import Path

import openai
import pytest

from loadkit.chaos.control_client import running_proxy
from loadkit.serving.launch import running_server

SERVER = textwrap.dedent(
    """
    import asyncio, ssl, sys
    from aiohttp import web

    async def chat(request):
        await request.read()
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "x-up": "tls"})
        await resp.prepare(request)
        for i in range(5):
            await resp.write(
                b'data: {"id":"c","object":"chat.completion.chunk","created":1,'
                b'"model":"m","choices":[{"index":0,"delta":{"content":"w%d "},'
                b'"finish_reason":null}]}\\n\\n' % i
            )
            await asyncio.sleep(0.01)
        await resp.write(b"data: [DONE]\\n\\n")
        await resp.write_eof()
        return resp

    async def health(request):
        return web.json_response({"status": "ok"})

    async def main():
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(sys.argv[1], sys.argv[2])
        app = web.Application()
        app.router.add_post("/v1/chat/completions", chat)
        app.router.add_get("/health", health)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ctx)
        await site.start()
        print(f"https://127.0.0.1:{runner.addresses[0][1]}", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())
    """
)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl CLI for a cert")
def test_streams_pass_through_a_tls_upstream_and_faults_apply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    (tmp_path / "tls_server.py").write_text(SERVER)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # the proxy (and urllib) trust it
    with running_server(
        "tls upstream", ["tls_server", str(cert), str(key)], env={"PYTHONPATH": str(tmp_path)}
    ) as up:
        assert up.url.startswith("https://")
        with running_proxy(up.url) as proxy:
            client = openai.OpenAI(base_url=proxy.url + "/v1", api_key="k", max_retries=0)
            raw = client.chat.completions.with_raw_response.create(
                model="m", messages=[{"role": "user", "content": "hi"}], stream=True
            )
            assert raw.headers["x-up"] == "tls"
            texts = [c.choices[0].delta.content for c in raw.parse() if c.choices]
            assert texts == ["w0 ", "w1 ", "w2 ", "w3 ", "w4 "]
            cut = client.chat.completions.create(
                model="m",
                messages=[{"role": "user", "content": "hi"}],
                stream=True,
                extra_headers={"x-loadkit-chaos": "cut_after_tokens=2"},
            )
            assert [c.choices[0].delta.content for c in cut if c.choices] == ["w0 ", "w1 "]
