"""The endpoints the old tile pipeline's clients call, on top of the same services as the REST API.

Every answer is `{"status": <HTTP code>, "data": ..., "message": ...}` with the same HTTP code.
"""

from rest_framework.decorators import api_view
from rest_framework.response import Response

from . import services
from .api.serializers import JobSerializer
from .exceptions import Conflict, Rejected
from .models import Job


def _answer(code, data=None, message=""):
    return Response({"status": code, "data": data, "message": message}, status=code)


def _int_param(request, name):
    raw = request.query_params.get(name, "").strip()
    if not raw:
        raise Rejected({name: "is required"})
    try:
        return int(raw)
    except ValueError:
        raise Rejected({name: f"must be an integer, not {raw!r}"}) from None


def _tile_id_list(raw):
    try:
        return [int(part) for part in raw.split(",")]
    except ValueError:
        raise Rejected({"tile_ids": f"must be comma-separated integers, not {raw!r}"}) from None


def _job_data(request, job_id):
    job = Job.objects.visible_to(request.user).with_counts().filter(pk=job_id).first()
    if job is None:
        return None
    return JobSerializer(job, context={"request": request}).data


def _legacy(view):
    """Turn the services' refusals into the wrapped answer."""
    def wrapped(request):
        try:
            return view(request)
        except Rejected as exc:
            return _answer(400, message=str(exc))
        except Conflict as exc:
            return _answer(409, message=str(exc))
    wrapped.__name__ = view.__name__
    wrapped.__doc__ = view.__doc__
    return api_view(["GET"])(wrapped)


@_legacy
def start_job(request):
    """Start a job over `tile_ids` (comma-separated) or `town_id`; `type` defaults to hillshade."""
    params = request.query_params
    tile_ids = _tile_id_list(params["tile_ids"]) if params.get("tile_ids") else None
    town_id = _int_param(request, "town_id") if params.get("town_id") else None
    job = services.job_submit(owner=request.user, job_type=params.get("type", "hillshade"), tile_ids=tile_ids, town_id=town_id)
    return _answer(201, _job_data(request, job.pk), f"job {job.pk} started over {job.tiles_total} tiles")


@_legacy
def job_status(request):
    """The status of job `job_id`."""
    job_id = _int_param(request, "job_id")
    data = _job_data(request, job_id)
    if data is None:
        return _answer(404, message=f"no job {job_id}")
    return _answer(200, data, f"job {job_id} is {data['status']}")


@_legacy
def cancel_job(request):
    """Cancel job `job_id`."""
    job_id = _int_param(request, "job_id")
    job = Job.objects.visible_to(request.user).filter(pk=job_id).first()
    if job is None:
        return _answer(404, message=f"no job {job_id}")
    services.job_cancel(job=job, by=request.user)
    return _answer(200, _job_data(request, job_id), f"job {job_id} canceled")
