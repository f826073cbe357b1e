"""`make screenshots`: the README pictures, from exactly what `make run` shows.

Runs `tutorscore demo` (the command `make run` runs, with its defaults) into a
fresh database in a temporary directory, serves it with `tutorscore serve`, logs
in as the demo admin with the system Chromium (Playwright, no downloaded
browser) and saves a PNG per page. Pages are captured at laptop width (1280 px,
at most MAX_HEIGHT px tall to keep the files small) and the tutor list and tutor
page also at phone width (390 px). Output: docs/screenshots/*.png.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import Page, sync_playwright

from tutorscore.web.devserver import running_server, tutorscore_command

OUT = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
PASSWORD = "screenshots-demo-pw"
USERNAME = "admin"  # the demo admin `tutorscore demo` creates
MAX_HEIGHT = 1500


def _login(page: Page, base: str) -> None:
    page.goto(f"{base}/login")
    page.fill("input[name=username]", USERNAME)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/")


def _shot(page: Page, path: Path) -> None:
    height = int(page.evaluate("document.documentElement.scrollHeight"))
    width = int(page.viewport_size["width"]) if page.viewport_size else 1280
    page.screenshot(
        path=str(path),
        full_page=True,
        clip={"x": 0, "y": 0, "width": width, "height": min(height, MAX_HEIGHT)},
    )


def main() -> int:
    chromium = shutil.which("chromium")
    if chromium is None:
        print("chromium not found: run `make chromium` first", file=sys.stderr)
        return 1
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="tutorscore-shots-") as tmp:
        env = {
            "DATABASE_URL": f"sqlite:///{tmp}/demo.db",
            "TUTORSCORE_DATA_DIR": tmp,
            "TUTORSCORE_DEMO_PASSWORD": PASSWORD,
            "TUTORSCORE_SECRET_KEY": "screenshots-" + os.urandom(16).hex(),
        }
        print("running `tutorscore demo` (what `make run` runs) ...")
        subprocess.run([*tutorscore_command(), "demo"], env={**os.environ, **env}, check=True)
        with running_server(env, log_path=Path(tmp) / "server.log") as base:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(
                    executable_path=chromium,
                    args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
                )
                desktop = browser.new_page(viewport={"width": 1280, "height": 900})
                desktop.goto(f"{base}/login")
                desktop.screenshot(path=str(OUT / "login.png"))
                _login(desktop, base)
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
                shots += [
                    ("interventions", "/interventions"),
                    ("outcomes", "/interventions/outcomes"),
                    ("judges", "/judges"),
                ]
                for name, path in shots:
                    desktop.goto(f"{base}{path}")
                    _shot(desktop, OUT / f"{name}.png")
                    print(f"saved {name}.png ({path})")
                phone = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True)
                _login(phone, base)
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
