"""The review form in Chromium: blind until submitted, then beside the evaluation; viewers read."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page, expect

from browser.browser_support import PASSWORD, Server

pytestmark = pytest.mark.browser


def _login(page: Page, base: str, username: str) -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")


@pytest.fixture
def page(server: Server, browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    p = context.new_page()
    p.set_default_timeout(20_000)
    yield p
    context.close()


def test_review_from_the_queue_then_see_the_ai(
    page: Page, server: Server, browser: Browser
) -> None:
    _login(page, server.base_url, "admin1")
    expect(page.locator("#reviews-week")).to_contain_text("Reviews this week")
    page.get_by_role("link", name="review the next session").click()
    expect(page).to_have_url(re.compile(r"/sessions/[^?]+\?queue="))
    expect(page.locator("#queue-why")).to_contain_text("From the review queue")
    expect(page.locator("#ai-hidden")).to_be_visible()
    expect(page.locator("#evaluation")).not_to_contain_text("Quality score 1")
    session_url = page.url.split("?")[0]
    form = page.locator("#review-form")
    form.locator("input[name=quality_score]").fill("3.7")
    form.locator("select[name=clarity]").select_option("4")
    form.get_by_label("answer giveaway").check()
    form.locator("textarea[name=note]").fill("Gave the answer <b>away</b> at the end")
    form.get_by_role("button", name="Submit review").click()
    expect(page).to_have_url(re.compile(r"#reviews$"))
    expect(page.locator("#ai-hidden")).to_have_count(0)
    expect(page.locator("#evaluation")).to_contain_text("Quality score")
    mine = page.locator('li.review[data-reviewer="admin1"]')
    expect(mine).to_contain_text("3.7")
    expect(mine).to_contain_text("answer giveaway")
    expect(mine.locator("blockquote")).to_have_text("Gave the answer <b>away</b> at the end")
    expect(page.get_by_role("button", name="Replace my review")).to_be_visible()

    viewer = browser.new_context().new_page()
    _login(viewer, server.base_url, "viewer1")
    viewer.goto(session_url)
    expect(viewer.locator("#review-form")).to_have_count(0)
    expect(viewer.locator('li.review[data-reviewer="admin1"]')).to_contain_text("3.7")
    viewer.goto(f"{server.base_url}/judges")
    expect(viewer.locator("h1")).to_have_text("Judges against the reviewers")
    expect(viewer.locator("#agreement-table")).to_contain_text("heuristic/")
    expect(viewer.locator("svg.scatter circle")).to_have_count(1)
    viewer.context.close()
