"""3,000 generated bad deliveries, interleaved with good ones, against the real server.

Hypothesis draws the bad ones: signed payloads whose fields have the wrong shapes, types,
encodings or sizes, and requests broken at the HTTP level (signatures, headers, bodies). Each
batch goes over raw loopback sockets to a fresh server. What must hold, whatever is drawn:
every good delivery is handled exactly once, every bad one is refused with a 4xx or ends
`done`/`failed` (never stuck, never a 5xx), and the worker is alive at the end.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import tempfile
import uuid
from pathlib import Path

from gidgethub.routing import Router
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.config import Settings
from bot.server import serving
from bot.server.app import create_app
from bot.server.runtime import Runtime
from bot.store import deliveries as deliveries_db
from tests.support import rawhttp
from tests.support.webhooks import SECRET, module

ROOT = Path(__file__).resolve().parents[2]
GOOD = json.loads((ROOT / "tests" / "fixtures" / "issue_comment.created.json").read_text())
#: Fields the dispatcher and handlers read first; a wrong type here must fail the delivery.
READ_FIELDS = ("repository", "issue", "comment", "installation", "sender", "action")

scalars = (
    st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    st.none() | scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
#: Anything but an object (and, for a field handlers read, anything but null too).
not_an_object = scalars | st.lists(json_values, max_size=4)


def _sign(body: bytes) -> bytes:
    return ("sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()).encode()


def _headers(event: bytes, body: bytes, **override: bytes) -> list[tuple[bytes, bytes]]:
    base = {
        b"X-GitHub-Event": event,
        b"X-GitHub-Delivery": str(uuid.uuid4()).encode(),
        b"X-Hub-Signature-256": _sign(body),
        b"Content-Type": b"application/json",
    }
    base.update({k.replace("_", "-").encode(): v for k, v in override.items()})
    return [(k, v) for k, v in base.items() if v != b""]


@st.composite
def wrong_shape(draw) -> tuple[list[tuple[bytes, bytes]], bytes, bool]:
    """A real payload with one of the fields handlers read replaced by another type.

    It must fail when that field is one its event's handlers read (`issue` is nothing to a
    push).
    """
    data = json.loads(json.dumps(GOOD))
    field = draw(st.sampled_from(READ_FIELDS))
    value = draw(not_an_object)
    if field == "action" and isinstance(value, str):
        value = [value]
    data[field] = value
    body = json.dumps(data).encode()
    event = draw(st.sampled_from([b"issue_comment", b"push", b"pull_request"]))
    read = field not in ("issue", "comment") or event == b"issue_comment"
    return _headers(event, body), body, read


@st.composite
def random_payload(draw) -> tuple[list[tuple[bytes, bytes]], bytes, bool]:
    """A signed JSON object of random content: handled or failed, but never stuck."""
    data = draw(st.dictionaries(st.sampled_from([*READ_FIELDS, "x", "ref"]), json_values))
    body = json.dumps(data).encode()
    event = draw(st.sampled_from([b"issue_comment", b"push", b"pull_request", b"ping"]))
    return _headers(event, body), body, False


@st.composite
def broken_request(draw) -> tuple[list[tuple[bytes, bytes]], bytes, bool]:
    """Broken before the payload is read: signature, headers, encoding, nesting, size."""
    body = json.dumps(GOOD).encode()
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return _headers(b"issue_comment", body, X_Hub_Signature_256=b""), body, True
    if kind == 1:
        sha1 = hmac.new(SECRET.encode(), body, hashlib.sha1).hexdigest().encode()
        return _headers(b"issue_comment", body, X_Hub_Signature_256=b"sha1=" + sha1), body, True
    if kind == 2:
        junk = draw(st.binary(min_size=1, max_size=80))
        return (
            _headers(
                b"issue_comment",
                body,
                X_Hub_Signature_256=junk.replace(b"\r", b"").replace(b"\n", b""),
            ),
            body,
            True,
        )
    if kind == 3:
        # Not an event name GitHub could send: not lower-case ASCII words.
        junk = draw(st.binary(max_size=40)).replace(b"\r", b"").replace(b"\n", b"")
        return _headers(b"-" + junk, body), body, True
    if kind == 4:
        junk = draw(st.binary(max_size=200)).replace(b"\r", b"").replace(b"\n", b"")
        return _headers(b"issue_comment", body, X_GitHub_Delivery=b"\x7f" + junk), body, True
    if kind == 5:
        junk = draw(st.binary(max_size=2000))
        return _headers(b"issue_comment", junk), junk, True
    if kind == 6:
        depth = draw(st.integers(2000, 20000))
        deep = b'{"a": ' + b"[" * depth + b"]" * depth + b"}"
        return _headers(b"push", deep), deep, True
    if kind == 7:
        value = draw(st.none() | not_an_object)
        raw = json.dumps(value).encode()
        return _headers(b"push", raw), raw, True
    if kind == 8:
        big = draw(st.sampled_from([2**63, 2**64, -(2**63) - 1, 10**30]))
        data = {**GOOD, "installation": {"id": big}}
        raw = json.dumps(data).encode()
        return _headers(b"issue_comment", raw), raw, True
    text = draw(st.text(min_size=1, max_size=30))
    raw = b'{"action": "' + text.encode("utf-8", "surrogatepass") + b'\\ud800"}'
    return _headers(b"issue_comment", raw), raw, False


bad_requests = st.one_of(wrong_shape(), random_payload(), broken_request())


async def _exercise(batch: list[tuple[list[tuple[bytes, bytes]], bytes, bool]]) -> None:
    calls: list[str] = []
    router = Router()

    @router.register("issue_comment", action="created")
    async def count(event, gh, **_):
        if event.delivery_id.startswith("good-"):
            calls.append(event.delivery_id)

    with tempfile.TemporaryDirectory() as tmp:
        bot_settings = Settings(
            webhook_secret=SECRET,
            github_token="ghs_not_a_real_token",
            github_api_url="http://127.0.0.1:9",
            database=str(Path(tmp) / "bot.sqlite3"),
            retry_base_seconds=0.01,
            max_attempts=2,
        )
        runtime = Runtime(bot_settings, features=(module(router),))
        runner, url = await serving.start(create_app(bot_settings, runtime=runtime), "127.0.0.1", 0)
        host, port = url.removeprefix("http://").split(":")
        try:
            good_body = json.dumps(GOOD).encode()
            sends, sent = [], []
            goods = [f"good-{i}" for i in range(0, len(batch), 10)]
            for i, (headers, body, must_fail) in enumerate(batch):
                if i % 10 == 0:
                    good = _headers(
                        b"issue_comment", good_body, X_GitHub_Delivery=goods[i // 10].encode()
                    )
                    sends.append(rawhttp.post(host, int(port), good, good_body))
                    sent.append((None, False))
                delivery = dict(headers).get(b"X-GitHub-Delivery", b"").decode("latin-1")
                sends.append(rawhttp.post(host, int(port), headers, body))
                sent.append((delivery, must_fail))
            answers = await asyncio.gather(*sends)
            assert all(a.status and a.status < 500 for a in answers), [a.status for a in answers]
            async with asyncio.timeout(30):
                while await runtime.store.call(deliveries_db.queue_depth) or runtime.worker.busy:
                    await asyncio.sleep(0.02)
            stored = await runtime.store.call(
                lambda conn: deliveries_db.list_deliveries(conn, limit=10_000)
            )
            assert {d.status for d in stored} <= {"done", "failed"}  # nothing stuck
            by_id = {d.id: d for d in stored}
            assert sorted(calls) == sorted(goods)  # each good one handled, and only once
            for (delivery, must_fail), answer in zip(sent, answers, strict=True):
                if delivery is None:
                    continue
                if answer.status >= 400:
                    assert delivery not in by_id  # refused means not stored
                elif must_fail:
                    assert by_id[delivery].status == "failed", (delivery, answer)
            health = await rawhttp.send(
                host, int(port), b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            assert health.status == 200, health.body
        finally:
            await runner.cleanup()


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(batch=st.lists(bad_requests, min_size=30, max_size=30))
def test_bad_deliveries_never_stop_or_lose_the_good_ones(batch):
    asyncio.run(_exercise(batch))
