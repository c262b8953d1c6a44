"""Who may call: session logins that must come from this site for GET endpoints that change state."""

from urllib.parse import urlsplit

from django.conf import settings
from drf_spectacular.authentication import SessionScheme
from rest_framework.authentication import SessionAuthentication
from rest_framework.exceptions import PermissionDenied


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
    """Documented as the session login it is."""

    target_class = SameSiteSessionAuthentication
