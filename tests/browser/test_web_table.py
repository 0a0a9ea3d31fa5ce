"""The CDR web page in headless Chromium (Debian's), in a browser zone other than the display zone.

The page is served by a real `cdrstream api` child process on the suite's Redis; records
with known times are written straight into Redis.
"""

from __future__ import annotations

import asyncio
import csv
import io
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from playwright.async_api import Browser, Page, expect

from cdrstream.access.access_store import issue_token
from cdrstream.api.csv_export import CSV_COLUMNS
from cdrstream.core.clock import DAY_MS, now_ms
from cdrstream.core.masking import MASK, mask_number
from cdrstream.core.record import CallRecord, record_id
from cdrstream.settings import Settings, load_settings
from cdrstream.stack.processes import free_port
from cdrstream.stack.redis_server import RedisNode
from cdrstream.stack.roles import RoleProcess, settings_env

pytestmark = [pytest.mark.browser, pytest.mark.integration]

AMSTERDAM = ZoneInfo("Europe/Amsterdam")
NEW_YORK = ZoneInfo("America/New_York")
SUFFIX = uuid.uuid4().hex[:6]
TENANT = f"web-{SUFFIX}"
OTHER = f"web-other-{SUFFIX}"
NOW_MS = now_ms()
# A fixed second (x.120 s), two days ago, so the expected strings are easy to compute.
NEWEST_MS = (NOW_MS - 2 * DAY_MS) // 1000 * 1000 + 120
TOTAL = 130  # more than one page of 100


def record(n: int) -> CallRecord:
    """Record n starts n*7 minutes before the newest; every third is inbound."""
    started = NEWEST_MS - n * 7 * 60_000
    inbound = n % 3 == 0
    pstn = f"+3120{n:07d}" if n % 2 else f"+3161{n:07d}"
    duration = 5 + n * 13
    return CallRecord(
        id=record_id(TENANT, f"web-call-{n}"),
        tenant_id=TENANT,
        call_id=f"web-call-{n}",
        started_at_ms=started,
        answered_at_ms=started + 3_000,
        ended_at_ms=started + 3_000 + duration * 1000,
        duration=duration,
        source=pstn if inbound else "+31850001111",
        source_raw=pstn,
        destination="+31850001111" if inbound else pstn,
        destination_raw=pstn,
        # extension 0 for inbound calls to a queue; one extension that is markup
        extension="0" if inbound else ("<b>x</b>" if n == 1 else "201"),
        direction="inbound" if inbound else "outbound",
        disposition="answered",
    )


RECORDS = [record(n) for n in range(TOTAL)]


def wall(ms: int, zone: ZoneInfo) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


def m_ss(seconds: int) -> str:
    return f"{seconds // 60}:{seconds % 60:02d}"


def row_texts(r: CallRecord) -> list[str]:
    return [
        wall(r.started_at_ms, AMSTERDAM),
        r.source,
        r.destination,
        m_ss(r.duration),
        r.extension,
        r.direction,
    ]


@dataclass
class Site:
    base: str
    token: str
    other_token: str
    masked_token: str
    settings: Settings


