"""The web page's live switch and daily chart in headless Chromium, against the real thing:
events produced to Kafka, turned into records by a `cdrstream worker`, announced by its
write script and streamed by a `cdrstream api` to the page.

No timed assertions: waits are bounded only to turn a hang into a failure. How long a call
took from its event to its row is printed (``-s``), not asserted; ``cdrstream bench``
measures it (``live_ms``).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import orjson
import pytest
from playwright.async_api import Browser, Page, Route, expect

from cdrstream.access.access_store import issue_token
from cdrstream.core.clock import DAY_MS, now_ms
from cdrstream.core.masking import mask_number
from cdrstream.core.outcome import Policy, decide
from cdrstream.core.record import CallRecord, record_id
from cdrstream.core.summary import day_date, local_day
from cdrstream.settings import Settings, load_settings
from cdrstream.simulation.calls import valid_event
from cdrstream.stack.kafka import KafkaNode
from cdrstream.stack.processes import free_port
from cdrstream.stack.redis_server import RedisNode
from cdrstream.stack.roles import RoleProcess, settings_env
from tests.integration.pipeline_helpers import create_topics, produce, start_worker

pytestmark = [pytest.mark.browser, pytest.mark.integration]

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
SUFFIX = uuid.uuid4().hex[:6]
LIVE_TENANT = f"livepage-{SUFFIX}"
CHART_TENANT = f"chart-{SUFFIX}"
WAIT_MS = 30_000


@dataclass
class Stack:
    base: str
    settings: Settings
    token: str
    masked_token: str
    api: RoleProcess
    work: Path

    def restart_api(self) -> None:
        self.api.stop()
        self.api.start().wait_http(f"{self.base}/healthz", timeout_s=60)


@pytest.fixture(scope="module")
def stack(
    redis_node: RedisNode, kafka_node: KafkaNode, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    work = tmp_path_factory.mktemp("live-page")
    settings = replace(
        load_settings({}),
        redis_url=redis_node.url,
        kafka_bootstrap=kafka_node.bootstrap,
        topic=f"cdr.call-ended.{SUFFIX}",
        dlq_topic=f"cdr.call-ended.{SUFFIX}.dlq",
        consumer_group=f"cdrstream-{SUFFIX}",
        topic_partitions=3,
        worker_port=free_port(),
        api_port=free_port(),
        api_bind="127.0.0.1",
        access_file=str(work / "access.json"),
        cursor_secret="live-page-secret",
    )
    create_topics(settings)
    token, _ = issue_token(
        settings.access_file,
        partner="page-partner",
        tenants=[LIVE_TENANT, CHART_TENANT],
        airtime_reseller=True,
    )
    masked, _ = issue_token(
        settings.access_file,
        partner="page-noc",
        tenants=[LIVE_TENANT],
        airtime_reseller=True,
        masked_numbers=True,
    )
    worker = start_worker(settings, work / "worker.log")
    api = RoleProcess(["api"], env=settings_env(settings), log_file=work / "api.log")
    base = f"http://127.0.0.1:{settings.api_port}"
    try:
        api.start().wait_http(f"{base}/healthz", timeout_s=60)
        # Consuming before any test produces, and stopped only then: a worker stopped while
        # Faust still starts once exited by SIGSEGV.
        worker.wait_http(f"http://127.0.0.1:{settings.worker_port}/readyz", timeout_s=120)
        yield Stack(base, settings, token, masked, api, work)
    finally:
        codes = {p.argv[0]: p.stop() for p in (api, worker)}
    assert codes == {"api": 0, "worker": 0}, api.log_tail() + "\n" + worker.log_tail()


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(timezone_id="America/New_York", locale="en-US")
    tab = await context.new_page()
    yield tab
    await context.close()


async def open_page(p: Page, stack: Stack, tenant: str, token: str) -> None:
    await p.goto(f"{stack.base}/tenants/{tenant}")
    await p.fill("#token", token)
    await p.click("#token-use")


_rng = random.Random(5)


async def hang_up(stack: Stack, direction: str) -> tuple[CallRecord, float]:
    """A call that ends now, produced to Kafka; its record as the rules make it, and when
    it was produced (perf_counter)."""
    now = now_ms()
    while True:
        event = valid_event(
            _rng,
            LIVE_TENANT,
            now,
            started_at=now - 65_000,
            answered_at=now - 60_000,
            ended_at=now,
            duration=60,
            call_id=f"live-{uuid.uuid4().hex}",
            event_id=f"ev-{uuid.uuid4().hex}",
        )
        value = orjson.dumps(event)
        decision = decide(value, now, Policy(retention_ms=stack.settings.retention_ms))
        record = decision.record
        if decision.outcome == "stored" and record is not None and record.direction == direction:
            break
    produced = time.perf_counter()
    await produce(stack.settings, [(LIVE_TENANT, value)])
    return record, produced


def row(p: Page, record: CallRecord):  # type: ignore[no-untyped-def]
    return p.locator(f'#rows tr[data-id="{record.id}"]')


async def test_a_call_appears_live_marked_at_the_top_and_the_page_reconnects(
    stack: Stack, page: Page
) -> None:
    p = page
    await open_page(p, stack, LIVE_TENANT, stack.token)
    await expect(p.locator("#status")).not_to_have_text("Loading…", timeout=WAIT_MS)
    await p.check("#live")
    await expect(p.locator("#live-state")).to_have_text("live", timeout=WAIT_MS)

    first, produced = await hang_up(stack, "outbound")
    new_row = row(p, first)
    await expect(new_row).to_have_class("new", timeout=WAIT_MS)
    print(f"\nhang-up -> row on the page: {(time.perf_counter() - produced) * 1000:.0f} ms")
    await expect(p.locator("#rows tr").first).to_have_attribute("data-id", first.id)
    cells = await new_row.locator("td").all_text_contents()
    assert cells[1:3] == [first.source, first.destination]
    await expect(new_row).not_to_have_class("new", timeout=WAIT_MS)  # marked for a while

    # Under the active filters: outbound only; an inbound call is not shown.
    await p.select_option("#f-direction", "outbound")
    await p.click("#apply")
    await expect(p.locator("#live-state")).to_have_text("live", timeout=WAIT_MS)
    inbound, _ = await hang_up(stack, "inbound")
    outbound, _ = await hang_up(stack, "outbound")
    await expect(row(p, outbound)).to_be_visible(timeout=WAIT_MS)
    assert await row(p, inbound).count() == 0

    # The API restarts: the page reconnects by itself and misses nothing.
    stack.api.stop()
    await expect(p.locator("#live-state")).to_have_text("reconnecting…", timeout=WAIT_MS)
    during, _ = await hang_up(stack, "outbound")
    stack.restart_api()
    await expect(p.locator("#live-state")).to_have_text("live", timeout=WAIT_MS)
    await expect(row(p, during)).to_be_visible(timeout=WAIT_MS)
    after, _ = await hang_up(stack, "outbound")
    await expect(row(p, after)).to_have_class("new", timeout=WAIT_MS)
    await expect(p.locator("#rows tr").first).to_have_attribute("data-id", after.id)
    ids = await p.eval_on_selector_all("#rows tr", "rows => rows.map(r => r.dataset.id)")
    assert len(ids) == len(set(ids))  # nothing twice

    # Switched off: nothing more comes.
    await p.uncheck("#live")
    await expect(p.locator("#live-state")).to_have_text("")


async def test_a_masked_token_sees_live_calls_masked(stack: Stack, page: Page) -> None:
    p = page
    await open_page(p, stack, LIVE_TENANT, stack.masked_token)
    await p.check("#live")
    await expect(p.locator("#live-state")).to_have_text("live", timeout=WAIT_MS)
    call, _ = await hang_up(stack, "inbound")
    await expect(row(p, call)).to_be_visible(timeout=WAIT_MS)
    cells = await row(p, call).locator("td").all_text_contents()
    assert cells[1:3] == [mask_number(call.source), mask_number(call.destination)]
    html = await p.content()
    assert call.source not in html and call.source_raw not in html


async def test_a_call_announced_while_the_list_reloads_stays_on_the_page(
    stack: Stack, page: Page
) -> None:
    """The stream's `ready` reloads the list. Its answer is held back (as a slow network
    would) until a call announced after the list was read is on the page: the late list
    must not wipe that call away."""
    p = page
    await open_page(p, stack, LIVE_TENANT, stack.token)
    await expect(p.locator("#status")).not_to_have_text("Loading…", timeout=WAIT_MS)

    list_read = asyncio.Event()
    release = asyncio.Event()
    list_path = f"/v1/tenants/{LIVE_TENANT}/cdrs"

    async def hold_the_list(route: Route) -> None:
        response = await route.fetch()  # read now, before the call is stored
        list_read.set()
        await release.wait()
        await route.fulfill(response=response)

    await p.route(lambda url: urlsplit(url).path == list_path, hold_the_list)
    await p.check("#live")
    await expect(p.locator("#live-state")).to_have_text("live", timeout=WAIT_MS)
    await asyncio.wait_for(list_read.wait(), WAIT_MS / 1000)
    call, _ = await hang_up(stack, "inbound")
    await expect(row(p, call)).to_be_visible(timeout=WAIT_MS)

    release.set()
    await expect(p.locator("#status")).not_to_have_text("Loading…", timeout=WAIT_MS)
    await expect(row(p, call)).to_be_visible()
    ids = await p.eval_on_selector_all("#rows tr", "rows => rows.map(r => r.dataset.id)")
    assert ids.count(call.id) == 1
    await p.unroute_all()


# ------------------------------------------------------------------------------- the chart


def chart_record(n: int, started: int) -> CallRecord:
    inbound = n % 3 == 0
    answered = n % 4 != 0
    duration = 30 + n * 7 if answered else 0
    return CallRecord(
        id=record_id(CHART_TENANT, f"chart-{n}"),
        tenant_id=CHART_TENANT,
        call_id=f"chart-{n}",
        started_at_ms=started,
        answered_at_ms=started + 2_000 if answered else None,
        ended_at_ms=started + 2_000 + duration * 1000,
        duration=duration,
        source=f"+3120{n:07d}" if inbound else "+31850001111",
        source_raw="x",
        destination="+31850001111" if inbound else f"+3161{n:07d}",
        destination_raw="y",
        extension="0" if inbound else "201",
        direction="inbound" if inbound else "outbound",
        disposition="answered" if answered else "no_answer",
    )


async def test_the_chart_shows_calls_per_day_hover_figures_and_filters_on_click(
    stack: Stack, page: Page
) -> None:
    from cdrstream.store.connection import connect
    from cdrstream.store.writer import RecordWriter

    now = now_ms()
    records = [chart_record(n, now - 3 * DAY_MS - n * 41 * 60_000) for n in range(90)]
    redis = connect(stack.settings)
    try:
        await RecordWriter(redis, retention_ms=stack.settings.retention_ms).write_batch(
            records, now
        )
    finally:
        await redis.aclose()
    by_day: dict[str, list[CallRecord]] = {}
    for r in records:
        day = day_date(local_day(r.started_at_ms, AMSTERDAM)).isoformat()
        by_day.setdefault(day, []).append(r)
    date, calls = max(by_day.items(), key=lambda item: len(item[1]))

    p = page
    await open_page(p, stack, CHART_TENANT, stack.token)
    chart = p.locator("#chart svg")
    await expect(chart).to_be_visible(timeout=WAIT_MS)
    assert await p.locator("#chart g.day-group").count() >= 29  # every day of the window
    group = p.locator(f'#chart g.day-group[data-date="{date}"]')
    inbound = [r for r in calls if r.direction == "inbound"]
    outbound = [r for r in calls if r.direction == "outbound"]
    bars = await group.locator("rect.bar").evaluate_all(
        "bars => bars.map(b => [b.classList[1], +b.dataset.calls])"
    )
    assert bars == [["inbound", len(inbound)], ["outbound", len(outbound)]]

    # The day is hovered and clicked where the minutes line crosses it (its dot): the line
    # drawn over the days must not take the pointer from the day under it.
    under_the_line = await p.evaluate(
        """date => {
            const groups = [...document.querySelectorAll('#chart g.day-group')];
            const i = groups.findIndex(g => g.dataset.date === date);
            const dot = document.querySelectorAll('#chart circle.dot')[i].getBoundingClientRect();
            const box = groups[i].getBoundingClientRect();
            const day = groups[i].querySelector('rect.day').getBoundingClientRect();
            // The busiest day's dot sits on the day's top edge: a pixel and a half inside
            // the day, still under the dot (radius 2.5).
            const y = Math.max(dot.y + dot.height / 2, day.y + 1.5);
            return {x: dot.x + dot.width / 2 - box.x, y: y - box.y};
        }""",
        date,
    )
    await group.hover(position=under_the_line, timeout=WAIT_MS)
    tip = p.locator("#chart-tip")
    await expect(tip).to_be_visible()
    text = await tip.text_content()
    assert text is not None
    answered_in = sum(1 for r in inbound if r.answered_at_ms is not None)
    assert text.startswith(date)
    assert f"inbound: {len(inbound)} calls, {answered_in} answered" in text
    assert f"outbound: {len(outbound)} calls" in text
    minutes = sum(r.duration for r in calls if r.answered_at_ms is not None) / 60
    assert f"minutes of talk: {minutes:.1f}" in text
    await p.mouse.move(0, 0)
    await expect(tip).to_be_hidden()

    await group.click(position=under_the_line, timeout=WAIT_MS)
    rows = p.locator("#rows tr")
    await expect(rows).to_have_count(len(calls), timeout=WAIT_MS)
    assert await p.input_value("#f-from") == f"{date}T00:00"  # the browser drops ":00"
    assert await p.input_value("#f-to") == f"{date}T23:59:59"
    shown = await p.eval_on_selector_all("#rows tr", "rows => rows.map(r => r.dataset.id)")
    assert sorted(shown) == sorted(r.id for r in calls)
    await expect(p.locator(f'#chart g.day-group[data-date="{date}"] rect.day')).to_have_class(
        "day selected"
    )


async def test_chart_and_live_need_a_token(stack: Stack, page: Page) -> None:
    p = page
    await p.goto(f"{stack.base}/tenants/{CHART_TENANT}")
    await expect(p.locator("#status")).to_contain_text("token missing or invalid")
    await expect(p.locator("#summary")).to_be_hidden()
