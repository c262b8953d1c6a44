"""API tokens that expire and can be revoked, and password attempts throttled per client address."""

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from jobs.api.auth import TOKEN_EXPIRED

TOKEN_URL = "/api/v1/auth/token/"


def with_token(key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def handed_out_ago(token, seconds):
    Token.objects.filter(pk=token.pk).update(created=timezone.now() - timedelta(seconds=seconds))


def new_token(password="owner-pass-1", client=None):
    return (client or APIClient()).post(TOKEN_URL, {"username": "owner", "password": password})


@pytest.fixture
def token(owner):
    return Token.objects.create(user=owner)


def test_it_refuses_an_expired_token_with_401_saying_what_to_do(settings, token):
    settings.TOKEN_TTL_SECONDS = 3600
    handed_out_ago(token, 3601)
    answer = with_token(token.key).get("/api/v1/jobs/")
    assert answer.status_code == 401 and answer.json()["detail"] == TOKEN_EXPIRED
    assert TOKEN_EXPIRED == "token expired; POST /api/v1/auth/token/ for a new one"
    assert answer["WWW-Authenticate"] == "Token"


def test_a_token_works_until_it_expires(settings, token):
    settings.TOKEN_TTL_SECONDS = 3600
    handed_out_ago(token, 3500)
    assert with_token(token.key).get("/api/v1/jobs/").status_code == 200


def test_with_no_ttl_a_token_never_expires(settings, token):
    assert settings.TOKEN_TTL_SECONDS == 0
    handed_out_ago(token, 10 * 365 * 86400)
    assert with_token(token.key).get("/api/v1/jobs/").status_code == 200


def test_the_old_pipeline_refuses_an_expired_token_in_its_wrapper(settings, token, town):
    settings.TOKEN_TTL_SECONDS = 60
    handed_out_ago(token, 61)
    answer = with_token(token.key).get(f"/start_job?town_id={town.id}")
    assert answer.status_code == 401 and answer.json() == {"status": 401, "data": None, "message": TOKEN_EXPIRED}


def test_the_token_endpoint_hands_out_the_same_token_until_it_expires(settings, token):
    settings.TOKEN_TTL_SECONDS = 3600
    assert new_token().json() == {"token": token.key}


def test_the_token_endpoint_hands_out_a_new_token_once_the_old_one_expired(settings, token):
    settings.TOKEN_TTL_SECONDS = 3600
    handed_out_ago(token, 3601)
    answer = new_token(client=with_token(token.key))  # the expired token sent along does not get in the way
    assert answer.status_code == 200
    key = answer.json()["token"]
    assert key != token.key and Token.objects.get().key == key
    assert with_token(key).get("/api/v1/jobs/").status_code == 200
    assert with_token(token.key).get("/api/v1/jobs/").status_code == 401


def test_the_token_endpoint_still_refuses_a_wrong_password(owner):
    answer = new_token(password="wrong-password")
    assert answer.status_code == 400 and not Token.objects.exists()


def test_delete_revokes_the_callers_own_token(token, other):
    others = Token.objects.create(user=other)
    assert with_token(token.key).delete(TOKEN_URL).status_code == 204
    answer = with_token(token.key).get("/api/v1/jobs/")
    assert answer.status_code == 401 and answer.json()["detail"] == "Invalid token."
    assert with_token(others.key).get("/api/v1/jobs/").status_code == 200
    renewed = new_token().json()["token"]
    assert renewed != token.key and with_token(renewed).get("/api/v1/jobs/").status_code == 200


def test_delete_with_a_session_revokes_the_users_token(client, owner, token):
    client.force_login(owner)
    assert client.delete(TOKEN_URL).status_code == 204
    assert not Token.objects.exists()


def test_delete_needs_credentials(db):
    assert APIClient().delete(TOKEN_URL).status_code == 401


def test_the_schema_documents_delete_and_the_throttle(db, client):
    paths = client.get("/api/v1/schema/", HTTP_ACCEPT="application/json").json()["paths"]
    assert set(paths[TOKEN_URL]) == {"post", "delete"}
    assert "429" in paths[TOKEN_URL]["post"]["responses"] and "204" in paths[TOKEN_URL]["delete"]["responses"]


# Password attempts.

def test_the_11th_token_request_within_a_minute_is_a_429(owner):
    assert [new_token(password="guess").status_code for _ in range(10)] == [400] * 10
    answer = new_token()  # the right password too
    assert answer.status_code == 429
    assert answer.json()["detail"].startswith("Too many password attempts from your address. Expected available in ")
    assert int(answer["Retry-After"]) > 0


def login(client, password, url="/accounts/login/"):
    return client.post(url, {"username": "owner", "password": password})


def test_the_11th_login_within_a_minute_is_a_429(client, owner):
    assert [login(client, "guess").status_code for _ in range(10)] == [200] * 10  # the form again, with its error
    answer = login(client, "owner-pass-1")
    assert answer.status_code == 429 and 0 < int(answer["Retry-After"]) <= 60
    assert answer.content.decode().startswith("Too many password attempts from your address. Try again in ")
    assert "_auth_user_id" not in client.session


def test_the_rate_is_a_setting_and_looking_at_the_login_page_does_not_count(settings, client, owner):
    settings.LOGIN_RATE = "3/min"
    for _ in range(5):
        assert client.get("/accounts/login/").status_code == 200
    assert [login(client, "guess").status_code for _ in range(4)] == [200, 200, 200, 429]
    assert client.get("/accounts/login/").status_code == 200


def test_the_login_pages_and_the_token_endpoint_count_together(settings, client, owner):
    settings.LOGIN_RATE = "3/min"
    assert login(client, "guess").status_code == 200
    assert login(client, "guess", url="/admin/login/").status_code == 200
    assert new_token(password="guess").status_code == 400
    assert login(client, "guess", url="/admin/login/").status_code == 429
    assert new_token().status_code == 429


def test_attempts_count_per_client_address_and_a_forwarded_for_header_is_not_believed(settings, client, owner):
    settings.LOGIN_RATE = "2/min"
    for _ in range(2):
        login(client, "guess")
    assert client.post("/accounts/login/", {"username": "owner", "password": "guess"},
                       HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 429
    other_address = client.post("/accounts/login/", {"username": "owner", "password": "owner-pass-1"},
                                REMOTE_ADDR="198.51.100.7")
    assert other_address.status_code == 302


def test_a_successful_login_still_works_under_the_rate(client, owner):
    assert login(client, "owner-pass-1").status_code == 302
    assert client.get("/").status_code == 200
