"""The image studio in a real headless browser (Debian's chromium, Playwright for Python).

`/studio` of a real `serve --transport http` subprocess is the test host: the page is an MCP client of the
server (fetch, streamable HTTP) that renders the tools' `ui://` view in a sandboxed iframe and speaks the
MCP Apps bridge to it; the server runs against an in-process Foundry emulator, whose recorded requests show
what reached "Foundry". Each test saves a screenshot of every state under FOUNDRY_IMAGE_MCP_ARTIFACTS (or
its tmp_path) and checks it. One browser per test process (tests/browser.py); one server per test process.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from browser import BrowserThread, artifacts_dir, skip_or_fail, unavailable
from helpers import HttpServer, emulator_running
from PIL import Image, ImageChops

from mcp_server.emulator import EmulatorConfig, RunningEmulator

VIEWPORT = {"width": 1000, "height": 1500}
PARTIAL_INTERVAL = 1.0
"""Seconds between the emulator's partial images: long enough to see (and photograph) each one."""
TOKEN = "studio-browser-token-0123456789"
RECORDER = """
if (location.href === 'about:srcdoc') {
  window.seen = [];
  new MutationObserver(() => {
    const forming = document.getElementById('forming');
    const viewer = document.getElementById('viewer');
    const caption = document.getElementById('partial-caption');
    if (!forming || !viewer || !caption) return;
    const state = !forming.hidden ? caption.textContent : !viewer.hidden ? 'final' : null;
    if (state && window.seen[window.seen.length - 1] !== state) window.seen.push(state);
  }).observe(document, { subtree: true, childList: true, attributes: true, characterData: true });
}
"""
"""Test instrumentation, run in each view frame as it starts (it changes nothing): what the view showed, in order."""


@dataclass
class Studio:
    emulator: RunningEmulator
    server: HttpServer
    output_dir: Path

    @property
    def url(self) -> str:
        return self.server.base_url + "/studio"

    def records(self) -> list[dict[str, Any]]:
        """The stored images' metadata, oldest first."""
        found = [json.loads(p.read_text()) for p in self.output_dir.rglob("img-*.json")]
        return sorted(found, key=lambda record: record["created_at"])

    def image(self, record: dict[str, Any]) -> bytes:
        return next(self.output_dir.rglob(record["file_name"])).read_bytes()


@pytest.fixture(scope="session")
def browser() -> Iterator[BrowserThread]:
    reason = unavailable()
    if reason is not None:
        skip_or_fail(reason)
    running = BrowserThread()
    yield running
    running.close()


@pytest.fixture(scope="session")
def studio_emulator() -> Iterator[RunningEmulator]:
    with emulator_running(EmulatorConfig(partial_interval=PARTIAL_INTERVAL)) as running:
        yield running


@pytest.fixture(scope="session")
def studio(studio_emulator: RunningEmulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Studio]:
    """The server, behind inbound auth: every test signs in on the page as a person would."""
    output_dir = tmp_path_factory.mktemp("studio-images")
    server = HttpServer(
        studio_emulator.endpoint, output_dir, extra_env={"FOUNDRY_IMAGE_MCP_AUTH_TOKENS": f"alice:{TOKEN}"}
    )
    try:
        server.wait_ready()
        yield Studio(studio_emulator, server, output_dir)
    finally:
        server.stop()


# ---------------------------------------------------------------- page helpers (run in the browser's thread)


