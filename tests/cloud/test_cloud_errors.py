"""The cloud's catch-all on a real server: an unexpected error is a generic 500 in the
documented error shape, logged by type and traceback without its message, and the
kept-alive connection goes on serving."""

from __future__ import annotations

import http.client
import json
import logging
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from cloud_service.engines import Engine
from cloud_service.errors import ErrorBody
from cloud_service.settings import CloudSettings
from cloud_service.testing import RunningCloud
from tests.cloud.conftest import TOKEN

pytestmark = pytest.mark.slow  # the real model behind a real server

SECRET = "Alice's diagnosis is in this message"


class FailingChatEngineFake(Engine):
    """The real engine, except that generating fails unexpectedly (a bug planted so the
    catch-all has something to catch; nothing real fails on demand)."""

    name = "llamacpp"

    def __init__(self, real: Engine) -> None:
        super().__init__()
        self._real = real
        self.model_id = real.model_id
        self.vocab_size = real.vocab_size
        self.n_ctx = real.n_ctx

    def token_pieces(self):
        return self._real.token_pieces()

    def chat_prompt_tokens(self, system, user):
        return self._real.chat_prompt_tokens(system, user)

    def chat(self, *args, **kwargs):
        raise RuntimeError(SECRET)

    def stream_chat(self, *args, **kwargs):
        raise RuntimeError(SECRET)

    def score(self, key, tokens, n_out, top_k):
        return self._real.score(key, tokens, n_out, top_k)


@pytest.fixture
def failing_cloud(cloud_engine: Engine) -> Iterator[RunningCloud]:
    cloud = RunningCloud.start(CloudSettings(token=TOKEN), FailingChatEngineFake(cloud_engine))
    yield cloud
    cloud.stop()


def _post(conn: http.client.HTTPConnection, path: str, body: dict) -> http.client.HTTPResponse:
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    conn.request("POST", path, body=json.dumps(body), headers=headers)
    return conn.getresponse()


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/sketch", {"instruction": "Write about tea.", "max_tokens": 16}),
        ("/v1/chat/completions", {"model": "?", "messages": [{"role": "user", "content": "Hi"}]}),
    ],
)
def test_an_unexpected_error_is_a_500_and_the_connection_stays_usable(
    failing_cloud: RunningCloud, caplog: pytest.LogCaptureFixture, path: str, body: dict
) -> None:
    if path == "/v1/chat/completions":
        body["model"] = failing_cloud.engine.model_id
    address = urlsplit(failing_cloud.base_url)
    conn = http.client.HTTPConnection(address.hostname, address.port, timeout=30)
    with caplog.at_level(logging.ERROR):
        response = _post(conn, path, body)
        raw = response.read()
    assert response.status == 500
    assert ErrorBody.model_validate_json(raw).error.code == "internal_error"
    assert SECRET not in raw.decode() and "Traceback" not in raw.decode()
    assert response.getheader("connection") != "close"
    socket = conn.sock
    # The same kept-alive connection serves the next request.
    conn.request("GET", "/v1/info", headers={"Authorization": f"Bearer {TOKEN}"})
    info = conn.getresponse()
    assert info.status == 200 and json.loads(info.read())["model_id"]
    assert conn.sock is socket
    conn.close()
    assert "unexpected RuntimeError" in caplog.text  # the type and where, with a traceback
    assert SECRET not in caplog.text  # never the message
