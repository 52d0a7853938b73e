"""Signed download tokens and API keys never reach the server's log.

uvicorn logs each request line as sent, so `/files/<token>/...` paths and `?api_key=` query
strings used to be written to the access log. A real `trainhub server` at DEBUG level serves a
whole session (weights, tus, datasets, covers, every download link, keys in query strings);
then its output holds none of the keys or tokens, and the access log still shows the requests.
"""

from pathlib import Path

import pytest

from tests.security.hubflow import run_flow
from tests.servers import start_server
from trainhub.server.accesslog import redact

pytestmark = pytest.mark.e2e

KEY = "ul0123456789abcdef0123456789abcdef01234567"
TOKEN = "1780000000.Ab3dEf6hIj9kLm2nOp5q.Zm9vYmFyYmF6cXV4cXV1eHF1dXpxdXV4cXV1enF1dXo"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (
            f'"GET /files/{TOKEN}/Ab3dEf6hIj9kLm2nOp5q/best.pt/x-best.pt HTTP/1.1" 200',
            '"GET /files/[redacted]/Ab3dEf6hIj9kLm2nOp5q/best.pt/x-best.pt HTTP/1.1" 200',
        ),
        (
            f"GET /v1/models?api_key={KEY}&public=true",
            "GET /v1/models?api_key=[redacted]&public=true",
        ),
        (
            "GET /x?page=2&access_token=abc&Signature=s1",
            "GET /x?page=2&access_token=[redacted]&Signature=[redacted]",
        ),
        (
            "GET /x?api%5Fkey=abc;sessionid=9 HTTP/1.1",
            "GET /x?api%5Fkey=[redacted];sessionid=[redacted] HTTP/1.1",
        ),
        (
            f"key {KEY.upper()} and token {TOKEN} in prose",
            "key [redacted] and token [redacted] in prose",
        ),
        (f"GET /v1/keys/ul_{KEY[2:]}", "GET /v1/keys/[redacted]"),
        (
            '"PUT /api/uploads/Ab3dEf6hIj9kLm2nOp5q/1780000000.Zm9vYmFy-_x HTTP/1.1" 200',
            '"PUT /api/uploads/Ab3dEf6hIj9kLm2nOp5q/[redacted] HTTP/1.1" 200',
        ),
        (
            f'"GET /api/datasets/ndjson/{TOKEN}/Ab3dEf6hIj9kLm2nOp5q/shapes-1a2b3c4d.ndjson"',
            '"GET /api/datasets/ndjson/[redacted]/Ab3dEf6hIj9kLm2nOp5q/shapes-1a2b3c4d.ndjson"',
        ),
        (
            "GET /v1/models?limit=20&after=Ab3dEf6hIj9kLm2nOp5q",
            "GET /v1/models?limit=20&after=Ab3dEf6hIj9kLm2nOp5q",
        ),
    ],
)
def test_redact_removes_tokens_keys_and_secret_query_values(line: str, expected: str) -> None:
    assert redact(line) == expected


def test_the_server_log_holds_no_key_and_no_download_token(tmp_path: Path) -> None:
    with start_server(tmp_path, extra_env={"TRAINHUB_LOG_LEVEL": "DEBUG"}) as hub:
        flow = run_flow(hub)
        log = hub.log()
    assert len(flow.tokens()) == 4
    secrets = {"alice's key": hub.keys["alice"], "bob's key": hub.keys["bob"]}
    secrets |= {f"token {i}": token for i, token in enumerate(flow.tokens())}
    leaked = [name for name, secret in secrets.items() if secret in log]
    assert not leaked, f"{leaked} in the server log:\n{log[-20_000:]}"
    assert '"GET /files/[redacted]/' in log  # the downloads are still logged
    assert '"HEAD /files/[redacted]/' in log
    assert "/v1/models?api_key=[redacted]" in log
    assert "PATCH /v1/uploads/" in log
