"""The API's error format: JSON with a human-readable `detail`, and `errors` by field for bad input."""

import math
from datetime import datetime

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation, TooManyFieldsSent, TooManyFilesSent
from django.http import JsonResponse
from django.utils import timezone
from django.views import defaults
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.views import exception_handler as drf_exception_handler

from jobsite.exceptions import Conflict, LimitExceeded, QuotaExceeded, Rejected, TooLarge, quoted

# OGC API - Processes' type of a problem with a bad input or query (its errors are RFC 7807 problems).
OGC_INVALID_PARAMETER = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0/invalid-parameter"
# The longest message an answer carries, with room for the 50 ids a message lists; longer ones (a
# third-party message quoting a long input) keep their start and end.
MAX_MESSAGE = 700


class ConflictError(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_code = "conflict"


class PayloadTooLarge(APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_code = "too_large"


class TooManyJobs(APIException):
    status_code = status.HTTP_429_TOO_MANY_REQUESTS
    default_code = "limit_exceeded"


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()


class QuotaErrorSerializer(ErrorSerializer):
    quota = serializers.DictField(required=False, help_text=(
        "for a daily quota: its name (pixels_per_day, cpu_seconds_per_day), limit, used, requested and resets "
        "(when it starts afresh, also as Retry-After)"))


class ValidationErrorSerializer(ErrorSerializer):
    errors = serializers.DictField(required=False, help_text=(
        "What is wrong, by field name: a list of messages for each field, or for a field with parts of its own "
        "(params, inputs, a list's items by index) an object of the same shape (absent when the body could not "
        "be parsed)"))


def under_api(request):
    """Whether the request is for an API: /api and /ogcapi (OGC API - Processes) and everything
    under them."""
    return request.path in ("/api", "/ogcapi") or request.path.startswith(("/api/", "/ogcapi/"))


def under_ogcapi(request):
    """Whether the request is for OGC API - Processes, whose errors are problem details."""
    return request.path == "/ogcapi" or request.path.startswith("/ogcapi/")


def field_lists(errors):
    """`errors` in the one shape every 400 of the API answers, DRF's: each field maps to a list of
    messages, and a field with parts of its own (params.azimuth, inputs.zones, tile_ids.0) to an object
    of the same shape. The services refuse with a message or an object per field (Rejected)."""
    if isinstance(errors, dict):
        return {key: field_lists(value) if isinstance(value, dict) else _messages(value)
                for key, value in errors.items()}
    return {"non_field_errors": _messages(errors)}


def _messages(problem):
    return [str(message) for message in problem] if isinstance(problem, (list, tuple)) else [str(problem)]


def _flatten(errors, prefix=""):
    """'field: problem' lines of a nested DRF error dict, for the human-readable `detail`."""
    if isinstance(errors, dict):
        return [line for key, value in errors.items()
                for line in _flatten(value, f"{prefix}{key}." if prefix or key != "non_field_errors" else "")]
    if isinstance(errors, list):
        return [line for value in errors for line in _flatten(value, prefix)]
    return [f"{prefix[:-1]}: {errors}" if prefix else str(errors)]


def exception_handler(exc, context):
    """DRF's handler, with the services' refusals mapped to 400/409/413/429, Django's refusals of a
    request (too large, too many fields) to 413/400, validation errors given a `detail` too, and
    every message bounded in length. A quota's 429 also says which quota, its limit, the usage and
    when it resets (`quota`), with Retry-After."""
    quota = exc.quota if isinstance(exc, QuotaExceeded) else None
    if isinstance(exc, Rejected):
        exc = ValidationError(exc.errors)
    elif isinstance(exc, Conflict):
        exc = ConflictError(str(exc))
    elif isinstance(exc, LimitExceeded):
        exc = TooManyJobs(str(exc))
    elif isinstance(exc, TooLarge):
        exc = PayloadTooLarge(str(exc))
    elif isinstance(exc, SuspiciousOperation):  # a body over the size limit, too many fields or files
        code, field, problem = refusal(exc)
        exc = PayloadTooLarge(f"{field}: {problem}") if code == 413 else ValidationError({field: problem})
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, ValidationError):
        detail = field_lists(exc.detail)
        response.data = {"detail": "; ".join(_flatten(detail)), "errors": detail}
    if response is not None and quota is not None:
        response.data["quota"] = quota
        reset = datetime.fromisoformat(quota["resets"].replace("Z", "+00:00"))
        response["Retry-After"] = str(max(1, math.ceil((reset - timezone.now()).total_seconds())))
    if response is not None:
        response.data = bounded(response.data)
    if response is not None and getattr(context.get("view"), "legacy_answer", False):
        response.data = {"status": response.status_code, "data": None, "message": response.data["detail"]}
    return response


def bounded(data):
    """The answer with every message and field name cut to MAX_MESSAGE characters."""
    if isinstance(data, dict):
        return {bounded(key): bounded(value) for key, value in data.items()}
    if isinstance(data, list):
        return [bounded(value) for value in data]
    if isinstance(data, str) and len(data) > MAX_MESSAGE:
        left_out = len(data) - MAX_MESSAGE + 60
        return f"{data[:MAX_MESSAGE - 160]}… ({left_out} characters left out) …{data[-100:]}"
    return data


def refusal(exc):
    """(status, field, problem) for a SuspiciousOperation Django raises reading a request: 413 for a
    body over DATA_UPLOAD_MAX_MEMORY_SIZE, 400 for too many fields or files and anything else."""
    if isinstance(exc, RequestDataTooBig):
        return 413, "body", f"larger than the limit of {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes"
    if isinstance(exc, TooManyFieldsSent):
        return 400, "fields", f"more than {settings.DATA_UPLOAD_MAX_NUMBER_FIELDS} query or form fields"
    if isinstance(exc, TooManyFilesSent):
        return 400, "files", f"more than {settings.DATA_UPLOAD_MAX_NUMBER_FILES} files"
    return 400, "request", "refused as malformed or suspicious"


def refused(exc):
    """The JSON answer to a SuspiciousOperation, for where DRF's handler does not reach."""
    code, field, problem = refusal(exc)
    body = {"detail": f"{field}: {problem}"}
    if code == 400:
        body["errors"] = {field: [problem]}
    return JsonResponse(body, status=code)


def page_not_found(request, exception):
    """404 for any URL: JSON under /api/, Django's page elsewhere."""
    if under_api(request):
        return JsonResponse({"detail": f"No API endpoint at {quoted(request.path, 200)}"}, status=404)
    return defaults.page_not_found(request, exception)


def bad_request(request, exception):
    """400 (413 for a body over the size limit) for what Django refuses before a view runs: JSON
    under /api/, Django's page elsewhere."""
    if under_api(request):
        return refused(exception)
    return defaults.bad_request(request, exception)


def server_error(request):
    if under_api(request):
        return JsonResponse({"detail": "Internal server error; it has been logged."}, status=500)
    return defaults.server_error(request)
