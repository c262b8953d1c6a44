"""The dashboard in a real headless Chromium, against a live server and a real qcluster.

Screenshots of each page go to tests/artifacts/ (ignored by git).
"""

import re
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from jobs.models import Job, JobStatus, TileStatus

from .chromium import headless_chromium
from .datafile_samples import geotiff_bytes

pytestmark = [pytest.mark.cluster, pytest.mark.skipif(not shutil.which("chromedriver"), reason="needs chromium-driver")]

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


@pytest.fixture
def browser():
    with headless_chromium() as driver:
        yield driver


def shot(browser, name):
    ARTIFACTS.mkdir(exist_ok=True)
    browser.save_screenshot(str(ARTIFACTS / f"{name}.png"))


def wait(browser, condition, timeout=30):
    return WebDriverWait(browser, timeout, poll_frequency=0.05).until(condition)


def log_in(browser, live_server, username="owner", password="owner-pass-1"):
    browser.get(f"{live_server.url}/accounts/login/")
    browser.find_element(By.NAME, "username").send_keys(username)
    browser.find_element(By.NAME, "password").send_keys(password)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(browser, expected_conditions.title_contains("Jobs"))


def test_submit_a_job_and_watch_it_finish_without_reloading(cluster, live_server, browser, large_index, owner):
    log_in(browser, live_server)
    shot(browser, "jobs-empty")
    browser.get(f"{live_server.url}/jobs/new/?type=slope")
    browser.find_element(By.NAME, "tile_ids").send_keys(", ".join(map(str, large_index.ids)))
    browser.find_element(By.NAME, "labels").send_keys("browser")
    shot(browser, "job-new")
    browser.find_element(By.CSS_SELECTOR, "form.job-form button[type=submit]:not(.switch-type)").click()
    wait(browser, expected_conditions.title_contains("Job "))
    browser.execute_script("window.stillTheSamePage = true;")

    bar = browser.find_element(By.CSS_SELECTOR, ".job-page > [data-field=progress]")
    seen = set()

    def finished(driver):
        seen.add(int(bar.get_attribute("aria-valuenow")))
        return bar.get_attribute("aria-valuenow") == "100"

    wait(browser, finished, timeout=90)
    assert browser.execute_script("return window.stillTheSamePage === true;")  # updated in place
    assert any(0 < value < 100 for value in seen) or len(seen) > 1, seen
    tiles = browser.find_elements(By.CSS_SELECTOR, "svg.tile-map rect")
    assert len(tiles) == len(large_index.ids)
    wait(browser, lambda d: all("status-succeeded" in t.get_attribute("class") for t in tiles))
    assert tiles[0].find_element(By.TAG_NAME, "title").get_attribute("textContent").startswith("tile 1000")
    thumbnail = wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "img.thumbnail"))
    wait(browser, lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0;", thumbnail))
    shot(browser, "job-succeeded")
    thumbnail.click()
    wait(browser, lambda d: d.current_url.endswith("thumbnail.png"))
    assert browser.execute_script("return document.images.length && document.images[0].naturalWidth;") > 0

    browser.get(f"{live_server.url}/")
    assert "browser" in browser.find_element(By.CSS_SELECTOR, "table.jobs").text
    shot(browser, "jobs")


def test_cancel_a_running_job_with_the_button(cluster, live_server, browser, large_index, owner, client_for):
    job_id = client_for(owner).post("/api/v1/jobs/", {"type": "hillshade", "tile_ids": large_index.ids,
                                                      "params": {"mode": "multidirectional"}}, format="json").json()["id"]
    log_in(browser, live_server)
    wait(browser, lambda d: Job.objects.get(pk=job_id).status == JobStatus.RUNNING)
    browser.get(f"{live_server.url}/jobs/{job_id}/")
    shot(browser, "job-running")
    browser.find_element(By.CSS_SELECTOR, "form[data-action=cancel] button").click()
    dialog = wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "dialog.confirm[open]"))
    assert dialog.find_element(By.CSS_SELECTOR, ".question").text == "Cancel this job?"
    assert [b.text for b in dialog.find_elements(By.TAG_NAME, "button")] == ["Cancel job", "Keep running"]
    shot(browser, "job-cancel-dialog")
    dialog.find_element(By.CSS_SELECTOR, "button[value=no]").click()  # Keep running
    wait(browser, lambda d: not dialog.is_displayed())
    assert Job.objects.get(pk=job_id).status == JobStatus.RUNNING
    browser.find_element(By.CSS_SELECTOR, "form[data-action=cancel] button").click()
    wait(browser, lambda d: dialog.is_displayed())
    dialog.find_element(By.CSS_SELECTOR, "button[value=yes]").click()  # Cancel job
    wait(browser, expected_conditions.text_to_be_present_in_element((By.CSS_SELECTOR, ".messages"), "canceled"))
    job = Job.objects.get(pk=job_id)
    assert job.status == JobStatus.CANCELED
    assert job.tiles.filter(status=TileStatus.SUCCEEDED).count() < len(large_index.ids)
    assert browser.find_element(By.CSS_SELECTOR, "form[data-action=cancel]").get_attribute("hidden") is not None
    shot(browser, "job-canceled")


