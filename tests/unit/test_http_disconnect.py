"""Shared HTTP edges: a client that leaves before its body arrives is not a server fault (no stack trace logged, no
5xx counted), and a repeated correlation id is read as every other header, the first."""

import logging

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict
from starlette.types import Message

from services.common.http import install, read_body
from services.common.metrics import HTTP_REQUESTS


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str


def app() -> FastAPI:
    api = FastAPI()
    install(api, "test-disconnect")

    @api.post("/things")
    async def things(request: Request) -> Response:
        await read_body(request, Body, 1024)
        return Response(status_code=204)

    return api


async def call(api: FastAPI, messages: list[Message], headers: tuple[tuple[bytes, bytes], ...] = ()) -> list[Message]:
    sent: list[Message] = []
    pending = list(messages)

    async def receive() -> Message:
        return pending.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/things",
        "raw_path": b"/things",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json"), (b"content-length", b"20"), *headers],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    await api(scope, receive, send)
    return sent


@pytest.mark.asyncio
async def test_a_client_gone_mid_body_is_logged_quietly_and_not_a_5xx(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    sent = await call(
        app(), [{"type": "http.request", "body": b'{"name": "ha', "more_body": True}, {"type": "http.disconnect"}]
    )
    assert sent[0]["type"] == "http.response.start"
    assert sent[0]["status"] == 499
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], "a disconnect is not a server error"
    assert any("client disconnected" in r.getMessage() for r in caplog.records)
    assert HTTP_REQUESTS.labels("test-disconnect", "/things", "499")._value.get() >= 1
    assert HTTP_REQUESTS.labels("test-disconnect", "/things", "500")._value.get() == 0


@pytest.mark.asyncio
async def test_a_whole_body_is_still_answered() -> None:
    sent = await call(app(), [{"type": "http.request", "body": b'{"name": "x"}', "more_body": False}])
    assert sent[0]["status"] == 204


@pytest.mark.asyncio
async def test_a_repeated_correlation_id_is_read_as_every_other_header_the_first() -> None:
    repeated = ((b"x-correlation-id", b"first-one"), (b"x-correlation-id", b"second-one"))
    sent = await call(app(), [{"type": "http.request", "body": b'{"name": "x"}', "more_body": False}], repeated)
    assert (b"x-correlation-id", b"first-one") in sent[0]["headers"]
