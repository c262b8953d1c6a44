"""Errors under /ogcapi/: RFC 7807 problem details (application/problem+json) with the exception
types of OGC API - Processes, whatever raised them."""

from rest_framework import exceptions, status
from rest_framework.response import Response

from jobsite.api.errors import OGC_INVALID_PARAMETER, bounded
from jobsite.api.errors import exception_handler as api_exception_handler

OGC = "http://www.opengis.net/def/exceptions/ogcapi-processes-1/1.0"
NO_SUCH_PROCESS = f"{OGC}/no-such-process"
NO_SUCH_JOB = f"{OGC}/no-such-job"
RESULT_NOT_READY = f"{OGC}/result-not-ready"
INVALID_PARAMETER = OGC_INVALID_PARAMETER
MEDIA_TYPE = "application/problem+json"
# The other statuses, typed by what they are.
_TYPES = {400: INVALID_PARAMETER, 401: "about:blank", 403: "about:blank", 404: "about:blank", 405: "about:blank",
          409: "about:blank", 413: "about:blank", 415: "about:blank", 429: "about:blank", 500: "about:blank"}


class Problem(exceptions.APIException):
    """An error of a given OGC exception type."""

    def __init__(self, status_code, problem_type, detail):
        super().__init__(detail)
        self.status_code, self.problem_type = status_code, problem_type


def no_such_process(process_id, detail=None):
    return Problem(status.HTTP_404_NOT_FOUND, NO_SUCH_PROCESS, detail or f"there is no process {process_id[:100]!r}")


def no_such_job(job_id, detail=None):
    return Problem(status.HTTP_404_NOT_FOUND, NO_SUCH_JOB, detail or f"there is no job {job_id!r}")


def invalid(field, problem):
    error = Problem(status.HTTP_400_BAD_REQUEST, INVALID_PARAMETER, f"{field}: {problem}")
    error.errors = {field: problem}
    return error


def exception_handler(exc, context):
    """The REST API's handler (which maps the services' refusals to their statuses and names each bad
    field), answered as a problem."""
    response = api_exception_handler(exc, context)
    if response is None:
        return None
    body = {"type": getattr(exc, "problem_type", _TYPES.get(response.status_code, "about:blank")),
            "title": response.status_text, "status": response.status_code,
            "detail": response.data.get("detail", "") if isinstance(response.data, dict) else str(response.data)}
    errors = getattr(exc, "errors", None) or (response.data.get("errors") if isinstance(response.data, dict) else None)
    if errors:
        body["errors"] = bounded(errors)
    request = context.get("request")
    if request is not None:
        body["instance"] = request.path
    body.update(getattr(exc, "extra", {}))
    return Response(body, status=response.status_code, headers=dict(response.items()), content_type=MEDIA_TYPE)
