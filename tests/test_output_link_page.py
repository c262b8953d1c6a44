"""The job page's "Copy link for QGIS": in a real headless Chromium, and as a plain form."""

import shutil

import pytest
import requests
from django.test import Client
from selenium.webdriver.common.by import By

from jobs.services.submit import job_submit
from jobsite.media import media_path

from .test_browser import browser, log_in, shot, wait  # noqa: F401 (fixtures)
from .test_execution import run


@pytest.fixture
def finished(transactional_db, index, owner, media):
    job = run(job_submit(owner=owner, job_type="hillshade", tile_ids=index.ids[:2]))
    return job, media_path(job.outputs[0]["path"]).read_bytes()


@pytest.mark.skipif(not shutil.which("chromedriver"), reason="needs chromium-driver")
def test_the_button_makes_a_link_that_serves_ranges_without_a_login(finished, live_server, browser):  # noqa: F811
    job, data = finished
    log_in(browser, live_server)
    browser.get(f"{live_server.url}/jobs/{job.pk}/")
    browser.find_element(By.CSS_SELECTOR, ".output-link a").click()
    field = browser.find_element(By.CSS_SELECTOR, ".output-link input.link")
    wait(browser, lambda _: field.is_displayed() and field.get_attribute("value"))
    shot(browser, "job-output-link")
    url = field.get_attribute("value")
    assert url.startswith(f"{live_server.url}/api/v1/links/") and url.endswith("/hillshade.tif")
    assert browser.find_element(By.CSS_SELECTOR, ".output-link a").text in ("Copied", "Copy the link below")
    part = requests.get(url, headers={"Range": "bytes=0-99"}, timeout=10)
    assert part.status_code == 206 and part.content == data[:100]


def test_without_javascript_the_link_leads_to_a_page_that_makes_it(finished, client):
    job, data = finished
    client.login(username="owner", password="owner-pass-1")
    job_page = client.get(f"/jobs/{job.pk}/").content.decode()
    assert f'href="/jobs/{job.pk}/outputs/hillshade.tif/link/"' in job_page
    asking = client.get(f"/jobs/{job.pk}/outputs/hillshade.tif/link/").content.decode()
    assert "Make the link" in asking and "/api/v1/links/" not in asking
    page = client.post(f"/jobs/{job.pk}/outputs/hillshade.tif/link/")
    assert page.status_code == 200
    html = page.content.decode()
    start = html.index("http://testserver/api/v1/links/")
    url = html[start:html.index('"', start)]
    assert b"".join(Client().get(url).streaming_content) == data  # no login needed
    assert client.post(f"/jobs/{job.pk}/outputs/other.tif/link/").status_code == 404
    assert client.put(f"/jobs/{job.pk}/outputs/hillshade.tif/link/").status_code == 405
