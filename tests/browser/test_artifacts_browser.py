"""The run page's artifacts in Chromium: the tree opens folder by folder, an image shows, and an
uploaded HTML file runs no script on Runtree's origin, framed or opened on its own."""

import io

import matplotlib
import pytest
from PIL import Image
from playwright.sync_api import expect

from tests.browser.conftest import ARTIFACTS
from tests.factories import RunFactory
from tracker.constants import LOGGED_IMAGES_TAG
from tracker.services import run_set_tag
from tracker.services.artifacts import artifact_put

matplotlib.use("Agg")  # no display: render to files
from matplotlib import pyplot  # noqa: E402 (after choosing the backend)

pytestmark = pytest.mark.browser

# Would mark Runtree's page (or its own) if it ran: it must not.
HOSTILE_HTML = """<!doctype html><title>report</title><p id="body">a report</p>
<script>document.title = "script ran"; try { parent.document.body.dataset.pwned = "yes" } catch (e) {}</script>
<img src="x" onerror="document.title = 'onerror ran'">"""


@pytest.fixture
def logged_run(default_experiment):
    """A run with a figure, an HTML report and a config, stored as the artifact API stores them
    (the API itself is tested with the mlflow client in tests/api/)."""
    run = RunFactory(experiment=default_experiment, name="with artifacts")
    run.artifact_uri = f"mlflow-artifacts:/0/{run.run_id}/artifacts"
    run.save(update_fields=["artifact_uri"])
    figure, axes = pyplot.subplots(figsize=(4, 3))
    axes.plot([0, 1, 2], [2, 0, 1])
    png = io.BytesIO()
    figure.savefig(png, format="png")
    pyplot.close(figure)
    for path, data in (
        ("plots/curve.png", png.getvalue()),
        ("report.html", HOSTILE_HTML.encode()),
        ("config/params.json", b'{"lr": 0.1}'),
    ):
        artifact_put(path=f"0/{run.run_id}/artifacts/{path}", body=io.BytesIO(data), content_length=len(data))
    return run.run_id


@pytest.fixture
def chromium_page(browser, live_server):
    """A page whose console is kept: Chromium reports each script the sandbox blocked there."""
    context = browser.new_context(base_url=live_server.url, viewport={"width": 1400, "height": 900})
    context.set_default_timeout(10_000)
    page = context.new_page()
    page.console_messages_seen = []
    page.on("console", lambda message: page.console_messages_seen.append(message.text))
    yield page
    context.close()


def test_the_tree_opens_lazily_and_an_image_previews(chromium_page, logged_run):
    page = chromium_page
    page.goto(f"/runs/{logged_run}/")
    section = page.locator("section.artifacts")
    expect(section.locator(".artifact-uri code")).to_have_text(f"mlflow-artifacts:/0/{logged_run}/artifacts")
    expect(section.locator('[data-artifact-path="plots/curve.png"]')).to_have_count(0)  # not loaded yet

    section.locator('details.artifact-folder[data-path="plots"] > summary').click()
    image_row = section.locator('[data-artifact-path="plots/curve.png"]')
    expect(image_row).to_contain_text("KB")
    expect(image_row.locator("a.artifact-download")).to_have_attribute(
        "href", f"/get-artifact?run_id={logged_run}&path=plots/curve.png"
    )
    image_row.locator("summary").click()
    image = image_row.locator("img.artifact-image")
    expect(image).to_be_visible()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=image.element_handle())
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / "run-artifacts.png", full_page=True)


def test_an_uploaded_html_file_runs_no_script_framed_or_opened(chromium_page, logged_run):
    page = chromium_page
    page.goto(f"/runs/{logged_run}/")
    page.locator('[data-artifact-path="report.html"] summary').click()
    frame_element = page.locator("iframe.artifact-html")
    expect(frame_element).to_be_visible()
    frame = frame_element.element_handle().content_frame()
    frame.wait_for_load_state()
    expect(frame.locator("#body")).to_have_text("a report")  # it shows...
    assert frame.evaluate("document.title") == "report"  # ...and its script and onerror never ran
    assert page.evaluate("document.body.dataset.pwned") is None
    assert page.evaluate("document.title") != "script ran"
    assert any("sandboxed" in text and "allow-scripts" in text for text in page.console_messages_seen)

    # Opened on its own, as a link would: the response's CSP sandbox still stops the script.
    page.goto(f"/runs/{logged_run}/artifacts/inline/?path=report.html")
    expect(page.locator("#body")).to_have_text("a report")
    assert page.evaluate("document.title") == "report"
    # The download link is an attachment: the browser saves it, it does not render it.
    page.goto(f"/runs/{logged_run}/")
    with page.expect_download() as download:
        page.locator('[data-artifact-path="report.html"] a.artifact-download').click()
    assert download.value.suggested_filename == "report.html"
    assert download.value.path().read_bytes() == HOSTILE_HTML.encode()


def test_images_logged_by_key_and_step_show_as_thumbnails_that_open_full_size(chromium_page, default_experiment):
    """As mlflow.log_image(image, key="val/sample", step=n) names them: a PNG and a WebP
    thumbnail per step, and the run's mlflow.loggedImages tag."""
    run = RunFactory(experiment=default_experiment, name="with images")
    run.artifact_uri = f"mlflow-artifacts:/0/{run.run_id}/artifacts"
    run.save(update_fields=["artifact_uri"])
    run_set_tag(run=run, key=LOGGED_IMAGES_TAG, value="True")
    for step in range(3):
        uuid = f"0000000{step}-aaaa-bbbb-cccc-dddddddddddd"
        stem = f"images/val~sample+step+{step}+timestamp+{1_700_000_000_000 + step}+{uuid}"
        for suffix, image_format in ((".png", "PNG"), ("+compressed.webp", "WEBP")):
            data = io.BytesIO()
            Image.new("RGB", (24, 24), (40 * step, 120, 200)).save(data, format=image_format)
            path = f"0/{run.run_id}/artifacts/{stem}{suffix}"
            artifact_put(path=path, body=io.BytesIO(data.getvalue()), content_length=len(data.getvalue()))

    page = chromium_page
    page.goto(f"/runs/{run.run_id}/")
    section = page.locator("section.logged-images")
    expect(section.locator("h3")).to_contain_text("val/sample")
    thumbnails = section.locator(".image-strip img")
    expect(thumbnails).to_have_count(3)
    for index in range(3):
        page.wait_for_function(
            "img => img.complete && img.naturalWidth === 24", arg=thumbnails.nth(index).element_handle()
        )
    expect(section.locator(".image-step").nth(2)).to_have_text("step 2")
    with page.context.expect_page() as opened:
        thumbnails.nth(2).click()
    full_size = opened.value
    full_size.wait_for_load_state()
    assert full_size.url.endswith(".png")
    page.screenshot(path=ARTIFACTS / "run-logged-images.png", full_page=True)
