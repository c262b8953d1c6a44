"""OGC API - Processes 1.0 under /ogcapi/: thin views over the same services, accounts and
visibility as the REST API (another user's job is a 404), answering problem details on error."""

import time

from django.conf import settings
from django.http import FileResponse
from rest_framework import status
from rest_framework.authentication import BasicAuthentication
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from jobsite import media

from ..models import Job, JobStatus
from ..services import control, submit
from . import documents, jobquery
from .documents import absolute, link
from .execution import read_execution, read_sps_request
from .problems import RESULT_NOT_READY, Problem, exception_handler, no_such_job, no_such_process

CONFORMANCE = [f"http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/{name}"
               for name in ("core", "ogc-process-description", "json", "job-list", "dismiss")]
PROCESS_LIMIT = (10, 1, 10000)  # default, least, most


class OGCView(APIView):
    # HTTP Basic too, for the clients that only speak that.
    authentication_classes = [*api_settings.DEFAULT_AUTHENTICATION_CLASSES, BasicAuthentication]
    schema = None  # not part of the REST API's OpenAPI document

    def get_exception_handler(self):
        return exception_handler


class NoResource(OGCView):
    """Any other path under /ogcapi/."""

    permission_classes = [AllowAny]

    def http_method_not_allowed(self, request, *args, **kwargs):
        raise Problem(status.HTTP_404_NOT_FOUND, "about:blank", f"no resource at {request.path[:200]!r}")

    get = post = put = patch = delete = http_method_not_allowed


class LandingPage(OGCView):
    permission_classes = [AllowAny]

    def get(self, request):
        here = absolute(request, "ogc-landing")
        return Response({
            "title": "jobsite", "description": "Raster jobs over a tile index, as OGC API - Processes",
            "links": [link(here, "self", "this document"),
                      link(absolute(request, "ogc-conformance"), "http://www.opengis.net/def/rel/ogc/1.0/conformance",
                           "the conformance classes implemented"),
                      link(absolute(request, "ogc-processes"), "http://www.opengis.net/def/rel/ogc/1.0/processes",
                           "the processes"),
                      link(absolute(request, "ogc-jobs"), "http://www.opengis.net/def/rel/ogc/1.0/job-list", "the jobs")],
        })


class Conformance(OGCView):
    permission_classes = [AllowAny]

    def get(self, request):
        return Response({"conformsTo": CONFORMANCE})


class ProcessList(OGCView):
    def get(self, request):
        limit = jobquery.whole_number(request.GET, "limit", *PROCESS_LIMIT)
        offset = jobquery.whole_number(request.GET, "offset", 0, 0, 10**9)
        kinds = sorted(documents.JOB_TYPES.values(), key=lambda kind: kind.name)
        page = kinds[offset:offset + limit]
        url = absolute(request, "ogc-processes")
        links = [link(f"{url}?limit={limit}&offset={offset}", "self", "this page")]
        if offset + limit < len(kinds):
            links.append(link(f"{url}?limit={limit}&offset={offset + limit}", "next", "the next page"))
        if offset:
            links.append(link(f"{url}?limit={limit}&offset={max(0, offset - limit)}", "prev", "the page before"))
        return Response({"processes": [documents.process_summary(request, kind) for kind in page], "links": links})


class ProcessDescription(OGCView):
    def get(self, request, process_id):
        return Response(documents.process_description(request, _process(process_id)))


class Execute(OGCView):
    def post(self, request, process_id):
        kind = _process(process_id)
        execution = read_execution(request.data, kind, request)
        return _executed(request, kind, execution, "respond-async" in request.headers.get("Prefer", ""))


class SPSJobs(OGCView):
    """The SPS jobs-database request: POST /ogcapi/processes/{id}:{version}/jobs."""

    def post(self, request, process_id, version):
        kind = _process(process_id)
        if version != kind.version:
            raise no_such_process(f"{process_id}:{version}",
                                  f"the process {kind.name} has version {kind.version}, not {version[:60]!r}")
        execution, mode = read_sps_request(request.data, kind, request)
        return _executed(request, kind, execution, mode == "async")


def _executed(request, kind, execution, wants_async):
    """Submit the job; answer its results if it may run synchronously and ends in time, else its
    status with its Location."""
    job = submit.job_submit(owner=request.user, job_type=kind.name, **execution.submit)
    if not wants_async and job.tiles_total <= settings.OGC_SYNC_MAX_TILES:
        finished = _finished_within(job.pk, settings.OGC_SYNC_SECONDS)
        if finished is not None:
            return _sync_answer(request, finished, execution)
    job = Job.objects.with_counts().get(pk=job.pk)
    url = absolute(request, "ogc-job", job_id=job.pk)
    return Response(documents.status_info(request, job), status=status.HTTP_201_CREATED,
                    headers={"Location": url, "Preference-Applied": "respond-async"} if wants_async
                    else {"Location": url})


