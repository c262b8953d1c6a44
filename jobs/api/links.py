"""Shareable links to a job's output file: `/api/v1/links/<signed>/<name>`, for clients that cannot
send an Authorization header (a map library in a browser, a URL pasted into QGIS).

`signed` is Django's signing over the job, the output's name, the user, a fingerprint of the user's
API token and the expiry. The link ends in the file's name so that GDAL knows the format by its
extension. Revoking the user's token (or its renewal once it has expired), deactivating the user,
losing sight of the job or deleting it ends every link to its files.
"""

import math
from datetime import datetime, timedelta, timezone as tz

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing
from django.utils import timezone
from django.utils.crypto import constant_time_compare, salted_hmac
from rest_framework.authtoken.models import Token

from jobsite.exceptions import quoted

from .auth import token_expired, token_for

SALT = "jobsite.output-link"


class LinkRefused(Exception):
    """A link that does not serve, and why (for a 403)."""


def _fingerprint(token):
    return salted_hmac(SALT, token.key).hexdigest()[:20]


def sign(job, name, user, seconds):
    """The signed part of a link to output `name` of `job` for `user`, and when it expires: in
    `seconds`, or when the user's token does if that is sooner."""
    token = token_for(user)  # a user who only ever logged in on the website gets one here
    expires = timezone.now() + timedelta(seconds=seconds)
    if settings.TOKEN_TTL_SECONDS:  # the link ends with the token at the latest
        expires = min(expires, token.created + timedelta(seconds=settings.TOKEN_TTL_SECONDS))
    expires = datetime.fromtimestamp(math.ceil(expires.timestamp()), tz=tz.utc)
    signed = signing.dumps({"j": job.pk, "n": name, "u": user.pk, "t": _fingerprint(token),
                            "e": int(expires.timestamp())}, salt=SALT, compress=True)
    return signed, expires


def verify(signed, name):
    """(user, job id) of a link that serves output `name`; LinkRefused saying why otherwise."""
    try:
        link = signing.loads(signed, salt=SALT)
    except signing.BadSignature:
        raise LinkRefused("This link is not valid: its signature does not match (it was changed, or it is not from "
                          "this server).") from None
    if link["n"] != name:
        raise LinkRefused(f"This link is for {quoted(link['n'])}, not {quoted(name)}.")
    expires = datetime.fromtimestamp(link["e"], tz=tz.utc)
    if expires <= timezone.now():
        raise LinkRefused(f"This link expired at {expires.isoformat()}; ask for a new one.")
    user = get_user_model().objects.filter(pk=link["u"], is_active=True).first()
    token = Token.objects.filter(user=user).first() if user else None
    if token is None or token_expired(token) or not constant_time_compare(_fingerprint(token), link["t"]):
        raise LinkRefused("This link was revoked: the API token of the user who made it was revoked or renewed.")
    return user, link["j"]
