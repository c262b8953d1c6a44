"""Production settings: `check --deploy` passes with the environment README documents, secure
defaults, the local key, password rules, and a Content-Security-Policy the pages work under."""

import json
import os
import re
import secrets
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from selenium.webdriver.common.by import By

from datafiles.services import datafile_store
from jobs.services.submit import job_submit

from .datafile_samples import geotiff_bytes
from .test_execution import run
from .test_security_csrf import chromium, log_in, needs_chromium, site_url, wait  # noqa: F401 (chromium: a fixture)

BASE_DIR = Path(__file__).resolve().parent.parent


def production_environment():
    """The variables of README's production block (`# /etc/jobsite.env ...`), with a real key."""
    block = re.search(r"```sh\n# /etc/jobsite.env.*?\n(.*?)```", (BASE_DIR / "README.md").read_text(), re.S)
    assert block, "README has no /etc/jobsite.env block"
    env = dict(line.split("=", 1) for line in block.group(1).splitlines() if line and not line.startswith("#"))
    env["SECRET_KEY"] = secrets.token_urlsafe(50)
    return env


def django_process(tmp_path, env, *args, command=("manage.py",)):
    """manage.py ARGS on the project's own settings, with `env` and nothing of the test's environment."""
    clean = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "DJANGO_SETTINGS_MODULE": "jobsite.settings",
             "JOBSITE_VAR_DIR": str(tmp_path / "var"), **env}
    return subprocess.run([sys.executable, *command, *args], cwd=BASE_DIR, env=clean, capture_output=True,
                          text=True, timeout=120)


def settings_in(tmp_path, env, *names):
    """Settings as a fresh process on the project's settings reads them."""
    code = ("import json; from django.conf import settings; "
            f"print(json.dumps({{n: getattr(settings, n) for n in {names!r}}}))")
    answer = django_process(tmp_path, env, code, command=("-c",))
    assert answer.returncode == 0, answer.stderr
    return json.loads(answer.stdout)


def test_check_deploy_passes_with_the_documented_production_environment(tmp_path):
    env = production_environment()
    assert {"SECRET_KEY", "ALLOWED_HOSTS", "DEBUG", "SECURE_SSL_REDIRECT", "SECURE_HSTS_SECONDS"} <= set(env)
    answer = django_process(tmp_path, env, "check", "--deploy", "--fail-level", "WARNING")
    assert answer.returncode == 0, answer.stdout + answer.stderr
    assert "no issues" in answer.stdout


def test_check_deploy_warns_without_that_environment(tmp_path):
    answer = django_process(tmp_path, {"SECRET_KEY": secrets.token_urlsafe(50)}, "check", "--deploy", "--fail-level",
                            "WARNING")
    assert answer.returncode != 0 and "security.W004" in answer.stderr and "security.W008" in answer.stderr


def test_with_debug_off_cookies_are_secure_and_headers_strict_by_default(tmp_path):
    values = settings_in(tmp_path, {"SECRET_KEY": "k"}, "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE",
                         "X_FRAME_OPTIONS", "SECURE_CONTENT_TYPE_NOSNIFF", "SECURE_REFERRER_POLICY",
                         "SECURE_PROXY_SSL_HEADER")
    assert values == {"SESSION_COOKIE_SECURE": True, "CSRF_COOKIE_SECURE": True, "X_FRAME_OPTIONS": "DENY",
                      "SECURE_CONTENT_TYPE_NOSNIFF": True, "SECURE_REFERRER_POLICY": "same-origin",
                      "SECURE_PROXY_SSL_HEADER": None}


def test_behind_a_proxy_x_forwarded_proto_says_https(tmp_path):
    values = settings_in(tmp_path, {"SECRET_KEY": "k", "JOBSITE_BEHIND_PROXY": "1"}, "SECURE_PROXY_SSL_HEADER")
    assert values == {"SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"]}


def test_a_bad_login_rate_stops_manage_py_naming_it(tmp_path):
    answer = django_process(tmp_path, {"SECRET_KEY": "k", "JOBSITE_LOGIN_RATE": "lots"}, "check")
    assert answer.returncode != 0 and "JOBSITE_LOGIN_RATE must be" in answer.stderr


def test_pages_are_sent_with_the_security_headers(db, client):
    response = client.get("/accounts/login/")
    policy = dict(part.strip().split(" ", 1) for part in response["Content-Security-Policy"].split(";"))
    assert policy == {"default-src": "'self'", "img-src": "'self' data:", "object-src": "'none'",
                      "base-uri": "'self'", "form-action": "'self'", "frame-ancestors": "'none'"}
    assert response["X-Frame-Options"] == "DENY" and response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"


def test_the_templates_hold_no_inline_script_or_style():
    for path in (BASE_DIR / "templates").rglob("*.html"):
        text = re.sub(r"{%.*?%}", "", path.read_text(), flags=re.S)  # template tags hold no markup
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), path
        assert not re.search(r"\son[a-z]+=", text) and not re.search(r"\sstyle=\"", text), path
        assert "<style" not in text, path


# The local key.

def local_key(tmp_path):
    return settings_in(tmp_path, {"DEBUG": "1"}, "SECRET_KEY")["SECRET_KEY"]


