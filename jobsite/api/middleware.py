"""Under /api/ (and at /api itself) every error is a JSON answer in the API's format, whatever raised
it and whether DEBUG is on or off: DRF's handler covers what views raise as API errors; this covers
the rest.

- process_request: a NUL character in the path or the Authorization header is a 400, a POST, PUT
  or PATCH to a URL without its trailing slash a 404.
- process_exception: a SuspiciousOperation raised in a view (a body over the size limit, too many
  fields or files) becomes its 413 or 400; any other exception a 500 that names nothing of the
  code, logged with its traceback like Django's own.
- process_response: an HTML error page (Django's debug pages, a URL that matches nothing, an error
  raised in another middleware, DRF's browsable error pages) becomes the same status in JSON.
"""

import json
import logging
from http import HTTPStatus

from django.core.exceptions import BadRequest, PermissionDenied, SuspiciousOperation
from django.core.signals import got_request_exception
from django.http import Http404, JsonResponse
from django.utils.deprecation import MiddlewareMixin

from jobsite.exceptions import quoted
from .errors import OGC_INVALID_PARAMETER, page_not_found, refused, server_error, under_api, under_ogcapi

request_logger = logging.getLogger("django.request")


class APIErrorMiddleware(MiddlewareMixin):
    def process_request(self, request):
        if not under_api(request):
            return None
        # PostgreSQL refuses a NUL character in any text it is given, with an exception that would be
        # a 500 wherever a name from the URL or a token is looked up.
        checked = [("path", request.path), ("Authorization", request.META.get("HTTP_AUTHORIZATION", ""))]
        if under_ogcapi(request):  # its query values reach the database unchecked by a serializer
            checked += [(name, value) for name, values in request.GET.lists() for value in [name, *values]]
        for field, value in checked:
            if "\x00" in value:
                return JsonResponse({"detail": f"{field}: must not hold NUL characters",
                                     "errors": {field: ["must not hold NUL characters"]}}, status=400)
        # Every REST API URL ends with a slash. CommonMiddleware would redirect a POST without one to a
        # GET that drops its body (and raise, a 500, with DEBUG on): say so instead.
        if request.method in ("POST", "PUT", "PATCH") and not request.path.endswith("/") and not under_ogcapi(request):
            return JsonResponse({"detail": f"No API endpoint at {quoted(request.path, 200)}: API URLs end with a slash"},
                                status=404)
        return None

    def process_exception(self, request, exception):
        if not under_api(request):
            return None
        if isinstance(exception, Http404):
            return JsonResponse({"detail": "Not found."}, status=404)
        if isinstance(exception, PermissionDenied):
            return JsonResponse({"detail": "You do not have permission to perform this action."}, status=403)
        if isinstance(exception, (SuspiciousOperation, BadRequest)):
            if isinstance(exception, SuspiciousOperation):
                logging.getLogger(f"django.security.{type(exception).__name__}").error(str(exception))
            response = refused(exception)
        else:
            request_logger.error("Internal Server Error: %s", request.path, exc_info=exception,
                                 extra={"status_code": 500, "request": request})
            got_request_exception.send(sender=type(self), request=request)  # error reporters listen to it
            response = server_error(request)
        response._has_been_logged = True  # Django would log it again, without the traceback
        return response

    def process_response(self, request, response):
        if (under_api(request) and response.status_code >= 400
                and response.get("Content-Type", "").startswith("text/html")):
            response = _as_json(request, response)
        if under_ogcapi(request) and response.status_code >= 400 and response.get("Content-Type") == "application/json":
            response = _keep_headers(response, _as_problem(request, response))
        return response


def _as_problem(request, response):
    """An error of the API's format (made before a view ran, or by Django) as OGC API's problem."""
    data = json.loads(response.content)
    body = {"type": OGC_INVALID_PARAMETER if response.status_code == 400 else "about:blank",
            "title": _phrase(response.status_code), "status": response.status_code,
            "detail": data.get("detail", ""), "instance": request.path[:200]}
    if data.get("errors"):
        body["errors"] = data["errors"]
    return JsonResponse(body, status=response.status_code, content_type="application/problem+json")


def _phrase(status):
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _as_json(request, response):
    """The same status in JSON: the answer's own `detail` if DRF made it, else what the status says."""
    data = getattr(response, "data", None)
    if not (isinstance(data, dict) and "detail" in data):
        if response.status_code == 400:  # Django's page for a SuspiciousOperation, such as a bad Host
            return _keep_headers(response, refused(SuspiciousOperation()))
        if response.status_code == 404:
            return _keep_headers(response, page_not_found(request, None))
        if response.status_code >= 500:
            return _keep_headers(response, server_error(request))
        try:
            data = {"detail": HTTPStatus(response.status_code).phrase}
        except ValueError:
            data = {"detail": "Error"}
    return _keep_headers(response, JsonResponse(data, status=response.status_code))


def _keep_headers(original, replacement):
    """`replacement` with the headers (WWW-Authenticate, Allow, CORS, ...) and cookies of `original`."""
    for name, value in original.items():
        if name.lower() not in ("content-type", "content-length"):
            replacement[name] = value
    replacement.cookies = original.cookies
    replacement._has_been_logged = getattr(original, "_has_been_logged", False)
    return replacement
