"""The Dagster UI in a real browser, as a newcomer uses it (marker ``browser``, run by CI).

``cocktail-assets ui`` (``dg dev``) on the embedded default, a fresh local folder, a free port;
headless Debian chromium driven by Playwright (its own browser downloads are never used:
``executable_path`` points at the system chromium, installed here with apt-get if missing).
The test finds every asset in the lineage graph, clicks "Materialize all" and waits for the
run, reads the row count, URI and the inline preview on ``spaces/cocktail_space_em``, then
edits the site database: a ratings-only edit marks nothing stale, an ingredients edit marks
the space stale without any click, and the refresh sensor's page tells why it waits. Finally
SIGTERM stops every process, the embedded PostgreSQL included. On failure a screenshot, the
page's HTML and the UI's log are kept in ``.local/test-artifacts/browser/``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import psycopg
import pytest

from cocktail_assets.db.embedded import embedded_running, stop_embedded
from cocktail_assets.resources.site_versions import SOURCE_TABLES
from tests.cocktail_assets.webserver import free_port, graphql

pytestmark = [pytest.mark.browser, pytest.mark.timeout(420)]

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
ARTIFACTS = ROOT / ".local" / "test-artifacts" / "browser"
SENSOR_INTERVAL = 5  # seconds: staleness must show within a few ticks of an edit
STALE_BOUND = 45  # seconds from the edit to the stale marker in the page
ASSETS = [
    *(f"site/{t}" for t in SOURCE_TABLES),
    "catalog/ingredient_catalog", "catalog/recipe_volumes",
    "analytics/ingredient_usage", "analytics/recipe_complexity", "analytics/ingredient_tree",
    "spaces/rolled_up_recipes", "spaces/manhattan_neighbors", "spaces/em_fit",
    "spaces/cocktail_space", "spaces/cocktail_space_em", "spaces/recipe_similarity",
    "activity/late_edits", "activity/daily", "activity/last_30_days",
]
# What "Materialize all" refreshes: the analytics, not the partitioned activity days (with them
# selected the button opens the backfill dialog instead).
ANALYTICS_FILTER = "not group:activity"
ANALYTICS = [k for k in ASSETS if k.split("/")[0] in ("catalog", "analytics", "spaces")]


def chromium_path() -> str:
    """Debian's chromium, installed with apt-get when missing (the test machines run as root)."""
    found = shutil.which("chromium")
    if found:
        return found
    if os.geteuid() != 0:
        pytest.fail("chromium is not installed and this user cannot apt-get install it")
    apt = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=apt, timeout=600)
    subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, env=apt,
                   timeout=900, stdout=subprocess.DEVNULL)
    found = shutil.which("chromium")
    assert found, "apt-get installed chromium but it is not on PATH"
    return found


@dataclass
class UI:
    url: str
    local_dir: Path
    process: subprocess.Popen
    log: Path

    def conninfo(self) -> str:
        """The embedded site database, read from the server's postmaster.pid (no handle of
        this process joins the server, so the UI's shutdown alone must stop it)."""
        lines = (self.local_dir / "pgdata" / "postmaster.pid").read_text().splitlines()
        return f"host={lines[4]} port={lines[3]} user=postgres dbname=cocktails"

    def execute(self, statement: str) -> None:
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            conn.execute(statement)


@pytest.fixture
def ui() -> Iterator[UI]:
    """`cocktail-assets ui` on the embedded default in a fresh local folder."""
    # Not pytest's tmp_path (0700): root-run pgserver starts postgres as another user.
    local_dir = Path(tempfile.mkdtemp(prefix="cocktail-assets-browser-"))
    local_dir.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in (
        "DATABASE_URL", "DAGSTER_PG_URL", "DAGSTER_HOME", "ANALYTICS_BUCKET", "AWS_ENDPOINT_URL",
        "COCKTAIL_ENV", "COCKTAIL_DAGSTER_STORAGE", "COCKTAIL_DAGSTER_COMPUTE_LOGS")}
    env.update(COCKTAIL_LOCAL_DIR=str(local_dir),
               ANALYTICS_SENSOR_INTERVAL_SECONDS=str(SENSOR_INTERVAL))
    port = free_port()
    log = local_dir / "ui.log"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [str(BIN / "cocktail-assets"), "ui", "-p", str(port), "--host", "127.0.0.1"],
            env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
        )
    handle = UI(f"http://127.0.0.1:{port}", local_dir, process, log)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{handle.url}/server_info", timeout=5):
                    break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise AssertionError(f"the UI did not start:\n{log.read_text()}") from None
                time.sleep(1)
        yield handle
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
        stop_embedded(local_dir)  # only if the test failed before proving the shutdown
        shutil.rmtree(local_dir, ignore_errors=True)


