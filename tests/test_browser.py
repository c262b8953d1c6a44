"""The dashboard in a real headless Chromium, against a live server and a real qcluster.

Screenshots of each page go to tests/artifacts/ (ignored by git).
"""

import shutil
from pathlib import Path

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
    wait(browser, lambda d: d.current_url.endswith("thumbnail.png/"))
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
    wait(browser, expected_conditions.alert_is_present()).accept()
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
    assert '"width": 20' in browser.find_element(By.CSS_SELECTOR, "pre.metadata").text
    preview = browser.find_element(By.CSS_SELECTOR, "img.thumbnail")
    wait(browser, lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0;", preview))
    shot(browser, "datafile")
    browser.get(f"{live_server.url}/datafiles/")
    assert "20 × 10, 1 band, EPSG:25832" in browser.find_element(By.CSS_SELECTOR, "table.files").text
    shot(browser, "datafiles")


def test_the_pages_fit_a_phone(live_server, browser, owner):
    browser.set_window_size(390, 844)
    log_in(browser, live_server)
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1;")
    shot(browser, "jobs-phone")
