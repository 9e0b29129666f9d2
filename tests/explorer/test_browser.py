"""The explorer in a real browser against a real local stack: a deal made through the SDK
appears and its tasks settle on the open page with no reload; the price chart shows the
deal's price; the search finds a task by id; filters, keyboard and phone width work."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.explorer.conftest import Page

from comptoir import stack
from comptoir.sdk import ComptoirSync, Config, devnet_account

pytestmark = pytest.mark.devnet

TASK_PRICE = stack.APP_PRICE + stack.POOL_PRICE
LIVE_TIMEOUT = 240_000  # ms: a loaded 2-CPU machine runs 3 workers, a scheduler and anvil
# kept by the page unless it reloads: proves updates arrive without a reload
MARK = "window.__explorerMark = 'not reloaded'"
MARKED = "window.__explorerMark === 'not reloaded'"


def _make_deal(config: Config, volume: int, out: dict[str, Any]) -> None:
    try:
        with ComptoirSync(config, devnet_account(stack.REQUESTER)) as c:
            c.deposit(volume * TASK_PRICE)
            handles = c.request("primes", volume=volume, trust=4, category="TEST", args="150000")
            out["deal_id"] = handles[0].deal_id
            out["deal"] = handles[0].deal
    except Exception as e:  # surfaced by the test thread
        out["error"] = e


def make_deal(config: Config, volume: int) -> dict[str, Any]:
    """A deal through the SDK, from a thread of its own (see the browser fixture)."""
    made: dict[str, Any] = {}
    worker = threading.Thread(target=_make_deal, args=(config, volume, made))
    worker.start()
    worker.join(180)
    assert "error" not in made, made.get("error")
    return made


def _statuses_seen(page: Any, selector: str) -> None:
    """Records every data-status the element matching `selector` shows, across swaps."""
    page.evaluate(
        """(sel) => {
          window.__seen = [];
          const note = () => {
            const el = document.querySelector(sel);
            const last = window.__seen.at(-1);
            if (el && last !== el.dataset.status) window.__seen.push(el.dataset.status);
          };
          note();
          new MutationObserver(note).observe(
            document.body, {subtree: true, childList: true, attributes: true});
        }""",
        selector,
    )


@contextlib.contextmanager
def workers_paused(running: stack.Stack) -> Iterator[None]:
    """The stack's workers stopped (SIGSTOP) for the block, so a deal's tasks cannot settle
    before the page is watching them; they resume however the block ends."""
    groups = [w.pid for w in running.workers() if w.running]
    for pid in groups:
        os.killpg(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in groups:
            os.killpg(pid, signal.SIGCONT)


def test_deal_appears_and_settles_live(
    tab: Page, phone: Page, config: Config, explorer_url: str, local_stack: stack.Stack
) -> None:
    page = tab.page
    page.goto(explorer_url)
    page.wait_for_selector("#live[data-state='on']")  # the SSE feed is open
    page.evaluate(MARK)
    listed = "rows => rows.map(r => r.dataset.deal)"
    before = set(page.eval_on_selector_all("tr[data-deal]", listed))

    with workers_paused(local_stack):
        deal_id = make_deal(config, 3)["deal_id"]
        assert deal_id not in before
        page.wait_for_selector(f"tr[data-deal='{deal_id}']", timeout=LIVE_TIMEOUT)
        assert page.evaluate(MARKED), "the page reloaded to show the deal"

        # follow it to its page, where nothing is settled yet
        page.click(f"tr[data-deal='{deal_id}'] a[href$='{deal_id}']")
        page.wait_for_url(re.compile(deal_id))
        page.evaluate(MARK)
        _statuses_seen(page, "#deal-live")
        assert page.get_attribute("#deal-live", "data-status") == "active"
        assert page.inner_text("[data-testid='settled-count']") == "0"
    # the workers resume: the tasks settle on the open page
    page.wait_for_selector("#deal-live[data-status='completed']", timeout=LIVE_TIMEOUT)
    assert page.evaluate(MARKED), "the deal page reloaded"
    seen = page.evaluate("window.__seen")
    assert seen[0] == "active" and seen[-1] == "completed", seen
    rows = page.locator("#deal-live tr[data-task]")
    assert rows.count() == 3
    for i in range(3):
        r = rows.nth(i)
        assert r.get_attribute("data-status") == "settled"
        cells = r.locator("td")
        # trust 4 with fresh workers: two replicas, two commitments, consensus, payment
        assert int(cells.nth(3).inner_text()) >= 2 and int(cells.nth(4).inner_text()) >= 2
        assert cells.nth(5).inner_text() == "reached"
        assert cells.nth(6).inner_text().startswith("paid, digest 0x")
    gas = int(re.sub(r"\D", "", page.inner_text("[data-testid='deal-gas']")))
    assert gas > 100_000  # the match alone costs more than that
    assert page.inner_text("[data-testid='settled-count']") == "3"
    tab.shot("deal-desktop")

    # the home page, now with the deal: desktop and phone
    page.goto(explorer_url)
    page.wait_for_selector(f"tr[data-deal='{deal_id}']")
    tab.shot("home-desktop")
    phone.page.goto(explorer_url)
    phone.page.wait_for_selector("svg.chart.narrow g.candle")
    assert phone.page.locator("svg.chart.wide").is_hidden()
    # nothing wider than the phone screen except inside the scrolling table regions
    overflow = phone.page.evaluate("document.documentElement.scrollWidth")
    assert overflow <= 390, f"the page is {overflow} px wide on a 390 px phone"
    phone.shot("home-phone")
    phone.page.goto(f"{explorer_url}deals/{deal_id}")
    phone.page.wait_for_selector("#deal-live[data-status='completed']")
    phone.shot("deal-phone")

    # the requester's page lists the deal and what it paid
    page.goto(f"{explorer_url}address/{devnet_account(stack.REQUESTER).address}")
    assert page.locator(f"tr[data-deal='{deal_id}']").count() == 1
    tab.shot("address-desktop")


class DealWatch:
    """Listens to the market's live stream from a thread of its own, from now on, until it
    says deal `deal_id` reached `status`: the event is then published, whoever listened."""

    def __init__(self, stream_url: str, deal_id: str, status: str) -> None:
        self.url, self.deal_id, self.status = stream_url, deal_id, status
        self.connected, self.seen = threading.Event(), threading.Event()
        self.error: Exception | None = None
        self.thread = threading.Thread(target=self._listen, daemon=True)
        self.thread.start()
        assert self.connected.wait(60) or self.error, "the market's stream did not open"

    def _listen(self) -> None:
        try:
            with (
                httpx.Client(timeout=LIVE_TIMEOUT / 1000) as client,
                client.stream("GET", self.url, params={"max_events": 1000}) as r,
            ):
                name = None
                for line in r.iter_lines():
                    if line.startswith(": connected"):
                        self.connected.set()
                    elif line.startswith("event: "):
                        name = line.removeprefix("event: ")
                    elif line.startswith("data: ") and name == "deal.updated":
                        data = json.loads(line.removeprefix("data: "))
                        if (data["deal_id"], data["status"]) == (self.deal_id, self.status):
                            self.seen.set()
                            return
        except Exception as e:  # surfaced by wait()
            self.error = e
        finally:
            self.connected.set()

    def wait(self) -> None:
        self.thread.join(LIVE_TIMEOUT / 1000)
        assert self.seen.is_set(), self.error or f"no {self.status} for deal {self.deal_id}"


def test_a_deal_settling_while_the_page_connects_shows_settled(
    tab: Page, config: Config, explorer_url: str, local_stack: stack.Stack
) -> None:
    # the page is rendered, then its stream is held back while the deal settles: the
    # settlement happens between the render and the subscription, and must not be lost
    page = tab.page
    held: list[Any] = []
    with workers_paused(local_stack):
        deal_id = make_deal(config, 1)["deal_id"]
        page.goto(f"{explorer_url}deals")
        page.wait_for_selector(f"tr[data-deal='{deal_id}']", timeout=LIVE_TIMEOUT)
        page.route("**/v1/stream*", lambda route: held.append(route))
        page.goto(f"{explorer_url}deals/{deal_id}")
        page.evaluate(MARK)
        assert page.get_attribute("#deal-live", "data-status") == "active"
        for _ in range(200):  # the page's stream request, caught (events run in page calls)
            if held:
                break
            page.wait_for_timeout(50)
        assert held, "the page never asked for its stream"
        watch = DealWatch(explorer_url.split("/explorer/")[0] + "/v1/stream", deal_id, "completed")
    watch.wait()  # settled and announced while the page's stream was held back
    for route in held:
        route.continue_()
    page.unroute("**/v1/stream*")
    page.wait_for_selector("#deal-live[data-status='completed']", timeout=LIVE_TIMEOUT)
    assert page.evaluate(MARKED), "the deal page reloaded"
    assert page.get_attribute("#deal-live tr[data-task]", "data-status") == "settled"


def test_chart_shows_the_deal_price(tab: Page, config: Config, explorer_url: str) -> None:
    made = make_deal(config, 1)
    price = made["deal"].workerpool_price
    page = tab.page
    page.goto(explorer_url)
    page.select_option("#chart select[name='category']", label="TEST")
    candle = page.locator(f"svg.chart.wide g.candle[data-close='{price}']")
    candle.first.wait_for(timeout=LIVE_TIMEOUT)
    assert int(candle.first.get_attribute("data-volume") or 0) >= 1
    assert page.inner_text("[data-testid='last-price']") == str(price)
    # another category has no deal: the chart says so instead of inventing a price
    page.select_option("#chart select[name='category']", label="XL")
    page.wait_for_selector("#chart svg.chart.wide text.empty")
    assert page.locator("svg.chart.wide g.candle").count() == 0


def test_search_finds_a_task_by_id(tab: Page, config: Config, explorer_url: str) -> None:
    made = make_deal(config, 2)
    task_id = "0x" + made["deal"].task_id(1).hex()
    page = tab.page
    page.goto(f"{explorer_url}deals")
    # the index follows the chain within a second or so; the list shows the deal live
    page.wait_for_selector(f"tr[data-deal='{made['deal_id']}']", timeout=LIVE_TIMEOUT)
    page.fill("#q", task_id)
    page.press("#q", "Enter")
    page.wait_for_url(re.compile(f"/explorer/tasks/{task_id}$"))
    assert task_id in page.inner_text("h1")
    assert page.locator("#task-live").get_attribute("data-task") == task_id
    assert page.locator(f"#task-live a[href$='/deals/{made['deal_id']}']").count() == 1
    assert "task 1 of 2" in page.inner_text("#task-live")
    # an id nothing has: one sentence saying so, and the page stays usable
    page.fill("#q", "0x" + "ab" * 32)
    page.press("#q", "Enter")
    page.wait_for_selector("p.error[role='alert']")
    assert "Nothing matches" in page.inner_text("p.error")


def test_order_book_filters_without_reload(tab: Page, explorer_url: str) -> None:
    page = tab.page
    page.goto(explorer_url)
    page.evaluate(MARK)
    book = page.locator("#book table tbody tr")
    assert book.count() >= 2
    page.select_option("#book-filters select[name='kind']", "workerpool")
    page.wait_for_function(
        "[...document.querySelectorAll('#book .kind')].every(k => k.textContent === 'workerpool')"
    )
    page.fill("#book-filters input[name='max_price']", "1")
    page.wait_for_selector("#book td.empty")
    assert "No open order matches" in page.inner_text("#book td.empty")
    page.fill("#book-filters input[name='tag']", "purple")
    page.wait_for_selector("#tag-err")
    assert page.evaluate(MARKED)


def test_keyboard_reaches_search_and_chart(tab: Page, explorer_url: str) -> None:
    page = tab.page
    page.goto(explorer_url)
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.className") == "skip"
    page.keyboard.press("Enter")
    assert page.evaluate("location.hash") == "#main"
    page.focus("#q")
    page.keyboard.type("primes")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/explorer/assets/\d+$"))
    assert "primes" in page.inner_text("h1")


def test_pages_of_pools_workers_catalogue_and_address(tab: Page, explorer_url: str) -> None:
    page = tab.page
    page.goto(f"{explorer_url}pools")
    pool = page.locator("tr[data-pool]").first
    assert stack.POOL_NAME in pool.inner_text()
    assert "worker stake 10 %" in pool.inner_text()
    assert re.search(r"\b3\b", pool.locator("td").nth(5).inner_text())  # workers online
    page.goto(f"{explorer_url}workers")
    assert page.locator("tr[data-worker]").count() == 3
    page.goto(f"{explorer_url}assets")
    app = page.locator("tr[data-asset]").first
    assert stack.SAMPLE_APP in app.inner_text()
    # the scheduler's address: the pool it owns, its escrow (it stakes on every deal)
    scheduler = devnet_account(stack.SCHEDULER).address
    page.goto(f"{explorer_url}address/{scheduler}")
    assert stack.POOL_NAME in page.inner_text("#own-h + ul")
    assert int(re.sub(r"\D", "", page.inner_text("[data-testid='escrow-free']"))) > 0


def test_devnet_status_gives_the_explorer(local_stack: stack.Stack, tab: Page) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPTOIR_")}
    env.update(COMPTOIR_HOME=str(local_stack.settings.home), NO_COLOR="1", COLUMNS="200")
    cli = [sys.executable, "-m", "comptoir.cli", "devnet", "status"]
    text = subprocess.run(cli, capture_output=True, text=True, env=env, timeout=60)
    url = local_stack.urls["explorer"]
    assert text.returncode == 0 and f"Explorer: {url}" in text.stdout, text.stdout + text.stderr
    doc = subprocess.run([*cli, "--json"], capture_output=True, text=True, env=env, timeout=60)
    assert json.loads(doc.stdout)["explorer_url"] == url
    tab.page.goto(url)
    assert tab.page.title() == "Comptoir explorer"
    # the market's API docs render from local files (the test machine has no internet)
    tab.page.goto(url.replace("/explorer/", "/docs"))
    tab.page.wait_for_selector(".swagger-ui .info .title")
    assert "Comptoir Market API" in tab.page.inner_text(".swagger-ui .info .title")


FAILING_APP = """
import sys
print("refusing to run", file=sys.stderr)
sys.exit(3)
"""


def _deploy_failing_app(config: Config, folder: Path, out: dict[str, Any]) -> None:
    from comptoir.sdk import init_app

    try:
        source = init_app(folder, "always-fails")
        (source / "main.py").write_text(FAILING_APP)
        with ComptoirSync(config, devnet_account(stack.APP_OWNER)) as dev:
            app = dev.deploy_app(source).app
            dev.publish_app_order(app, 1, 10)
        with ComptoirSync(config, devnet_account(stack.REQUESTER)) as c:
            c.deposit(stack.POOL_PRICE + 1)
            out["deal_id"] = c.request("always-fails", category="TEST")[0].deal_id
    except Exception as e:  # surfaced by the test thread
        out["error"] = e


def test_failed_task_shows_its_reason(
    tab: Page, config: Config, explorer_url: str, tmp_path: Path
) -> None:
    made: dict[str, Any] = {}
    worker = threading.Thread(target=_deploy_failing_app, args=(config, tmp_path / "app", made))
    worker.start()
    worker.join(180)
    assert "error" not in made, made.get("error")
    page = tab.page
    page.goto(f"{explorer_url}deals")
    page.wait_for_selector(f"tr[data-deal='{made['deal_id']}']", timeout=LIVE_TIMEOUT)
    page.goto(f"{explorer_url}deals/{made['deal_id']}")
    # a deterministic failure is a result: agreed on, settled, paid, and said in words
    page.wait_for_selector("#deal-live[data-status='completed']", timeout=LIVE_TIMEOUT)
    row = page.locator("#deal-live tr[data-task]").first
    assert row.get_attribute("data-status") == "settled"
    assert row.locator(".fail").inner_text() == "APP_FAILED (exit code 3)"
    row.locator("a.mono").click()
    page.wait_for_selector("#task-live")
    assert "APP_FAILED (exit code 3)" in page.inner_text("#task-live")