def _open(page, url: str) -> None:
    page.goto(url, wait_until="domcontentloaded")
    from playwright.sync_api import TimeoutError as NoPrompt

    with contextlib.suppress(NoPrompt):  # Dagster's newsletter prompt, on a fresh browser
        page.get_by_role("button", name="Skip").click(timeout=4000)


def _wait_for_text(page, text: str, timeout_s: float) -> None:
    page.get_by_text(text).first.wait_for(state="visible", timeout=timeout_s * 1000)


def _graph_shows(page, keys: list[str]) -> None:
    """Every asset of ``keys`` is listed in the lineage page's asset tree, every group opened."""
    page.get_by_role("button", name="Materialize all").wait_for()
    for group in sorted({k.split("/")[0] for k in keys}):
        row = page.get_by_role("button", name=f"{group} {group}").first
        box = row.bounding_box()
        assert box, f"group {group} not in the lineage sidebar"
        page.mouse.click(box["x"] - 12, box["y"] + box["height"] / 2)  # its expand caret
    missing = keys
    for _ in range(20):
        missing = [k for k in keys
                   if page.locator(f'text="{k.split("/")[1]}" >> visible=true').count() == 0]
        if not missing:
            return
        page.wait_for_timeout(500)
    raise AssertionError(f"not in the lineage page: {missing}")


NODES_QUERY = "{ assetNodes { assetKey { path } staleStatus dataVersion } }"
TICKS_QUERY = """
query T($sensor: String!, $after: Float!) {
  sensorOrError(sensorSelector: {repositoryLocationName: "cocktail_assets",
                                 repositoryName: "__repository__", sensorName: $sensor}) {
    ... on Sensor { sensorState { ticks(limit: 1, afterTimestamp: $after,
                                        statuses: [SKIPPED, SUCCESS, FAILURE]) { timestamp } } }
  }
}"""


def asset_nodes(url: str) -> dict[str, dict]:
    """The UI's own query of every asset: its stale status (the Unsynced markers) and data
    version."""
    nodes = graphql(url, NODES_QUERY)["assetNodes"]
    return {"/".join(n["assetKey"]["path"]): n for n in nodes}


def wait_for_tick_after(url: str, sensor: str, after: float) -> None:
    """Until ``sensor`` has a finished tick that started after the epoch second ``after``.

    The site observer and the refresh sensor tick independently, so the Unsynced marker can
    show before the refresh sensor has evaluated the edit; its newest tick then still tells
    the reason from before the edit."""
    started = time.monotonic()
    while not graphql(url, TICKS_QUERY, {"sensor": sensor, "after": after})[
            "sensorOrError"]["sensorState"]["ticks"]:
        assert time.monotonic() - started < STALE_BOUND, f"{sensor} did not tick after the edit"
        time.sleep(1)


def stale_assets(url: str) -> set[str]:
    return {k for k, n in asset_nodes(url).items() if n["staleStatus"] == "STALE"}


def wait_for_version(ui: UI, table: str) -> float:
    """Seconds until the site observer recorded ``table``'s current change-log version."""
    with psycopg.connect(ui.conninfo()) as conn:
        row = conn.execute("SELECT max(id) FROM analytics_change_log WHERE table_name = %s",
                           (table,)).fetchone()
    started = time.monotonic()
    while asset_nodes(ui.url)[f"site/{table}"]["dataVersion"] != str(row[0]):
        assert time.monotonic() - started < STALE_BOUND, f"site/{table} was never observed"
        time.sleep(1)
    return time.monotonic() - started


