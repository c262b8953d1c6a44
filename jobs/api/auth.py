"""Who may call: tokens that expire, session logins that must come from this site for GET endpoints
that change state, and password attempts counted per client address."""

import functools
import math
from datetime import timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpResponse
from django.utils import timezone
from drf_spectacular.authentication import SessionScheme
from rest_framework.authentication import BasicAuthentication, SessionAuthentication, TokenAuthentication
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed, PermissionDenied
from rest_framework.throttling import SimpleRateThrottle

TOKEN_EXPIRED = "token expired; POST /api/v1/auth/token/ for a new one"
TOO_MANY_ATTEMPTS = "Too many password attempts from your address."


def token_expired(token):
    ttl = settings.TOKEN_TTL_SECONDS
    return bool(ttl) and token.created <= timezone.now() - timedelta(seconds=ttl)


def token_for(user):
    """The user's token; a new one in place of one that has expired."""
    token, _ = Token.objects.get_or_create(user=user)
    if token_expired(token):
        # By key: of two requests renewing it at once, the second deletes nothing and gets the new one.
        Token.objects.filter(key=token.key).delete()
        token, _ = Token.objects.get_or_create(user=user)
    return token


class ExpiringTokenAuthentication(TokenAuthentication):
    """`Authorization: Token <key>`, refused once the token is older than JOBSITE_TOKEN_TTL_SECONDS."""

    def authenticate_credentials(self, key):
        user, token = super().authenticate_credentials(key)
        if token_expired(token):
            raise AuthenticationFailed(TOKEN_EXPIRED)
        return user, token


class BasicTokenAuthentication(BasicAuthentication):
    """HTTP Basic, for clients that speak nothing else, with the user's API token as the password:
    a token cannot be guessed and costs no password hash, so a client polling with it is as cheap
    as one sending `Authorization: Token`, and Basic opens no way round the password attempt limit."""

    def authenticate_credentials(self, userid, password, request=None):
        refusal = AuthenticationFailed("Invalid user name or token: HTTP Basic takes your API token as the password "
                                       "(POST /api/v1/auth/token/ gives one).")
        if "\x00" in userid or "\x00" in password:
            raise refusal
        token = Token.objects.select_related("user").filter(key=password).first()
        if token is None or token.user.get_username() != userid or not token.user.is_active:
            raise refusal
        if token_expired(token):
            raise AuthenticationFailed(TOKEN_EXPIRED)
        return token.user, token

    www_authenticate_realm = "jobsite"


def from_this_site(request):
    """Whether the browser says the request comes from this site's own pages or was typed in.

    Sec-Fetch-Site is the browser's own word; without it (older browsers) an Origin or Referer of
    this site will do. No evidence at all counts as another site."""
    fetch_site = request.META.get("HTTP_SEC_FETCH_SITE")
    if fetch_site:
        return fetch_site in ("same-origin", "none")
    source = request.META.get("HTTP_ORIGIN") or request.META.get("HTTP_REFERER")
    if not source:
        return False
    parts = urlsplit(source)
    origin = f"{parts.scheme}://{parts.netloc}"
    return origin == f"{request.scheme}://{request.get_host()}" or origin in settings.CSRF_TRUSTED_ORIGINS


class SameSiteSessionAuthentication(SessionAuthentication):
    """Session login for GET endpoints that change state, where Django's CSRF check does not apply
    (GET is a safe method to it) and SameSite=Lax cookies ride along on a link or redirect from
    another site: the request must come from this site's pages or be typed in."""

    def enforce_csrf(self, request):
        if not from_this_site(request):
            raise PermissionDenied(
                f"{request.path} changes state: a session login from another site (or with no sign of where "
                f"the request came from) is refused. Send your API token instead (Authorization: Token <key>; "
                f"POST /api/v1/auth/token/ gives one), or open the address from this site.")
        super().enforce_csrf(request)


class SameSiteSessionScheme(SessionScheme):
    target_class = SameSiteSessionAuthentication
    name = "cookieAuthFromThisSite"

    def get_security_definition(self, auto_schema):
        return {**super().get_security_definition(auto_schema),
                "description": "The session cookie, from this site's own pages or the address bar only."}


class PasswordAttemptThrottle(SimpleRateThrottle):
    """POSTs of a password (the token endpoint, the login pages) per client address, all of them
    together, at most JOBSITE_LOGIN_RATE. Works on DRF and plain Django requests alike."""

    scope = "login"

    def get_rate(self):
        return settings.LOGIN_RATE  # read per request, so that a test can change it

    def allow_request(self, request, view):
        if request.method != "POST":
            return True
        return super().allow_request(request, view)

    def get_cache_key(self, request, view):
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


def throttle_password_attempts(view):
    """A login page whose POSTs count as password attempts: 429 beyond the rate."""
    @functools.wraps(view)
    def throttled_view(request, *args, **kwargs):
        throttle = PasswordAttemptThrottle()
        if not throttle.allow_request(request, None):
            wait = math.ceil(throttle.wait() or 1)
            response = HttpResponse(f"{TOO_MANY_ATTEMPTS} Try again in {wait} seconds.\n", status=429,
                                    content_type="text/plain; charset=utf-8")
            response["Retry-After"] = str(wait)
            return response
        return view(request, *args, **kwargs)
    return throttled_view
