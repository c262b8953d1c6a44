"""The API's error format: JSON with a human-readable `detail`, and `errors` by field for bad input."""

from django.http import JsonResponse
from django.views import defaults
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, ValidationError
from rest_framework.views import exception_handler as drf_exception_handler

from ..exceptions import Conflict, LimitExceeded, Rejected, TooLarge


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


class ValidationErrorSerializer(ErrorSerializer):
    errors = serializers.DictField(required=False, help_text="What is wrong, by field name (absent when the body could not be parsed)")


def _flatten(errors, prefix=""):
    """'field: problem' lines of a nested DRF error dict, for the human-readable `detail`."""
    if isinstance(errors, dict):
        return [line for key, value in errors.items()
                for line in _flatten(value, f"{prefix}{key}." if prefix or key != "non_field_errors" else "")]
    if isinstance(errors, list):
        return [line for value in errors for line in _flatten(value, prefix)]
    return [f"{prefix[:-1]}: {errors}" if prefix else str(errors)]


def exception_handler(exc, context):
    """DRF's handler, with the services' refusals mapped to 400/409/429 and validation errors
    given a `detail` too."""
    if isinstance(exc, Rejected):
        exc = ValidationError(exc.errors)
    elif isinstance(exc, Conflict):
        exc = ConflictError(str(exc))
    elif isinstance(exc, LimitExceeded):
        exc = TooManyJobs(str(exc))
    elif isinstance(exc, TooLarge):
        exc = PayloadTooLarge(str(exc))
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, ValidationError):
        detail = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        response.data = {"detail": "; ".join(_flatten(detail)), "errors": detail}
    if response is not None and getattr(context.get("view"), "legacy_answer", False):
        response.data = {"status": response.status_code, "data": None, "message": response.data["detail"]}
    return response


def page_not_found(request, exception):
    """404 for any URL: JSON under /api/, Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": f"No API endpoint at {request.path}"}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Internal server error; it has been logged."}, status=500)
    return defaults.server_error(request)