@pytest.fixture(scope="module")
def site(redis_node: RedisNode, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    work = tmp_path_factory.mktemp("web")
    settings = replace(
        load_settings({}),
        redis_url=redis_node.url,
        api_port=free_port(),
        api_bind="127.0.0.1",
        access_file=str(work / "access.json"),
        cursor_secret="browser-cursor-secret",
    )
    token, _ = issue_token(
        settings.access_file, partner="web-partner", tenants=[TENANT], airtime_reseller=True
    )
    other, _ = issue_token(
        settings.access_file, partner="web-other", tenants=[OTHER], airtime_reseller=True
    )
    masked, _ = issue_token(
        settings.access_file,
        partner="web-noc",
        tenants=[TENANT],
        airtime_reseller=True,
        masked_numbers=True,
    )
    process = RoleProcess(["api"], env=settings_env(settings), log_file=work / "api.log")
    process.start().wait_http(f"http://127.0.0.1:{settings.api_port}/healthz", timeout_s=60)
    yield Site(f"http://127.0.0.1:{settings.api_port}", token, other, masked, settings)
    assert process.stop() == 0, process.log_tail()


@pytest.fixture(scope="module")
async def loaded_site(site: Site) -> Site:
    from cdrstream.store.connection import connect
    from cdrstream.store.writer import RecordWriter

    redis = connect(site.settings)
    try:
        writer = RecordWriter(redis, retention_ms=site.settings.retention_ms)
        await writer.write_batch(RECORDS, now_ms())
    finally:
        await redis.aclose()
    return site


@pytest.fixture
async def page(browser: Browser) -> AsyncIterator[Page]:
    context = await browser.new_context(
        timezone_id="America/New_York", accept_downloads=True, locale="en-US"
    )
    tab = await context.new_page()
    yield tab
    await context.close()


async def open_with_token(p: Page, site: Site, token: str, tenant: str = TENANT) -> None:
    await p.goto(f"{site.base}/tenants/{tenant}")
    await p.fill("#token", token)
    await p.click("#token-use")


async def table(page: Page) -> list[list[str]]:
    return await page.eval_on_selector_all(
        "#rows tr", "rows => rows.map(r => [...r.cells].map(c => c.textContent))"
    )


async def test_table_rows_tooltip_filters_paging_and_csv(loaded_site: Site, page: Page) -> None:
    p = page
    await open_with_token(p, loaded_site, loaded_site.token)
    rows = p.locator("#rows tr")
    await expect(rows).to_have_count(100)

    # Header names the display zone; rows are newest first, times in Europe/Amsterdam.
    header = await p.text_content("#cdrs thead th")
    assert header == "Date/Time (CET/CEST)"
    shown = await table(p)
    assert shown[:3] == [row_texts(r) for r in RECORDS[:3]]
    assert shown[1][4] == "<b>x</b>"  # shown as text, never as markup
    assert await p.locator("#rows b").count() == 0

    # The tooltip shows the same instant in the browser's zone (New York).
    title = await rows.nth(0).locator("td").nth(0).get_attribute("title")
    assert title is not None
    assert wall(RECORDS[0].started_at_ms, NEW_YORK) in title
    assert "America/New_York" in title
    assert wall(RECORDS[0].started_at_ms, AMSTERDAM) != wall(RECORDS[0].started_at_ms, NEW_YORK)

    # Paging: next shows the rest, previous comes back.
    await p.click("#next")
    await expect(rows).to_have_count(TOTAL - 100)
    assert (await table(p))[0] == row_texts(RECORDS[100])
    await expect(p.locator("#next")).to_be_disabled()
    await p.click("#prev")
    await expect(rows).to_have_count(100)
    assert (await table(p))[0] == row_texts(RECORDS[0])

    # A filter changes the rows: inbound only.
    inbound = [r for r in RECORDS if r.direction == "inbound"]
    await p.select_option("#f-direction", "inbound")
    await p.click("#apply")
    await expect(rows).to_have_count(len(inbound))
    assert await table(p) == [row_texts(r) for r in inbound]

    # The number filter, typed the national way, on top.
    wanted = [r for r in inbound if r.source.startswith("+3120")]
    await p.fill("#f-number", "020")
    await p.click("#apply")
    await expect(rows).to_have_count(len(wanted))
    assert [row[1] for row in await table(p)] == [r.source for r in wanted]

    # The CSV download holds the filtered rows, with a header.
    async with p.expect_download() as info:
        await p.click("#csv")
    download = await info.value
    assert download.suggested_filename.startswith(f"cdrs-{TENANT}-")
    content = await asyncio.to_thread(Path(await download.path()).read_text, encoding="utf-8")
    lines = list(csv.reader(io.StringIO(content, newline="")))
    assert tuple(lines[0]) == CSV_COLUMNS
    assert len(lines) - 1 == len(wanted)
    assert [line[9] for line in lines[1:]] == ["'" + r.source for r in wanted]


async def test_time_filter_is_read_in_the_display_zone(loaded_site: Site, page: Page) -> None:
    p = page
    await open_with_token(p, loaded_site, loaded_site.token)
    rows = p.locator("#rows tr")
    await expect(rows).to_have_count(100)
    # From/To typed as Amsterdam wall times: the 3rd..5th newest calls.
    first, last = RECORDS[4], RECORDS[2]
    await p.fill("#f-from", wall(first.started_at_ms, AMSTERDAM).replace(" ", "T"))
    await p.fill("#f-to", wall(last.started_at_ms, AMSTERDAM).replace(" ", "T"))
    await p.click("#apply")
    await expect(rows).to_have_count(3)
    assert await table(p) == [row_texts(r) for r in RECORDS[2:5]]


async def test_empty_state_and_messages(loaded_site: Site, page: Page) -> None:
    p = page
    status = p.locator("#status")

    # Without a token, and with a wrong one: 401.
    await p.goto(f"{loaded_site.base}/tenants/{TENANT}")
    await expect(status).to_contain_text("token missing or invalid")
    await p.fill("#token", "cdrs_0123456789ab_" + "A" * 43)
    await p.click("#token-use")
    await expect(status).to_contain_text("token missing or invalid")

    # A valid token for another tenant: 403.
    await p.fill("#token", loaded_site.other_token)
    await p.click("#token-use")
    await expect(status).to_contain_text("this token may not read this tenant")

    # The right token; a number that is not one: the 400 shows next to the filter.
    await p.fill("#token", loaded_site.token)
    await p.click("#token-use")
    await expect(p.locator("#rows tr")).to_have_count(100)
    await p.fill("#f-number", "not a number")
    await p.click("#apply")
    await expect(p.locator('[data-error-for="number"]')).not_to_be_empty()

    # A period without calls: the empty state.
    await p.fill("#f-number", "+44")
    await p.click("#apply")
    await expect(p.locator("#empty")).to_be_visible()
    await expect(p.locator("#empty")).to_have_text("No calls in this period")
    await expect(p.locator('[data-error-for="number"]')).to_be_empty()

    # The token is kept for the tab only.
    stored = await p.evaluate("sessionStorage.getItem('cdrstream.token')")
    assert stored == loaded_site.token
    assert await p.evaluate("localStorage.length") == 0


async def test_a_masked_token_sees_masked_numbers_in_the_table_and_the_csv(
    loaded_site: Site, page: Page
) -> None:
    p = page
    await open_with_token(p, loaded_site, loaded_site.masked_token)
    rows = p.locator("#rows tr")
    await expect(rows).to_have_count(100)

    def masked_row(r: CallRecord) -> list[str]:
        texts = row_texts(r)
        return [texts[0], mask_number(r.source), mask_number(r.destination), *texts[3:]]

    shown = await table(p)
    assert shown == [masked_row(r) for r in RECORDS[:100]]
    assert shown[0][1] == f"+31 {MASK} {RECORDS[0].source[-4:]}"
    # Hovering a number says why there is no raw form, and holds none.
    title = await rows.nth(0).locator("td").nth(1).get_attribute("title")
    assert title is not None and "masked" in title
    html = await p.content()
    full = (
        {r.source for r in RECORDS}
        | {r.destination for r in RECORDS}
        | {r.source_raw for r in RECORDS}
    )
    assert [n for n in full if n in html or n[1:] in html] == []

    # The number filter takes a country code only; anything longer is shown as refused.
    await p.fill("#f-number", "020")
    await p.click("#apply")
    await expect(p.locator('[data-error-for="number"]')).to_contain_text("country code")
    await expect(rows).to_have_count(0)
    await p.fill("#f-number", "+31")
    await p.select_option("#f-direction", "inbound")
    await p.click("#apply")
    inbound = [r for r in RECORDS if r.direction == "inbound"]
    await expect(rows).to_have_count(len(inbound))
    await expect(p.locator('[data-error-for="number"]')).to_be_empty()

    # The CSV download: the same masked numbers, the raw columns empty, nothing in full.
    async with p.expect_download() as info:
        await p.click("#csv")
    download = await info.value
    content = await asyncio.to_thread(Path(await download.path()).read_text, encoding="utf-8")
    lines = list(csv.reader(io.StringIO(content, newline="")))
    assert tuple(lines[0]) == CSV_COLUMNS
    assert len(lines) - 1 == len(inbound)
    columns = {name: i for i, name in enumerate(CSV_COLUMNS)}
    assert [line[columns["source"]] for line in lines[1:]] == [
        "'" + mask_number(r.source) for r in inbound
    ]
    assert {line[columns["source_raw"]] for line in lines[1:]} == {""}
    assert {line[columns["destination_raw"]] for line in lines[1:]} == {""}
    assert not re.search(r"[0-9]{5}", "".join(
        line[columns[c]] for line in lines[1:] for c in ("source", "destination")
    ))  # fmt: skip
