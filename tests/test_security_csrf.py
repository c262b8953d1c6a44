"""The old pipeline's GET endpoints that change state cannot be set off from another site.

A logged-in user's browser sends its SameSite=Lax session cookie on a top-level GET navigation from
any site, and Django's CSRF check lets GET through: so /start_job and /cancel_job take a session
login only when the browser says the request comes from this site or was typed in."""

import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from jobs.services.submit import job_submit
from jobs.models import Job, JobStatus

from .chromium import headless_chromium

needs_chromium = pytest.mark.skipif(not shutil.which("chromedriver"), reason="needs chromium-driver")


@pytest.fixture
def logged_in(client, owner):
    client.force_login(owner)
    return client


def start_job(client, town, **headers):
    return client.get(f"/start_job?town_id={town.id}", headers=headers)


def assert_refused(response):
    assert response.status_code == 403
    body = response.json()
    assert body["status"] == 403 and body["data"] is None
    assert "another site" in body["message"] and "Authorization: Token" in body["message"]


@pytest.mark.parametrize("fetch_site", ["cross-site", "same-site"])
def test_it_refuses_start_job_with_a_session_from_another_site(logged_in, town, fetch_site):
    assert_refused(start_job(logged_in, town, sec_fetch_site=fetch_site))
    assert not Job.objects.exists()


@pytest.mark.parametrize("fetch_site", ["same-origin", "none"])
def test_it_starts_a_job_from_this_site_or_the_address_bar(logged_in, town, fetch_site):
    response = start_job(logged_in, town, sec_fetch_site=fetch_site)
    assert response.status_code == 201 and response.json()["status"] == 201
    assert Job.objects.get().owner.username == "owner"


def test_it_refuses_a_session_with_no_sign_of_where_the_request_came_from(logged_in, town):
    assert_refused(start_job(logged_in, town))
    assert not Job.objects.exists()


@pytest.mark.parametrize("headers", [{"origin": "http://testserver"}, {"referer": "http://testserver/jobs/"}])
def test_without_sec_fetch_site_an_origin_or_referer_of_this_site_will_do(logged_in, town, headers):
    assert start_job(logged_in, town, **headers).status_code == 201


@pytest.mark.parametrize("headers", [{"origin": "http://evil.example"}, {"origin": "null"},
                                     {"referer": "http://evil.example/testserver/"},
                                     {"referer": "https://testserver/jobs/"}])
def test_without_sec_fetch_site_another_origin_or_referer_is_refused(logged_in, town, headers):
    assert_refused(start_job(logged_in, town, **headers))
    assert not Job.objects.exists()


def test_sec_fetch_site_decides_over_a_referer_of_this_site(logged_in, town):
    assert_refused(start_job(logged_in, town, sec_fetch_site="cross-site", referer="http://testserver/"))


def test_a_token_needs_no_sign_of_where_the_request_came_from(town, owner):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=owner).key}")
    assert start_job(client, town).status_code == 201
    assert start_job(client, town, sec_fetch_site="cross-site").status_code == 201
    assert Job.objects.count() == 2


def test_it_refuses_cancel_job_with_a_session_from_another_site(logged_in, town, owner):
    job = job_submit(owner=owner, job_type="hillshade", town_id=town.id)
    assert_refused(logged_in.get(f"/cancel_job?job_id={job.pk}", headers={"sec_fetch_site": "cross-site"}))
    assert Job.objects.get(pk=job.pk).status == JobStatus.QUEUED
    answer = logged_in.get(f"/cancel_job?job_id={job.pk}", headers={"sec_fetch_site": "same-origin"})
    assert answer.status_code == 200 and Job.objects.get(pk=job.pk).status == JobStatus.CANCELED


def test_job_status_only_reads_and_answers_any_site(logged_in, town, owner):
    job = job_submit(owner=owner, job_type="hillshade", town_id=town.id)
    answer = logged_in.get(f"/job_status?job_id={job.pk}", headers={"sec_fetch_site": "cross-site"})
    assert answer.status_code == 200 and answer.json()["data"]["id"] == job.pk


def test_without_credentials_it_is_still_a_401(db, client, town):
    assert start_job(client, town, sec_fetch_site="cross-site").status_code == 401


# The attack in a real browser.

@pytest.fixture
def chromium():
    """Debian's headless Chromium, keeping the page's console messages (for CSP violations)."""
    with headless_chromium(console=True) as driver:
        yield driver


def wait(driver, condition, timeout=30):
    return WebDriverWait(driver, timeout, poll_frequency=0.05).until(condition)


def site_url(live_server):
    """The live server as http://127.0.0.1:<port>: a site of its own, apart from http://localhost:<port>."""
    return f"http://127.0.0.1:{live_server.thread.port}"


def log_in(driver, url, username="owner", password="owner-pass-1"):
    driver.get(f"{url}/accounts/login/")
    driver.find_element(By.NAME, "username").send_keys(username)
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait(driver, expected_conditions.title_contains("Jobs"))


@pytest.fixture
def attacker_site():
    """Serves one page at http://localhost:<port>/ that a test sets: another site than 127.0.0.1."""
    pages = {}

    class Page(BaseHTTPRequestHandler):
        def do_GET(self):
            body = pages.get(self.path, "not here").encode()
            self.send_response(200 if self.path in pages else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield pages, f"http://localhost:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@needs_chromium
def test_a_page_on_another_site_cannot_start_a_job_for_a_logged_in_user(live_server, chromium, town, owner,
                                                                         attacker_site):
    url = site_url(live_server)
    log_in(chromium, url)
    target = f"{url}/start_job?town_id={town.id}"
    pages, attacker = attacker_site
    pages["/"] = f'<!doctype html><title>win a prize</title><script>location.href = "{target}";</script>'
    chromium.get(f"{attacker}/")
    wait(chromium, lambda d: d.current_url == target)
    wait(chromium, lambda d: '"status":403' in d.find_element(By.TAG_NAME, "body").text.replace(" ", ""))
    # A 403, not a 401: the session cookie did ride along, and was refused.
    assert "another site" in chromium.find_element(By.TAG_NAME, "body").text
    assert not Job.objects.exists()

    # The same address typed in by the logged-in user still works.
    chromium.get(target)
    wait(chromium, lambda d: '"status":201' in d.find_element(By.TAG_NAME, "body").text.replace(" ", ""))
    assert Job.objects.get().owner == owner