def test_upload_a_file_and_see_its_metadata(live_server, browser, owner, media, tmp_path):
    path = tmp_path / "dem.tif"
    path.write_bytes(geotiff_bytes(tmp_path))
    log_in(browser, live_server)
    browser.get(f"{live_server.url}/datafiles/")
    browser.find_element(By.CSS_SELECTOR, "input[type=file]").send_keys(str(path))
    browser.find_element(By.CSS_SELECTOR, "form.upload button[type=submit]").click()
    wait(browser, expected_conditions.title_contains("dem.tif"))
    assert "Width 20" in browser.find_element(By.CSS_SELECTOR, "table.metadata").text
    raw = browser.find_element(By.CSS_SELECTOR, "pre.metadata")
    assert not raw.is_displayed()
    browser.find_element(By.CSS_SELECTOR, "details.raw-metadata summary").click()
    assert '"width": 20' in raw.text
    preview = browser.find_element(By.CSS_SELECTOR, "img.thumbnail")
    wait(browser, lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0;", preview))
    # 20 x 10 pixels, drawn 12 times as large with square pixels
    assert browser.execute_script("return [arguments[0].clientWidth, arguments[0].clientHeight];", preview) == [240, 120]
    assert preview.value_of_css_property("image-rendering") == "pixelated"
    shot(browser, "datafile")
    browser.get(f"{live_server.url}/datafiles/")
    assert "20 × 10, 1 band, EPSG:25832" in browser.find_element(By.CSS_SELECTOR, "table.files").text
    shot(browser, "datafiles")


def test_the_pages_fit_a_phone(live_server, browser, owner):
    browser.set_window_size(390, 844)
    log_in(browser, live_server)
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1;")
    shot(browser, "jobs-phone")


# What a job page shows live is what a reload shows.

def job_page_fields(browser):
    """The text of every field of a job page, the state of its tiles, buttons and links."""
    page = browser.find_element(By.CSS_SELECTOR, ".job-page")
    fields = {name: page.find_element(By.CSS_SELECTOR, selector).text for name, selector in {
        "heading": "h1", "progress": ".job-page > [data-field=progress]", "state": "[data-part=state]",
        "result": "[data-part=result]", "details": "[data-part=facts]", "log": ".log", "actions": ".actions"}.items()}
    # The page's text but its map's, whose scale, legend and popup follow the map's own loading.
    fields["page"] = browser.execute_script(
        "const copy = arguments[0].cloneNode(true); copy.querySelectorAll('.map-panel').forEach((m) => m.remove());"
        "document.body.append(copy); const text = copy.innerText; copy.remove(); return text;", page)
    fields["progress value"] = page.find_element(By.CSS_SELECTOR, "[data-field=progress]").get_attribute("aria-valuenow")
    fields["shown actions"] = [element.get_attribute("data-action") for element in
                               page.find_elements(By.CSS_SELECTOR, "[data-action]") if element.is_displayed()]
    fields["tiles"] = browser.execute_script(
        "return [...document.querySelectorAll('svg.tile-map rect')]"
        ".map((r) => `${r.getAttribute('class')} ${r.textContent}`);")
    fields["links"] = [(a.text, a.get_attribute("href")) for a in page.find_elements(By.CSS_SELECTOR, "[data-part] a")]
    fields["images"] = [img.get_attribute("src") for img in page.find_elements(By.TAG_NAME, "img")]
    return fields


def details(browser):
    return browser.execute_script(
        "const facts = {};"
        "for (const dt of document.querySelectorAll('[data-part=facts] dt'))"
        "  facts[dt.textContent] = dt.nextElementSibling.textContent;"
        "return {Started: facts.Started, Finished: facts.Finished};")


def test_a_job_watched_to_its_end_reads_as_it_does_after_a_reload(start_cluster, live_server, browser, large_index,
                                                                   owner, client_for):
    job_id = client_for(owner).post("/api/v1/jobs/", {"type": "hillshade", "tile_ids": large_index.ids},
                                    format="json").json()["id"]
    log_in(browser, live_server)
    browser.get(f"{live_server.url}/jobs/{job_id}/")
    browser.execute_script("window.stillTheSamePage = true;")
    assert details(browser) == {"Started": "–", "Finished": "–"}  # queued: no cluster yet
    start_cluster()
    wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "h1 [data-field=status]").text == "succeeded", timeout=90)
    assert browser.execute_script("return window.stillTheSamePage === true;")  # updated in place
    stamp = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"
    assert all(re.fullmatch(stamp, value) for value in details(browser).values()), details(browser)
    result = browser.find_element(By.CSS_SELECTOR, "[data-part=result]").text
    assert re.search(r"hillshade\.tif \(\d+(\.\d)? (KB|MB)\)", result), result
    live = job_page_fields(browser)
    shot(browser, "job-live-end")

    browser.refresh()
    assert browser.execute_script("return window.stillTheSamePage === undefined;")
    reloaded = job_page_fields(browser)
    for name in reloaded:
        assert live[name] == reloaded[name], name