class Session:
    """One browser page on /studio, its console errors, and where its screenshots go."""

    def __init__(self, browser: Any, url: str, shots: Path, *, viewport: dict[str, int] = VIEWPORT) -> None:
        self.context = browser.new_context(viewport=viewport, accept_downloads=True)
        self.context.add_init_script(RECORDER)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.shots = shots
        self.page.goto(url)

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.context.close()

    @property
    def view(self) -> Any:
        """The view's frame (each generation opens a new one)."""
        frame = self.page.locator("iframe").element_handle().content_frame()
        assert frame is not None, "no view frame"
        return frame

    def sign_in(self, token: str = TOKEN) -> None:
        self.page.wait_for_selector("#token-form:not([hidden])", timeout=15000)
        self.page.fill("#token", token)
        self.page.click("#token-form button")

    def connected(self) -> None:
        """Sign in with the token, and wait for the prompt box."""
        self.sign_in()
        self.page.wait_for_selector("#generate-form:not([hidden])", timeout=15000)
        # The page's first attempt, before it had the token, was refused (the browser logs the 401).
        self.errors = [error for error in self.errors if "401" not in error]

    def generate(self, prompt: str, *, size: str = "1024x1024", partials: int = 0) -> None:
        self.page.fill("#prompt", prompt)
        self.page.select_option("#size", size)
        self.page.fill("#partials", str(partials))
        previous = self.page.locator("iframe").element_handle() if self.page.locator("iframe").count() else None
        self.page.click("#generate")
        self.page.wait_for_function("old => document.querySelector('iframe') !== old", arg=previous)
        self.view.wait_for_selector("#studio", state="attached")

    def finished(self, lineage: int = 1) -> None:
        """Wait until the view shows the full-resolution image of lineage entry number `lineage`."""
        self.view.wait_for_function(
            """n => document.getElementById('image').dataset.full === 'true'
                   && document.getElementById('studio').getAttribute('aria-busy') === null
                   && document.querySelectorAll('#lineage li').length === n""",
            arg=lineage,
            timeout=20000,
        )

    def shot(self, name: str) -> Image.Image:
        # The view renders in a frame of its own process: let it paint what its DOM holds before the capture.
        if self.page.locator("iframe").count():
            self.view.evaluate("() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")
        path = self.shots / f"studio-{name}.png"
        self.page.screenshot(path=str(path))
        return Image.open(path).convert("RGB")

    def element_shot(self, selector: str) -> Image.Image:
        return Image.open(io.BytesIO(self.view.locator(selector).screenshot())).convert("RGB")

    def text(self, selector: str) -> str:
        return str(self.view.locator(selector).inner_text()).strip()

    def image_src(self) -> str:
        return str(self.view.locator("#image").get_attribute("src"))

    def no_errors(self) -> None:
        assert self.errors == [], self.errors


def data_url_bytes(url: str) -> bytes:
    header, _, payload = url.partition(",")
    assert header.startswith("data:image/") and header.endswith(";base64"), header[:40]
    return base64.b64decode(payload)


def not_blank(image: Image.Image) -> None:
    """A picture, not an empty or single-colour area."""
    extrema = image.getextrema()
    assert max(high - low for low, high in extrema) > 40, extrema
    assert len(image.getcolors(maxcolors=1 << 20) or []) > 50


def box_ratio(session: Session, selector: str) -> float:
    box = session.view.locator(selector).bounding_box()
    assert box is not None and box["height"] > 0
    return float(box["width"] / box["height"])


# ---------------------------------------------------------------- the tests


