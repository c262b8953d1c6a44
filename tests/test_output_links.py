"""Shareable links to a job's output: signed, with byte ranges, until they expire or are revoked."""

import time
from datetime import datetime, timedelta

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from jobs.models import Job
from jobs.services.submit import job_submit
from jobsite.media import media_path

from .test_execution import run


@pytest.fixture
def cog(index, owner, media, client_for):
    job = run(job_submit(owner=owner, job_type="hillshade", tile_ids=index.ids[:2]))
    return {"job": job, "bytes": media_path(job.outputs[0]["path"]).read_bytes(), "client": client_for(owner),
            "link_url": f"/api/v1/jobs/{job.pk}/outputs/hillshade.tif/link/"}


def make_link(cog, **asked):
    response = cog["client"].post(cog["link_url"], asked, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def body(response):
    return b"".join(response.streaming_content) if response.streaming else response.content


def test_a_link_serves_the_file_with_ranges_and_no_other_credential(cog):
    before = timezone.now()
    link = make_link(cog)
    assert link["url"].startswith("http://testserver/api/v1/links/") and link["url"].endswith("/hillshade.tif")
    expires = datetime.fromisoformat(link["expires"].replace("Z", "+00:00"))
    assert before + timedelta(seconds=3600) <= expires <= timezone.now() + timedelta(seconds=3601)
    anonymous = APIClient()
    whole = anonymous.get(link["url"])
    assert whole.status_code == 200 and body(whole) == cog["bytes"] and whole["Accept-Ranges"] == "bytes"
    assert whole["Access-Control-Allow-Origin"] == "*" and "Content-Range" in whole["Access-Control-Expose-Headers"]
    part = anonymous.get(link["url"], headers={"Range": "bytes=8-15"})
    assert part.status_code == 206 and body(part) == cog["bytes"][8:16]
    head = anonymous.head(link["url"])
    assert head.status_code == 200 and int(head["Content-Length"]) == len(cog["bytes"])
    preflight = anonymous.options(link["url"], headers={"Origin": "https://maps.example.org",
                                                        "Access-Control-Request-Method": "GET",
                                                        "Access-Control-Request-Headers": "range"})
    assert preflight.status_code == 204 and "Range" in preflight["Access-Control-Allow-Headers"]
    assert anonymous.post(link["url"]).status_code == 404  # only GET and HEAD
    unchanged = anonymous.get(link["url"], headers={"If-None-Match": whole["ETag"]})
    assert unchanged.status_code == 304 and unchanged["Access-Control-Allow-Origin"] == "*"
    assert whole["Cache-Control"] == "private, no-cache"  # no cache serves it once the link has ended


def test_the_lifetime_is_asked_for_within_the_maximum(cog, settings):
    settings.OUTPUT_LINK_MAX_SECONDS = 7200
    link = make_link(cog, expires_in=7200)
    assert datetime.fromisoformat(link["expires"].replace("Z", "+00:00")) > timezone.now() + timedelta(seconds=7190)
    for wrong, problem in ((7201, "must be at most 7200 seconds"), (0, "greater than or equal to 1"),
                           ("soon", "valid integer")):
        response = cog["client"].post(cog["link_url"], {"expires_in": wrong}, format="json")
        assert response.status_code == 400 and problem in str(response.json()["errors"]["expires_in"]), wrong


def test_an_expired_link_is_refused_saying_so(cog):
    link = make_link(cog, expires_in=1)
    expires = datetime.fromisoformat(link["expires"].replace("Z", "+00:00"))
    time.sleep((expires - timezone.now()).total_seconds() + 0.05)
    response = APIClient().get(link["url"])
    assert response.status_code == 403 and "This link expired at" in response.content.decode()


def test_a_changed_link_is_refused(cog, other):
    url = make_link(cog)["url"]
    signed = url.split("/")[-2]
    flipped = signed[:-3] + ("A" if signed[-3] != "A" else "B") + signed[-2:]
    for changed in (url.replace(signed, flipped), url.replace(signed, signed[1:])):
        response = APIClient().get(changed)
        assert response.status_code == 403 and "signature does not match" in response.content.decode()
    renamed = APIClient().get(url.replace("/hillshade.tif", "/thumbnail.png"))
    assert renamed.status_code == 403 and "This link is for 'hillshade.tif'" in renamed.content.decode()


def test_revoking_the_token_or_deleting_the_job_ends_its_links(cog, owner):
    url = make_link(cog)["url"]
    token = Token.objects.get(user=owner)
    api = APIClient(headers={"Authorization": f"Token {token.key}"})
    assert api.delete("/api/v1/auth/token/").status_code == 204
    response = APIClient().get(url)
    assert response.status_code == 403 and "was revoked" in response.content.decode()
    url = make_link(cog)["url"]  # a new link, under the new token
    assert APIClient().get(url).status_code == 200
    owner.is_active = False
    owner.save()
    assert APIClient().get(url).status_code == 403
    owner.is_active = True
    owner.save()
    Job.objects.filter(pk=cog["job"].pk).delete()
    response = APIClient().get(url)
    assert response.status_code == 404 and response.json() == {"detail": f"job {cog['job'].pk} no longer exists"}
    assert response["Access-Control-Allow-Origin"] == "*"


def test_a_link_ends_with_its_token_and_says_so_when_made(cog, settings, owner):
    settings.TOKEN_TTL_SECONDS = 600
    link = make_link(cog)  # asks for an hour: gets what is left of the token's ten minutes
    token = Token.objects.get(user=owner)
    expires = datetime.fromisoformat(link["expires"].replace("Z", "+00:00"))
    assert token.created + timedelta(seconds=600) <= expires <= token.created + timedelta(seconds=601)
    Token.objects.filter(user=owner).update(created=timezone.now() - timedelta(seconds=601))
    response = APIClient().get(link["url"])
    assert response.status_code == 403 and "was revoked" in response.json()["detail"]


def test_another_users_output_has_no_link_and_no_download(cog, other, client_for):
    stranger = client_for(other)
    job = cog["job"]
    assert stranger.post(cog["link_url"], {}, format="json").status_code == 404
    assert stranger.get(f"/api/v1/jobs/{job.pk}/outputs/hillshade.tif").status_code == 404
    assert cog["client"].post(f"/api/v1/jobs/{job.pk}/outputs/nothing.tif/link/", {}, format="json").status_code == 404
    assert APIClient().post(cog["link_url"], {}, format="json").status_code == 401
