"""`make screenshots`: seed a small demo, serve it, log in with Chromium, save a PNG per page.

Pages are captured at laptop width (1280 px) and the tutor list and tutor page
also at phone width (390 px). Output: docs/screenshots/*.png.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

from tutorscore.auth.users import ensure_demo_admin
from tutorscore.db.engine import make_engine
from tutorscore.web.devserver import prepare_demo, running_server

OUT = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
PASSWORD = "screenshots-demo-pw"


def _login(page: Page, base: str, username: str) -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")


def main() -> int:
    chromium = shutil.which("chromium")
    if chromium is None:
        print("chromium not found: run `make chromium` first", file=sys.stderr)
        return 1
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tutorscore-shots-") as tmp:
        url = f"sqlite:///{tmp}/demo.db"
        print("seeding the demo database ...")
        prepare_demo(url)
        env = {
            "DATABASE_URL": url,
            "TUTORSCORE_DATA_DIR": tmp,
            "TUTORSCORE_DEMO_PASSWORD": PASSWORD,
            "TUTORSCORE_SECRET_KEY": "screenshots-" + os.urandom(16).hex(),
        }
        os.environ.update({"TUTORSCORE_DEMO_PASSWORD": PASSWORD})
        engine = make_engine(url)
        username, _ = ensure_demo_admin(engine, tmp)
        engine.dispose()
        with running_server(env, worker=False, log_path=Path(tmp) / "server.log") as base:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(
                    executable_path=chromium,
                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
                )
                desktop = browser.new_page(viewport={"width": 1280, "height": 900})
                desktop.goto(f"{base}/login")
                desktop.screenshot(path=str(OUT / "login.png"))
                _login(desktop, base, username)
                shots = [
                    ("overview", "/"),
                    ("tutors", "/tutors"),
                    ("first-sessions", "/first-sessions"),
                ]
                desktop.goto(f"{base}/tutors?sort=risk")
                href = desktop.locator("#tutor-table tbody tr a").first.get_attribute("href")
                shots.append(("tutor", str(href)))
                desktop.goto(f"{base}/tutors?sort=ai_avg_quality_score")
                session_href = _any_transcript(desktop, base)
                if session_href:
                    shots.append(("session", session_href))
                shots.append(("interventions", "/interventions"))
                for name, path in shots:
                    desktop.goto(f"{base}{path}")
                    desktop.screenshot(path=str(OUT / f"{name}.png"), full_page=True)
                    print(f"saved {name}.png ({path})")
                phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
                _login(phone, base, username)
                for name, path in (("tutors-phone", "/tutors"), ("tutor-phone", str(href))):
                    phone.goto(f"{base}{path}")
                    phone.screenshot(path=str(OUT / f"{name}.png"), full_page=False)
                    print(f"saved {name}.png ({path})")
                browser.close()
    print(f"screenshots in {OUT}")
    return 0


def _any_transcript(page: Page, base: str) -> str | None:
    """Open tutors until one has a session with a transcript; return that session's URL."""
    hrefs = [a.get_attribute("href") for a in page.locator("#tutor-table tbody tr a").all()]
    for href in hrefs[:20]:
        page.goto(f"{base}{href}")
        for row in page.locator("#sessions tbody tr").all():
            if row.locator("span[title='has a transcript']").count():
                return row.locator("a").first.get_attribute("href")
    return None


if __name__ == "__main__":
    raise SystemExit(main())