def test_partials_then_the_final_image_with_its_details_zoom_and_download(
    browser: BrowserThread, studio: Studio, tmp_path: Path
) -> None:
    shots = artifacts_dir(tmp_path)

    def scenario(chromium: Any) -> None:
        with Session(chromium, studio.url, shots) as session:
            session.connected()
            session.generate("a red kite over a harbour at dawn", size="1536x1024", partials=2)
            view = session.view
            view.wait_for_selector("#forming:not([hidden])", timeout=15000)
            forming = session.shot("1-partial")
            assert "final" not in view.evaluate("window.seen"), "the screenshot shows the picture forming"
            assert session.text("#partial-caption") in ("Partial image 1 of 2", "Partial image 2 of 2")
            not_blank(forming)
            not_blank(session.element_shot("#partial"))
            session.finished()
            seen = view.evaluate("window.seen")
            assert seen[:3] == ["Partial image 1 of 2", "Partial image 2 of 2", "final"], seen
            assert view.locator("#forming").is_hidden()
            frames = view.locator("#frames img")
            assert [frames.nth(i).get_attribute("alt") for i in range(frames.count())] == [
                "Partial image 1 of 2",
                "Partial image 2 of 2",
            ]
            (record,) = studio.records()
            assert session.text("#revised") == record["revised_prompt"] == "a red kite over a harbour at dawn"
            assert session.text("#model-size") == "gpt-image-2, 1536×1024"
            assert "quality: low" in session.text("#options") and "partial_images: 2" in session.text("#options")
            assert data_url_bytes(session.image_src()) == studio.image(record), "the full-resolution original"
            assert box_ratio(session, "#image") == pytest.approx(1536 / 1024, rel=0.01)
            not_blank(session.element_shot("#image"))
            final = session.shot("2-final")
            not_blank(final)

            view.locator("#image").click()
            assert view.locator("#image").get_attribute("aria-pressed") == "true"
            assert view.locator("#image").bounding_box()["width"] == pytest.approx(1536, abs=1)
            session.shot("3-zoomed")
            view.locator("#image").press("Enter")
            assert view.locator("#image").get_attribute("aria-pressed") == "false"

            with session.page.expect_download() as download:
                view.locator("#download").click()
            assert Path(download.value.path()).read_bytes() == studio.image(record)
            assert download.value.suggested_filename == record["file_name"]
            session.no_errors()

    browser.run(scenario)


def test_refine_twice_then_compare_and_step_back_through_the_lineage(
    browser: BrowserThread, studio: Studio, tmp_path: Path
) -> None:
    shots = artifacts_dir(tmp_path)
    before = len(studio.records())

    def scenario(chromium: Any) -> None:
        with Session(chromium, studio.url, shots) as session:
            session.connected()
            session.generate("a lighthouse on a rocky coast")
            session.finished()
            view = session.view
            first = session.image_src()
            for number, change in ((2, "make the sky a deep orange"), (3, "add a flock of birds")):
                view.locator("#refine").fill(change)
                view.locator("#refine-go").click()
                session.finished(lineage=number)
                assert session.text("#revised") == change
                assert session.image_src() != first
            session.shot("4-refined-twice")
            records = studio.records()[before:]
            assert [r["prompt"] for r in records] == [
                "a lighthouse on a rocky coast",
                "make the sky a deep orange",
                "add a flock of birds",
            ]
            assert records[1]["parent"]["image_id"] == records[0]["image_id"]
            assert records[2]["parent"]["image_id"] == records[1]["image_id"]
            assert data_url_bytes(session.image_src()) == studio.image(records[2])
            assert data_url_bytes(str(view.locator("#before").get_attribute("src"))) == studio.image(records[1])

            slider = view.locator("#slider")
            slider.focus()
            slider.press("Home")
            assert view.locator("#before").evaluate("e => e.style.clipPath") == "inset(0px 100% 0px 0px)"
            after_only = session.element_shot("#frame")
            slider.press("End")
            assert view.locator("#before").evaluate("e => e.style.clipPath") == "inset(0px 0% 0px 0px)"
            before_only = session.element_shot("#frame")
            assert ImageChops.difference(after_only, before_only).getbbox() is not None, "the slider moved nothing"
            for _ in range(5):
                slider.press("ArrowLeft")
            assert slider.input_value() == "95"
            session.shot("5-compare")

            view.locator("#prev").click()
            view.locator("#prev").click()
            assert view.locator("#lineage button").nth(0).get_attribute("aria-current") == "true"
            assert view.locator("#prev").is_disabled() and view.locator("#compare").is_hidden()
            assert data_url_bytes(session.image_src()) == studio.image(records[0])
            assert session.text("#revised") == "a lighthouse on a rocky coast"
            session.shot("6-lineage-first")
            view.locator("#lineage button").nth(0).focus()
            view.locator("#lineage button").nth(0).press("ArrowRight")
            assert session.text("#revised") == "make the sky a deep orange"
            assert view.locator("#compare").is_visible()
            view.locator("#next").click()
            assert session.text("#revised") == "add a flock of birds" and view.locator("#next").is_disabled()
            session.no_errors()

    browser.run(scenario)


