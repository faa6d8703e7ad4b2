"""Render an automix report in headless Chromium and save a screenshot, to check that it displays.

    .venv/bin/python scripts/render_report.py runs/levers_joint/report/report.html [--out shot.png]

Chromium comes from the system (`apt-get install -y chromium`). The page is self-contained
(plotly.js and images inlined), so it renders with networking off. Exits 1 if Chromium fails or
writes no screenshot.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def render(html: Path, out: Path, width: int = 1200, height: int = 4000) -> Path:
    """Screenshot `html` into `out` (PNG); raises RuntimeError when no browser or no image."""
    browser = next((b for b in map(shutil.which, BROWSERS) if b), None)
    if browser is None:
        raise RuntimeError(f"none of {BROWSERS} on PATH: apt-get install -y chromium")
    with tempfile.TemporaryDirectory() as profile:
        cmd = [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            "--virtual-time-budget=10000",  # let plotly lay out its figures before the shot
            f"--screenshot={out.resolve()}",
            html.resolve().as_uri(),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if done.returncode != 0 or not out.is_file():
        raise RuntimeError(f"chromium failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("html", type=Path)
    parser.add_argument("--out", type=Path, help="default: report_screenshot.png next to the HTML")
    parser.add_argument("--width", type=int, default=1200)
    parser.add_argument("--height", type=int, default=4000)
    args = parser.parse_args()
    out = args.out or args.html.with_name("report_screenshot.png")
    try:
        print(render(args.html, out, args.width, args.height))
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        print(f"render_report: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
