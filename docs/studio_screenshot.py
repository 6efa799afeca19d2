"""Takes docs/studio.png, the README's picture of the image studio: the real /studio page of a real
`serve --transport http` process against the emulator, in headless chromium (Playwright for Python).

    python docs/studio_screenshot.py [OUTPUT.png]

It generates an image, refines it once, and photographs the before/after comparison with the lineage.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from browser import BrowserThread  # noqa: E402
from helpers import HttpServer, emulator_running  # noqa: E402
from PIL import Image  # noqa: E402

from mcp_server.emulator import EmulatorConfig  # noqa: E402


def photograph(chromium: Any, url: str, output: Path) -> None:
    context = chromium.new_context(viewport={"width": 960, "height": 1640}, device_scale_factor=1)
    page = context.new_page()
    page.goto(url)
    page.wait_for_selector("#generate-form:not([hidden])")
    page.fill("#prompt", "A lighthouse on a rocky coast at sunset, watercolor style")
    page.fill("#partials", "2")
    page.click("#generate")
    view = page.locator("iframe").element_handle().content_frame()
    view.wait_for_selector("#image[data-full=true]", timeout=20000)
    view.locator("#refine").fill("make the sky a deep orange")
    view.locator("#refine-go").click()
    view.wait_for_function("() => document.querySelectorAll('#lineage li').length === 2", timeout=20000)
    view.wait_for_function("() => !document.getElementById('before').hidden", timeout=20000)
    view.locator("#slider").fill("45")
    view.locator("#slider").dispatch_event("input")
    view.locator("#refine").fill("")
    view.evaluate("document.activeElement.blur()")
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(output))
    context.close()
    # A palette keeps the committed file small; the page is flat colours anyway.
    Image.open(output).convert("RGB").quantize(colors=192).save(output, optimize=True)


def main() -> int:
    output = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "studio.png"
    with tempfile.TemporaryDirectory() as images, emulator_running(EmulatorConfig(partial_interval=0.3)) as emulator:
        server = HttpServer(emulator.endpoint, Path(images))
        browser = BrowserThread()
        try:
            url = server.wait_ready() + "/studio"
            browser.run(lambda chromium: photograph(chromium, url, output), timeout=120)
        finally:
            browser.close()
            server.stop()
    print(f"Saved {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
