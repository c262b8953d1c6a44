"""The endpoints the old tile pipeline's clients call, on top of the same services as the REST API.

Every answer, errors included, is `{"status": <HTTP code>, "data": ..., "message": ...}` with the
same HTTP code (the API's exception handler wraps the errors of views marked `legacy_answer`).
"""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.decorators import api_view
from rest_framework.response import Response

from .api.auth import SameSiteSessionAuthentication
from .api.serializers import JobSerializer
from jobsite.exceptions import Rejected, quoted
from .models import MAX_ID, Job
from .services import control, submit


class LegacyAnswerSerializer(serializers.Serializer):
    status = serializers.IntegerField(help_text="the HTTP status code")
    data = JobSerializer(allow_null=True)
    message = serializers.CharField()


def legacy_endpoint(*parameters, changes_state=False):
    """A GET endpoint answering in the wrapper, documented as such. One that changes state takes a
    session login only from this site's own pages or the address bar (a token from anywhere)."""
    def decorate(view):
        wrapped = api_view(["GET"])(view)
        wrapped.cls.legacy_answer = True
        if changes_state:  # the site's authentication, its session login checked for where it came from
            wrapped.cls.authentication_classes = [
                SameSiteSessionAuthentication if auth is SessionAuthentication else auth
                for auth in wrapped.cls.authentication_classes]
        answers = {code: LegacyAnswerSerializer for code in (200, 201, 400, 401, 403, 404, 409, 429)}
        return extend_schema(parameters=list(parameters), responses=answers, tags=["old pipeline"])(wrapped)
    return decorate


def _answer(code, data=None, message=""):
    return Response({"status": code, "data": data, "message": message}, status=code)


def _int_param(request, name):
    raw = request.query_params.get(name, "").strip()
    if not raw:
        raise Rejected({name: "is required"})
    try:
        value = int(raw)
    except ValueError:
        raise Rejected({name: f"must be an integer, not {quoted(raw)}"}) from None
    if not 0 <= value <= MAX_ID:
        raise Rejected({name: f"must be between 0 and {MAX_ID}"})
    return value


def _tile_id_list(raw):
    try:
        ids = [int(part) for part in raw.split(",")]
    except ValueError:
        raise Rejected({"tile_ids": f"must be comma-separated integers, not {quoted(raw)}"}) from None
    if not all(0 <= tile_id <= MAX_ID for tile_id in ids):  # nor a thousand digits echoed back as unknown
        raise Rejected({"tile_ids": f"tile ids are between 0 and {MAX_ID}, not {quoted(raw)}"})
    return ids


def _job_data(request, job_id):
    job = Job.objects.visible_to(request.user).for_api().filter(pk=job_id).first()
    if job is None:
        return None
    return JobSerializer(job, context={"request": request}).data


JOB_ID = OpenApiParameter("job_id", int, required=True)


@legacy_endpoint(OpenApiParameter("tile_ids", str, description="comma-separated tile ids; or town_id"),
                 OpenApiParameter("town_id", int), OpenApiParameter("type", str, description="default hillshade"),
                 OpenApiParameter("collection", str, description="default: the site's default collection"),
                 changes_state=True)
def start_job(request):
    """Start a job over `tile_ids` (comma-separated) or `town_id` of `collection`; `type` defaults to
    hillshade."""
    params = request.query_params
    tile_ids = _tile_id_list(params["tile_ids"]) if params.get("tile_ids") else None
    town_id = _int_param(request, "town_id") if params.get("town_id") else None
    job = submit.job_submit(owner=request.user, job_type=params.get("type", "hillshade"), tile_ids=tile_ids,
                            town_id=town_id, collection=params.get("collection") or None)
    return _answer(201, _job_data(request, job.pk), f"job {job.pk} started over {job.tiles_total} tiles")


@legacy_endpoint(JOB_ID)
def job_status(request):
    """The status of job `job_id`."""
    job_id = _int_param(request, "job_id")
    data = _job_data(request, job_id)
    if data is None:
        return _answer(404, message=f"no job {job_id}")
    return _answer(200, data, f"job {job_id} is {data['status']}")


@legacy_endpoint(JOB_ID, changes_state=True)
def cancel_job(request):
    """Cancel job `job_id`."""
    job_id = _int_param(request, "job_id")
    job = Job.objects.visible_to(request.user).filter(pk=job_id).first()
    if job is None:
        return _answer(404, message=f"no job {job_id}")
    control.job_cancel(job=job, by=request.user)
    return _answer(200, _job_data(request, job_id), f"job {job_id} canceled")