def test_a_painted_mask_reaches_foundry_as_exactly_the_transparent_pixels(
    browser: BrowserThread, studio: Studio, tmp_path: Path
) -> None:
    shots = artifacts_dir(tmp_path)
    before = len(studio.records())

    def scenario(chromium: Any) -> bytes:
        with Session(chromium, studio.url, shots) as session:
            session.connected()
            session.generate("a quiet meadow")
            session.finished()
            view = session.view
            view.locator("#paint-toggle").click()
            canvas = view.locator("#mask")
            assert canvas.is_visible() and canvas.evaluate("c => [c.width, c.height]") == [1024, 1024]
            box = canvas.bounding_box()
            mouse = session.page.mouse

            def stroke(points: list[tuple[float, float]]) -> None:
                mouse.move(box["x"] + box["width"] * points[0][0], box["y"] + box["height"] * points[0][1])
                mouse.down()
                for x, y in points[1:]:
                    mouse.move(box["x"] + box["width"] * x, box["y"] + box["height"] * y, steps=8)
                mouse.up()

            stroke([(0.2, 0.3), (0.7, 0.35), (0.6, 0.6)])
            view.get_by_label("Eraser").check()
            stroke([(0.45, 0.2), (0.45, 0.5)])
            painted_url = canvas.evaluate("c => c.toDataURL('image/png')")
            session.shot("7-painted")
            view.locator("#refine").fill("a red hot-air balloon")
            view.locator("#mask-go").click()
            session.finished(lineage=2)
            session.shot("8-mask-edited")
            session.no_errors()
            return data_url_bytes(painted_url)

    overlay = Image.open(io.BytesIO(browser.run(scenario))).getchannel("A")
    assert overlay.getbbox() is not None, "the painted overlay is not blank"
    posts = [r for r in studio.emulator.state.requests if r.path.endswith("/openai/v1/responses") and r.json]
    (tool,) = posts[-1].json["tools"]
    mask = Image.open(io.BytesIO(studio.emulator.state.files[tool["input_image_mask"]["file_id"]][1]))
    assert (mask.format, mask.mode, mask.size) == ("PNG", "RGBA", (1024, 1024))
    painted = overlay.point(lambda a: 255 if a else 0)
    transparent = mask.getchannel("A").point(lambda a: 255 if a == 0 else 0)
    assert sum(mask.getchannel("A").histogram()[1:255]) == 0, "every pixel fully transparent or fully opaque"
    assert transparent.tobytes() == painted.tobytes(), "the mask's transparent pixels are exactly the painted ones"
    assert transparent.getpixel((int(0.3 * 1024), int(0.32 * 1024))) == 255, "brushed"
    assert transparent.getpixel((int(0.45 * 1024), int(0.33 * 1024))) == 0, "erased"
    assert transparent.getpixel((5, 5)) == 0 and transparent.getpixel((1018, 1018)) == 0
    original, edited = studio.records()[before:]
    assert edited["prompt"] == "a red hot-air balloon" and edited["parent"]["image_id"] == original["image_id"]
    # The emulator repaints only where the mask is transparent, as the service does.
    changed = ImageChops.difference(
        Image.open(io.BytesIO(studio.image(original))).convert("RGB"),
        Image.open(io.BytesIO(studio.image(edited))).convert("RGB"),
    ).convert("L")
    outside = ImageChops.multiply(changed.point(lambda v: 255 if v else 0), ImageChops.invert(transparent))
    assert outside.getbbox() is None and changed.getbbox() is not None


