"""The filing route reads its headers from one map of the request's headers: the same values starlette's
``Headers.get`` gives (the first of a repeated header), and the API key from either security scheme."""

import pytest
from starlette.requests import Request

from services.common.http import header_map
from services.intake.entrypoints.http import _api_key


def request(*headers: tuple[bytes, bytes]) -> Request:
    return Request({"type": "http", "method": "POST", "path": "/", "headers": list(headers)})


@pytest.mark.parametrize(
    "headers",
    [
        (),
        ((b"authorization", b"Bearer rk_a_b"), (b"content-type", b"application/json")),
        ((b"idempotency-key", b"first"), (b"idempotency-key", b"second"), (b"x-api-key", b"k\xe9")),
        ((b"content-length", b"12"), (b"authorization", b"Basic x"), (b"authorization", b"Bearer later")),
    ],
)
def test_the_map_answers_as_starlette_headers(headers: tuple[tuple[bytes, bytes], ...]) -> None:
    r = request(*headers)
    found = header_map(r)
    for name in ("authorization", "x-api-key", "idempotency-key", "content-type", "content-length", "absent"):
        value = found.get(name.encode())
        assert (None if value is None else value.decode("latin-1")) == r.headers.get(name)


@pytest.mark.parametrize(
    ("headers", "key"),
    [
        (((b"authorization", b"Bearer  rk_1_s "),), "rk_1_s"),
        (((b"authorization", b"bearer rk_1_s"),), "rk_1_s"),
        (((b"x-api-key", b"rk_2_s"),), "rk_2_s"),
        (((b"authorization", b"Bearer rk_1_s"), (b"x-api-key", b"rk_2_s")), "rk_1_s"),
        (((b"authorization", b"Basic abc"), (b"x-api-key", b"rk_2_s")), "rk_2_s"),
        (((b"authorization", b"Basic abc"),), None),
        ((), None),
    ],
)
def test_the_api_key_comes_from_bearer_or_x_api_key(headers: tuple[tuple[bytes, bytes], ...], key: str | None) -> None:
    assert _api_key(header_map(request(*headers))) == key