def test_debug_without_a_secret_key_uses_a_random_one_kept_under_var(tmp_path):
    first, second = local_key(tmp_path), local_key(tmp_path)
    assert first == second and len(first) >= 50
    assert first != "jobsite-insecure-local-development-key"
    kept = tmp_path / "var" / "secret-key"
    assert kept.read_text().strip() == first
    assert stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert list((tmp_path / "var").glob(".secret-key*")) == []


def test_another_var_dir_gets_another_key(tmp_path):
    assert local_key(tmp_path / "one") != local_key(tmp_path / "two")


def test_no_key_is_written_in_the_source():
    source = (BASE_DIR / "jobsite" / "settings.py").read_text()
    assert "insecure" not in source and not re.search(r"SECRET_KEY = \"", source)


def test_debug_off_still_needs_a_secret_key(tmp_path):
    answer = django_process(tmp_path, {}, "check")
    assert answer.returncode != 0 and "SECRET_KEY must be set when DEBUG is off" in answer.stderr
    assert not (tmp_path / "var" / "secret-key").exists()


# Passwords.

@pytest.mark.parametrize("password,problem", [("8402751936", "entirely numeric"),
                                              ("marianne.kowalczyk", "too similar to the username")])
def test_numeric_and_username_like_passwords_are_refused(db, password, problem):
    user = User(username="marianne.kowalczyk", email="mk@example.org")
    with pytest.raises(ValidationError) as refused:
        validate_password(password, user)
    assert any(problem in message for message in refused.value.messages), refused.value.messages


def test_a_good_password_passes(db):
    validate_password("tile-merge-heron-47", User(username="marianne.kowalczyk"))


# The pages in Chromium under the policy.

RECORD_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.cspViolations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
"""


def violations(driver):
    """What the page's listener recorded, and the console's CSP messages (which the listener may miss)."""
    recorded = driver.execute_script("return window.cspViolations || [];")
    logged = [entry["message"] for entry in driver.get_log("browser") if "Content Security Policy" in entry["message"]]
    return recorded + logged


@pytest.fixture
def csp_browser(chromium):  # noqa: F811 (the chromium fixture)
    chromium.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RECORD_VIOLATIONS})
    return chromium


@pytest.fixture
def pages(index, owner, media, tmp_path):
    """A finished job with a thumbnail, and a raster data file with a preview."""
    job = run(job_submit(owner=owner, job_type="hillshade", tile_ids=index.ids[:2], labels=["csp"]))
    datafile_store(owner=owner, upload=SimpleUploadedFile("dem.tif", geotiff_bytes(tmp_path)))
    return job


@needs_chromium
def test_a_violation_is_seen(live_server, csp_browser, owner):
    """The harness itself: a script that adds an inline script is refused and reported."""
    url = site_url(live_server)
    log_in(csp_browser, url)
    csp_browser.execute_script("const s = document.createElement('script'); s.textContent = 'window.ran = 1';"
                               "document.body.appendChild(s);")
    wait(csp_browser, lambda d: violations(d))
    assert csp_browser.execute_script("return window.ran === undefined;")


@needs_chromium
def test_the_dashboard_works_under_the_policy(live_server, csp_browser, pages):
    url = site_url(live_server)
    log_in(csp_browser, url)
    assert csp_browser.find_element(By.CSS_SELECTOR, "table.jobs").text.count("csp") == 1
    assert violations(csp_browser) == []

    csp_browser.get(f"{url}/jobs/{pages.pk}/")
    thumbnail = wait(csp_browser, lambda d: d.find_element(By.CSS_SELECTOR, "img.thumbnail"))
    wait(csp_browser, lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0;",
                                                 thumbnail))
    bar = csp_browser.find_element(By.CSS_SELECTOR, ".job-page > [data-field=progress] rect")
    assert bar.get_attribute("width") == "100"
    assert violations(csp_browser) == []

    csp_browser.get(f"{url}/datafiles/")
    assert "dem.tif" in csp_browser.find_element(By.TAG_NAME, "main").text
    csp_browser.get(f"{url}/datafiles/dem.tif/")
    preview = wait(csp_browser, lambda d: d.find_element(By.CSS_SELECTOR, "img.thumbnail"))
    wait(csp_browser, lambda d: d.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0;",
                                                 preview))
    assert violations(csp_browser) == []


@needs_chromium
def test_the_api_docs_render_under_the_policy(live_server, csp_browser, owner):
    url = site_url(live_server)
    log_in(csp_browser, url)
    csp_browser.get(f"{url}/api/v1/docs/")
    title = wait(csp_browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".swagger-ui .info .title"))
    assert "jobsite API" in title[0].text
    wait(csp_browser, lambda d: len(d.find_elements(By.CSS_SELECTOR, ".swagger-ui .opblock")) > 20)
    csp_browser.find_element(By.CSS_SELECTOR, ".swagger-ui .opblock-summary").click()  # opens an operation
    wait(csp_browser, lambda d: d.find_elements(By.CSS_SELECTOR, ".swagger-ui .opblock.is-open"))
    assert violations(csp_browser) == []