def _finished_within(job_id, seconds):
    """The job once it has ended, or None if it has not within `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        job = Job.objects.with_counts().get(pk=job_id)
        if job.is_final:
            return job
        time.sleep(0.1)
    return None


def _sync_answer(request, job, execution):
    if job.status != JobStatus.SUCCEEDED:
        raise Problem(status.HTTP_500_INTERNAL_SERVER_ERROR, "about:blank",
                      f"job {job.pk} {job.status}: {job.error or 'no result'}")
    selected = set(execution.outputs) or None
    if execution.response == "raw" and selected is not None and len(selected) == 1:
        [name] = selected
        return _output_file(job, name)
    by_value = {name for name, mode in execution.outputs.items() if mode == "value"} if execution.outputs else None
    return Response(documents.results(request, job, selected, by_value),
                    headers={"Link": f'<{absolute(request, "ogc-job", job_id=job.pk)}>; rel="monitor"'})


def _output_file(job, name):
    """One result file, streamed, with its media type."""
    output = next((o for o in job.outputs if o["name"] == name), None)
    path = media.media_path(output["path"]) if output else None
    if path is None or not path.is_file():
        raise Problem(status.HTTP_404_NOT_FOUND, "about:blank", f"job {job.pk} has no result {name[:100]!r}")
    return FileResponse(path.open("rb"), content_type=documents.MEDIA_TYPES.get(output["content_type"],
                                                                                 output["content_type"]), filename=name)


class JobList(OGCView):
    def get(self, request):
        jobs, limit, offset = jobquery.jobs_asked_for(request)
        page = list(jobs[offset:offset + limit + 1])
        url = absolute(request, "ogc-jobs")
        query = request.GET.copy()
        query["limit"] = str(limit)
        links = [link(f"{url}?{_with(query, offset)}", "self", "this page")]
        if len(page) > limit:
            links.append(link(f"{url}?{_with(query, offset + limit)}", "next", "the next page"))
        return Response({"jobs": [documents.status_info(request, job) for job in page[:limit]], "links": links})


def _with(query, offset):
    query["offset"] = str(offset)
    return query.urlencode()


class JobStatusInfo(OGCView):
    def get(self, request, job_id):
        return Response(documents.status_info(request, _job(request, job_id)))

    def delete(self, request, job_id):
        """Dismiss: a job that has not finished is canceled; a finished one is deleted, as the REST
        API's delete does; one dismissed before (canceled) says so."""
        job = _job(request, job_id)
        if job.status == JobStatus.CANCELED:
            raise no_such_job(job_id, f"job {job.pk} was dismissed")
        if not job.is_final:
            control.job_cancel(job=job, by=request.user)
            return Response(documents.status_info(request, Job.objects.with_counts().get(pk=job.pk)))
        info = documents.status_info(request, job)
        control.job_delete(job=job)
        return Response({**info, "status": "dismissed", "message": f"job {job.pk} was deleted"})


class JobResults(OGCView):
    def get(self, request, job_id):
        job = _job(request, job_id)
        if job.status == JobStatus.FAILED:
            raise Problem(status.HTTP_500_INTERNAL_SERVER_ERROR, "about:blank", f"job {job.pk} failed: {job.error}")
        if job.status != JobStatus.SUCCEEDED:
            raise Problem(status.HTTP_404_NOT_FOUND, RESULT_NOT_READY,
                          f"job {job.pk} is {documents.STATUS[job.status]}: its results are not ready")
        return Response(documents.results(request, job))


class JobResultFile(OGCView):
    def get(self, request, job_id, name):
        job = _job(request, job_id)
        if job.status != JobStatus.SUCCEEDED:
            raise Problem(status.HTTP_404_NOT_FOUND, RESULT_NOT_READY,
                          f"job {job.pk} is {documents.STATUS[job.status]}: its results are not ready")
        return _output_file(job, name)


def _process(process_id):
    kind = documents.known_process(process_id)
    if kind is None:
        raise no_such_process(process_id)
    return kind


def _job(request, job_id):
    job = None
    if job_id.isascii() and job_id.isdigit() and len(job_id) <= 18:
        job = Job.objects.visible_to(request.user).with_counts().filter(pk=int(job_id)).first()
    if job is None:
        raise no_such_job(job_id)
    return job