def test_a_job_canceled_elsewhere_offers_resume_live_as_a_reload_does(cluster, live_server, browser, large_index,
                                                                      owner, client_for):
    api = client_for(owner)
    job_id = api.post("/api/v1/jobs/", {"type": "hillshade", "tile_ids": large_index.ids,
                                        "params": {"mode": "multidirectional"}}, format="json").json()["id"]
    log_in(browser, live_server)
    wait(browser, lambda d: Job.objects.get(pk=job_id).status == JobStatus.RUNNING)
    browser.get(f"{live_server.url}/jobs/{job_id}/")
    assert not browser.find_element(By.CSS_SELECTOR, "details[data-action=resume]").is_displayed()
    assert api.post(f"/api/v1/jobs/{job_id}/cancel/").status_code == 200
    resume = browser.find_element(By.CSS_SELECTOR, "details[data-action=resume]")
    wait(browser, lambda d: resume.is_displayed())
    # Settled: its stopping tiles have said how they ended, and the page stopped asking.
    wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, ".job-page").get_attribute("data-settled") == "true")
    live = job_page_fields(browser)
    assert live["shown actions"] == ["delete", "resume"] and "canceled" in live["heading"]
    assert not any("status-running" in tile or "status-pending" in tile for tile in live["tiles"])
    browser.refresh()
    reloaded = job_page_fields(browser)
    for name in reloaded:
        assert live[name] == reloaded[name], name


def test_the_site_has_a_favicon_and_pages_ask_for_nothing_missing(live_server, owner):
    with headless_chromium(console=True) as browser:
        log_in(browser, live_server)
        for url in ("/", "/jobs/new/", "/datafiles/"):
            browser.get(f"{live_server.url}{url}")
            icon = browser.find_element(By.CSS_SELECTOR, "link[rel=icon]").get_attribute("href")
            status = browser.execute_async_script(
                "fetch(arguments[0]).then((r) => arguments[1](`${r.status} ${r.headers.get('Content-Type')}`));", icon)
            assert status == "200 image/svg+xml", (url, status)
        # By the status alone: the live server's port may hold the digits 404 too.
        missing = [entry["message"] for entry in browser.get_log("browser") if "status of 404" in entry["message"]]
        assert missing == []


def test_the_job_page_and_the_jobs_list_update_from_the_event_stream(asgi_server, start_cluster, browser, large_index,
                                                                      owner, client_for):
    """Served by uvicorn, as `make run` serves it: the pages, open before the jobs start, listen
    to their event streams (no polling) and end as a reload shows them."""
    server = SimpleNamespace(url=asgi_server())
    api = client_for(owner)
    first, second = (api.post("/api/v1/jobs/", {"type": "hillshade", "tile_ids": large_index.ids},
                              format="json").json()["id"] for _ in range(2))
    log_in(browser, server)
    browser.get(f"{server.url}/jobs/{first}/")
    job_tab = browser.current_window_handle
    wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, ".job-page").get_attribute("data-stream") == "open")
    browser.execute_script("window.stillTheSamePage = true;")
    browser.switch_to.new_window("tab")
    browser.get(f"{server.url}/")
    table = browser.find_element(By.CSS_SELECTOR, "table.jobs")
    wait(browser, lambda d: table.get_attribute("data-stream") == "open")
    rows = {job: table.find_element(By.CSS_SELECTOR, f"tr[data-job='{job}']") for job in (first, second)}
    assert {row.find_element(By.CSS_SELECTOR, "[data-field=status]").text for row in rows.values()} == {"queued"}

    start_cluster()
    for row in rows.values():
        wait(browser, lambda d, row=row: row.find_element(By.CSS_SELECTOR, "[data-field=status]").text == "succeeded",
             timeout=90)
        assert row.find_element(By.CSS_SELECTOR, "[data-field=progress]").get_attribute("aria-valuenow") == "100"
    assert table.get_attribute("data-stream") == "open"  # never fell back to polling

    browser.switch_to.window(job_tab)
    wait(browser, lambda d: d.find_element(By.CSS_SELECTOR, "h1 [data-field=status]").text == "succeeded", timeout=30)
    assert browser.execute_script("return window.stillTheSamePage === true;")
    assert browser.find_element(By.CSS_SELECTOR, ".job-page").get_attribute("data-stream") == "open"
    result = browser.find_element(By.CSS_SELECTOR, "[data-part=result]").text
    assert re.search(r"hillshade\.tif \(\d+(\.\d)? (KB|MB)\)", result), result
    live = job_page_fields(browser)
    browser.refresh()
    reloaded = job_page_fields(browser)
    for name in reloaded:
        assert live[name] == reloaded[name], name
