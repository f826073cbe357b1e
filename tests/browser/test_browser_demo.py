"""Issue 19's done-when: on a fresh `tutorscore demo` database (the command itself, run as
`make run` runs it, smaller), every page of the README's page table shows data in
Chromium, with none of the dashboard's empty-state messages; on SQLite and Postgres."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from tutorscore.testing.databases import temporary_database
from tutorscore.web.devserver import running_server, tutorscore_command

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
BACKENDS = [
    b for b in os.environ.get("TUTORSCORE_TEST_BACKENDS", "sqlite,postgres").split(",") if b
]
PASSWORD = "browser-demo-password"
# A smaller demo than `make run`'s (100 tutors, 50,000 sessions) that still gives every
# page data: 120 days of history, so 12 weekly points and the coaching history.
DEMO_ARGS = ("--tutors", "50", "--students", "3000", "--sessions", "24000",
             "--transcripts", "120", "--seed", "42")  # fmt: skip

# Every empty-state message the dashboard's templates can show instead of data.
EMPTY_STATES = (
    "No tutors match these filters",
    "No ratings or evaluations in the window yet",
    "Nothing flagged.",
    "No flags or frequent risk tags: nothing to recommend",
    "No sessions recorded.",
    "No transcript for this session",
    "Waiting for evaluation.",
    "No reviews yet.",
    "No judge version has evaluated a reviewed session yet",
    "No completed first sessions in the window",
    "No evaluated first sessions yet",
    "No upcoming session reaches the threshold",
    "No held-out snapshot",
    "Train one with",
    "No interventions match",
    "No completed interventions yet",
    "No flag was raised in the last 24 hours",
    "No stored metrics history yet",
    "Nothing left to review",
)


@dataclass
class Demo:
    base_url: str
    output: str


@pytest.fixture(scope="module", params=BACKENDS)
def demo(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Demo]:
    if shutil.which("chromium") is None:
        pytest.skip("browser tests need the system Chromium: run `make chromium`")
    tmp = tmp_path_factory.mktemp(f"demo-{request.param}")
    with temporary_database(request.param, label="demo") as url:
        env = {
            "DATABASE_URL": url,
            "TUTORSCORE_DATA_DIR": str(tmp),
            "TUTORSCORE_DEMO_PASSWORD": PASSWORD,
            "TUTORSCORE_SECRET_KEY": "browser-demo-secret-key-0123456789",
        }
        # no LLM: the demo then writes no LLM evaluations and the judges page says why
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("TUTORSCORE_LLM_")}
        done = subprocess.run(
            [*tutorscore_command(), "demo", *DEMO_ARGS],
            env={**base_env, **env},
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        with running_server(env, worker=False, log_path=tmp / "server.log") as base_url:
            yield Demo(base_url, done.stdout)


@pytest.fixture
def page(demo: Demo, browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    p = context.new_page()
    p.set_default_timeout(30_000)
    p.goto(f"{demo.base_url}/login")
    p.fill("input[name=username]", "admin")
    p.fill("input[name=password]", PASSWORD)
    p.click("button[type=submit]")
    p.wait_for_url(f"{demo.base_url}/")
    yield p
    context.close()


def readme_pages() -> list[str]:
    """The paths in the README's table of pages (`| `/path` | what it shows |`)."""
    text = (ROOT / "README.md").read_text()
    return re.findall(r"^\| `(/[^`]*)` \|", text, re.MULTILINE)


def _no_empty_state(page: Page, path: str, *, allowed: tuple[str, ...] = ()) -> None:
    body = page.inner_text("main") if page.locator("main").count() else page.inner_text("body")
    shown = [m for m in EMPTY_STATES if m in body and m not in allowed]
    assert not shown, f"{path} shows an empty state: {shown}"


def _rows(page: Page, selector: str) -> int:
    return page.locator(f"{selector} tbody tr").count()


def _check_interventions(page: Page, base: str) -> None:
    body = page.inner_text("main")
    for status in ("done", "in progress", "open", "overdue"):
        assert status in body, status
    page.goto(f"{base}/interventions/outcomes")
    _no_empty_state(page, "/interventions/outcomes")
    assert page.locator("main table tbody tr").count() >= 1


def _check_page(page: Page, base: str, path: str) -> None:
    """What each README page must show beyond "not empty"."""
    if path == "/":
        assert _rows(page, "#risk-chart-table") == 12 == _rows(page, "#flag-chart-table")
        assert page.locator("#risk-chart svg circle").count() == 4 * 12
        counts = [int(c) for c in page.locator(".card .stat").all_inner_texts()[:3]]
        assert sum(counts) > 0  # tutors at high / medium / low churn risk
    elif path == "/tutors":
        assert _rows(page, "#tutor-table") >= 20
    elif path == "/tutors/{id}":
        assert page.locator("svg.chart").count() >= 1
        assert _rows(page, "#sessions") > 0
    elif path == "/sessions/{id}":
        assert page.locator("#reviews").count() == 1
        assert "quality" in page.inner_text("main").lower()
    elif path == "/judges":
        assert _rows(page, "#agreement-table") >= 1
        assert page.locator("#llm-hint").count() == 1  # no LLM configured: how to add one
    elif path == "/reviews/next":
        assert "/sessions/" in page.url  # the queue sent the coach to a session to review
        assert page.locator("#reviews form").count() == 1
    elif path in ("/first-sessions", "/no-shows", "/model"):
        assert page.locator("main table tbody tr").count() > 0
    elif path == "/interventions":
        _check_interventions(page, base)


def test_every_readme_page_shows_data(demo: Demo, page: Page) -> None:
    base = demo.base_url
    pages = readme_pages()
    assert {"/", "/tutors", "/interventions", "/judges", "/docs"} <= set(pages), pages

    page.goto(f"{base}/tutors?sort=risk")
    tutor = page.locator("#tutor-table tbody tr a").first.get_attribute("href")
    page.goto(f"{base}/judges")
    # a reviewed, evaluated session (the judges page lists the largest disagreements)
    session = page.locator("table.disagreements a").first.get_attribute("href")
    assert tutor and session
    concrete = {"/tutors/{id}": tutor, "/sessions/{id}": session}

    checked = []
    for path in pages:
        url = concrete.get(path, path)
        response = page.goto(f"{base}{url}")
        assert response is not None and response.ok, (path, response and response.status)
        checked.append(path)
        if path == "/docs":  # the OpenAPI page (served offline): its operations render
            page.wait_for_selector(".opblock", timeout=30_000)
            assert page.locator(".opblock").count() > 10
            continue
        # the review queue's session is one nobody has reviewed yet: that is its point
        _no_empty_state(page, path, allowed=("No reviews yet.",) if path == "/reviews/next" else ())
        _check_page(page, base, path)
    assert checked == pages


def test_the_demo_reports_its_coaching_history(demo: Demo) -> None:
    out = " ".join(demo.output.split())
    found = re.search(
        r"(\d+) interventions \((\d+) done, (\d+) in progress, (\d+) open; (\d+) overdue\)", out
    )
    assert found, out
    total, done, running, opened, overdue = (int(g) for g in found.groups())
    assert total == done + running + opened and min(done, running, opened, overdue) > 0
    assert re.search(r"(\d+) coach reviews", out)
    assert "11 weekly snapshots" in out
    assert "LLM judge: not configured" in out