def _descendant_pids(pid: int) -> list[int]:
    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def test_a_newcomer_materializes_everything_and_sees_an_edit_turn_assets_stale(ui: UI) -> None:
    from playwright.sync_api import sync_playwright

    started = time.monotonic()
    chromium = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1920, "height": 1200})
        page.set_default_timeout(30_000)
        step = "start"
        try:
            step = "the lineage graph shows every asset"
            _open(page, f"{ui.url}/asset-groups")
            _graph_shows(page, ASSETS)

            step = "Materialize all succeeds"
            page.locator(".CodeMirror").first.click()  # the graph's asset selection
            page.keyboard.type(ANALYTICS_FILTER)
            page.keyboard.press("Enter")
            materialize = page.get_by_role("button", name=f"Materialize all ({len(ANALYTICS)})")
            materialize.click()
            _wait_for_text(page, "Launched run", 30)
            _open(page, f"{ui.url}/runs")
            _wait_for_text(page, "Success", 120)

            step = "spaces/cocktail_space_em shows its rows, URI and inline preview"
            # the Events tab: the latest materialization's metadata, system keys included
            _open(page, f"{ui.url}/assets/spaces/cocktail_space_em?view=events")
            metadata = page.locator("table", has_text="preview").last
            metadata.wait_for()

            def entry(label: str) -> str:
                return metadata.locator("tr").filter(
                    has=page.get_by_text(label, exact=True)).first.inner_text()

            assert "157" in entry("dagster/row_count")
            assert "analytics/v1/cocktail-space-em.json" in entry("dagster/uri")
            # the overview: the row count in its status, the picture inline in the metadata
            _open(page, f"{ui.url}/assets/spaces/cocktail_space_em")
            page.get_by_text("Row count", exact=True).first.wait_for()
            assert page.get_by_text("157", exact=True).count() >= 1
            metadata = page.locator("table", has_text="preview").last
            image = metadata.locator("img[src^='/logs/previews/']")
            image.wait_for()
            page.wait_for_function(
                "img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
            assert image.evaluate("img => img.naturalWidth") == 800
            assert image.evaluate("img => img.clientWidth") == 800  # inline, full size

            step = "a ratings-only edit marks nothing stale"
            ui.execute("INSERT INTO ratings (cognito_user_id, recipe_id, rating) "
                       "SELECT 'browser-test', min(id), 5 FROM recipes")
            wait_for_version(ui, "ratings")
            _open(page, f"{ui.url}/assets/site/ratings")
            _wait_for_text(page, "pending_changes", 30)  # the observation's metadata
            assert stale_assets(ui.url) == set()

            step = "an ingredients edit marks spaces/cocktail_space_em stale, no click"
            _open(page, f"{ui.url}/assets/spaces/cocktail_space_em")
            page.get_by_text("Materialize", exact=True).first.wait_for()
            assert page.get_by_text("Unsynced").count() == 0
            edited = time.monotonic()
            ui.execute("UPDATE ingredients SET allow_substitution = NOT allow_substitution "
                       "WHERE id = (SELECT min(id) FROM ingredients)")
            committed_at = time.time()
            _wait_for_text(page, "Unsynced", STALE_BOUND)
            stale_after = time.monotonic() - edited
            assert stale_assets(ui.url) == set(ANALYTICS) - {"analytics/recipe_complexity"}
            page.get_by_text("Unsynced").first.hover()
            _wait_for_text(page, "has a new data version", 10)
            assert page.get_by_text("site / ingredients").count() >= 1

            step = "the refresh sensor's page tells why it waits"
            wait_for_tick_after(ui.url, "refresh_sensor", committed_at)
            _open(page, f"{ui.url}/locations/cocktail_assets/sensors/refresh_sensor")
            newest = page.locator("tr", has_text="View logs").first
            newest.get_by_text("0 runs requested").last.click()  # its result: the skip reason
            _wait_for_text(page, "Skip reason", 20)
            reason = page.get_by_role("dialog").inner_text()
            assert "debouncing. pending: ingredients (1 change)" in reason, reason
        except BaseException:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "failure.png"), full_page=True)
            (ARTIFACTS / "failure.html").write_text(page.content())
            shutil.copy(ui.log, ARTIFACTS / "ui.log")
            print(f"browser test failed at: {step}; artifacts in {ARTIFACTS}")
            raise
        finally:
            browser.close()
    print(f"stale {stale_after:.1f} s after the edit; whole test {time.monotonic() - started:.0f} s")

    # SIGTERM stops the webserver, the daemon, the code server and the embedded PostgreSQL.
    children = _descendant_pids(ui.process.pid)
    assert children, "no Dagster processes under cocktail-assets ui"
    ui.process.send_signal(signal.SIGTERM)
    assert ui.process.wait(timeout=60) == 0, ui.log.read_text()[-3000:]
    deadline = time.monotonic() + 30
    while (time.monotonic() < deadline
           and (any(psutil.pid_exists(p) for p in children) or embedded_running(ui.local_dir))):
        time.sleep(0.5)
    assert not [p for p in children if psutil.pid_exists(p)], "Dagster processes left running"
    assert not embedded_running(ui.local_dir), "the embedded PostgreSQL is still running"
    log = ui.log.read_text()
    assert "Warning" not in log and "XDG_RUNTIME_DIR" not in log, log[-3000:]
    assert " - DEBUG - " not in log, "run events below INFO in the terminal"
