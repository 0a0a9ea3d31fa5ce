"""The FreeSWITCH receiver's HTTP answers, with a stand-in for Kafka (the real one is in
tests/integration/test_ingest_freeswitch.py): 200 only after the acknowledgement, 400 naming
the field, 401 for wrong credentials, 413 for oversized posts, 503 when Kafka does not
acknowledge; never a 500, never a number or a secret in a log line."""

from __future__ import annotations

import base64
import logging
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from cdrstream.ingest.freeswitch_cdr import MAX_POST_BYTES, FreeswitchConfig
from cdrstream.ingest.freeswitch_receiver import create_receiver_app, credentials_check
from cdrstream.ingest.producer import Unavailable
from tests.unit.test_ingest_freeswitch import leg, outbound_leg

SECRET = "fs-user:Very-S3cret-pw"
AUTH = {"Authorization": "Basic " + base64.b64encode(SECRET.encode()).decode()}


class FakeProducer:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.down = False
        self.broken = False
        self.refused: str | None = None

    async def send_event(self, event: dict[str, Any]) -> None:
        if self.broken:
            raise RuntimeError("a bug")
        if self.down:
            raise Unavailable("KafkaTimeoutError")
        self.events.append(event)

    async def ready(self) -> bool:
        return not self.down


@pytest.fixture
async def fake() -> FakeProducer:
    return FakeProducer()


@pytest.fixture
async def client(fake: FakeProducer) -> AsyncIterator[TestClient]:
    app = create_receiver_app(fake, FreeswitchConfig(), credentials=SECRET)  # type: ignore[arg-type]
    async with TestClient(TestServer(app)) as test_client:
        yield test_client


async def post(client: TestClient, document: Any, headers: dict[str, str] | None = None) -> Any:
    body = document if isinstance(document, bytes) else orjson.dumps(document)
    return await client.post(
        "/freeswitch?uuid=8f6c1e2a",
        data=body,
        headers={"Content-Type": "application/json", **(AUTH if headers is None else headers)},
    )


async def test_accepted_only_after_kafka_acknowledged(
    client: TestClient, fake: FakeProducer
) -> None:
    answer = await post(client, leg())
    assert answer.status == 200
    body = await answer.json()
    assert body["status"] == "accepted"
    assert [e["event_id"] for e in fake.events] == [body["event_id"]]


async def test_a_leg_that_is_not_pstn_is_answered_and_skipped(
    client: TestClient, fake: FakeProducer
) -> None:
    answer = await post(client, leg(profile_name="internal"))
    assert answer.status == 200
    assert await answer.json() == {"status": "skipped", "reason": "not_pstn_leg"}
    assert fake.events == []


async def test_kafka_away_is_503_with_retry_after(client: TestClient, fake: FakeProducer) -> None:
    fake.down = True
    answer = await post(client, outbound_leg())
    assert answer.status == 503
    assert answer.headers["Retry-After"] == "5"
    assert answer.headers["Content-Type"].startswith("application/problem+json")
    assert not (await client.get("/readyz")).ok


async def test_a_bug_is_never_a_500(client: TestClient, fake: FakeProducer) -> None:
    fake.broken = True
    assert (await post(client, leg())).status == 503


async def test_bad_post_is_400_naming_the_field(client: TestClient) -> None:
    document = leg()
    document["variables"]["start_uepoch"] = "yesterday"
    answer = await post(client, document)
    assert answer.status == 400
    problem = await answer.json()
    assert problem["invalid_params"][0]["name"] == "variables.start_uepoch"
    assert problem["status"] == 400
    answer = await post(client, b"{not json")
    assert (await answer.json())["invalid_params"][0]["name"] == "cdr"


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Basic " + base64.b64encode(b"fs-user:wrong").decode()},
        {"Authorization": "Basic !!!"},
        {"Authorization": "Bearer " + base64.b64encode(SECRET.encode()).decode()},
    ],
)
async def test_wrong_or_missing_credentials_are_401(
    client: TestClient, fake: FakeProducer, headers: dict[str, str]
) -> None:
    answer = await post(client, leg(), headers)
    assert answer.status == 401
    assert answer.headers["WWW-Authenticate"].startswith("Basic ")
    assert fake.events == []


async def test_oversized_posts_are_413(client: TestClient) -> None:
    answer = await post(client, b"x" * (MAX_POST_BYTES + 1))
    assert answer.status == 413


async def test_health_and_metrics(client: TestClient) -> None:
    assert (await client.get("/healthz")).status == 200
    assert (await client.get("/readyz")).status == 200
    await post(client, leg())
    text = await (await client.get("/metrics")).text()
    assert 'cdrstream_ingest_cdrs_total{result="produced",source="freeswitch"}' in text
    assert (await client.get("/nowhere")).status == 404
    assert (await client.get("/freeswitch")).status == 405


async def test_logs_never_hold_numbers_or_the_secret(
    client: TestClient, fake: FakeProducer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await post(client, leg())
    bad = leg()
    bad["variables"]["end_uepoch"] = "0x"
    await post(client, bad)
    await post(client, leg(), {"Authorization": "Basic " + base64.b64encode(b"a:b").decode()})
    fake.down = True
    await post(client, leg())
    text = "\n".join(r.getMessage() + str(r.__dict__) for r in caplog.records)
    for secret in ("+31612345678", "+31201234567", "Very-S3cret-pw", "0612345678"):
        assert secret not in text


def test_credentials_check() -> None:
    check = credentials_check("u:p")
    assert check("Basic " + base64.b64encode(b"u:p").decode())
    assert check("basic " + base64.b64encode(b"u:p").decode())
    assert not check("Basic " + base64.b64encode(b"u:q").decode())
    assert not check(None)
    assert credentials_check("")(None)