def test_dark_theme_narrow_frame_and_keyboard(browser: BrowserThread, studio: Studio, tmp_path: Path) -> None:
    shots = artifacts_dir(tmp_path)

    def luminance(session: Session, where: Any) -> float:
        rgb = where.evaluate("() => getComputedStyle(document.body).backgroundColor")
        red, green, blue = (int(part) for part in rgb[rgb.index("(") + 1 : rgb.index(")")].split(",")[:3])
        return (0.2126 * red + 0.7152 * green + 0.0722 * blue) / 255

    def scenario(chromium: Any) -> None:
        narrow = {"width": 380, "height": 1400}
        with Session(chromium, studio.url + "?theme=dark", shots, viewport=narrow) as session:
            session.connected()
            session.generate("a night market in the rain", size="1024x1536")
            session.finished()
            view = session.view
            assert view.evaluate("document.documentElement.dataset.theme") == "dark"
            assert luminance(session, view) < 0.2 and luminance(session, session.page) < 0.2
            assert view.evaluate("document.documentElement.scrollWidth <= document.documentElement.clientWidth")
            # ui/notifications/size-changed: the host sized the frame to the view's content.
            content = view.evaluate("document.getElementById('studio').getBoundingClientRect().height")
            session.page.wait_for_function(
                "h => Math.abs(document.querySelector('iframe').clientHeight - h) <= 4", arg=content
            )
            assert box_ratio(session, "#image") == pytest.approx(1024 / 1536, rel=0.02)
            not_blank(session.shot("9-dark-narrow"))
            unlabelled = view.evaluate(
                """() => [...document.querySelectorAll('input, button, select, canvas, a')].filter(e => {
                       const labelled = e.labels && e.labels.length && e.labels[0].textContent;
                       const name = e.getAttribute('aria-label') || labelled || e.textContent.trim()
                         || e.getAttribute('aria-labelledby');
                       return !name; }).map(e => e.id || e.outerHTML.slice(0, 60))"""
            )
            assert unlabelled == []
            view.locator("#image").focus()
            session.page.keyboard.press("Enter")
            assert view.locator("#image").get_attribute("aria-pressed") == "true"
            view.locator("#refine").focus()
            session.page.keyboard.press("Tab")
            assert view.evaluate("document.activeElement.id") == "refine-go"
            # Painting with the keyboard: the canvas takes the focus, Space paints, Shift+arrows stroke.
            view.locator("#paint-toggle").click()
            assert view.evaluate("document.activeElement.id") == "mask"
            assert view.locator("#mask-go").is_disabled()
            for key in ("Space", "Shift+ArrowRight", "Shift+ArrowDown"):
                session.page.keyboard.press(key)
            assert view.locator("#mask-go").is_enabled()
            session.page.keyboard.press("Escape")
            assert view.evaluate("document.activeElement.id") == "paint-toggle"
            session.page.select_option("#theme", "light")
            view.wait_for_function("() => document.documentElement.dataset.theme === 'light'")
            assert luminance(session, view) > 0.8
            session.no_errors()

    browser.run(scenario)


def test_the_studio_asks_for_the_token_and_refuses_a_wrong_one(
    browser: BrowserThread, studio: Studio, tmp_path: Path
) -> None:
    """The page shows nothing but the token form until /mcp accepts a token; the other tests sign in and then
    every request (the view's resource reads included) carries it."""
    shots = artifacts_dir(tmp_path)

    def scenario(chromium: Any) -> None:
        with Session(chromium, studio.url, shots) as session:
            session.sign_in("not-the-token-at-all-0000")
            refused = "() => /refused/.test(document.getElementById('host-status').textContent)"
            session.page.wait_for_function(refused)
            assert session.page.locator("#generate-form").is_hidden()
            assert session.page.locator("iframe").count() == 0
            session.shot("10-token")
            session.connected()

    browser.run(scenario)
