"""OGC API - Processes 1.0 under /ogcapi/: thin views over the same services, accounts and
visibility as the REST API (another user's job is a 404), answering problem details on error."""

import json
import time

from django.conf import settings
from django.shortcuts import redirect, render
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework import status
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from jobsite import downloads, media
from jobsite.exceptions import Conflict

from ..api.auth import BasicTokenAuthentication
from ..api.parsers import JSONParser
from ..api.serializers import JobCreateSerializer
from ..models import Job, JobStatus
from ..services import control, submit
from . import documents, given_files, jobquery, openapi, places
from .documents import absolute, link
from .execution import read_execution, read_sps_request
from .problems import RESULT_NOT_READY, Problem, exception_handler, invalid, no_such_job, no_such_process

CONFORMANCE = [f"http://www.opengis.net/spec/ogcapi-processes-1/1.0/conf/{name}"
               for name in ("core", "ogc-process-description", "json", "html", "oas30", "job-list", "callback",
                            "dismiss")]
PROCESS_LIMIT = (10, 1, 10000)  # default, least, most


class JSONAnswers(DefaultContentNegotiation):
    """JSON whatever the Accept header says: the HTML pages are chosen by the views (`f=html`, or a
    browser's Accept), and errors are problems in JSON."""

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class OGCView(APIView):
    # HTTP Basic too (with the API token as the password), for the clients that only speak that:
    # first, so that a 401's challenge names it.
    authentication_classes = [BasicTokenAuthentication, *api_settings.DEFAULT_AUTHENTICATION_CLASSES]
    renderer_classes = [JSONRenderer]
    parser_classes = [JSONParser]
    content_negotiation_class = JSONAnswers
    schema = None  # not part of the REST API's OpenAPI document

    def get_exception_handler(self):
        return exception_handler

    def answer(self, request, document, template, **context):
        """The document as JSON, or as the HTML page `template` when that is asked for."""
        if wants_html(request):
            return render(request, f"ogcapi/{template}", {"doc": document, **context})
        return Response(document)


def wants_html(request):
    """`f=html`, or no `f` and an Accept header that asks for HTML but not JSON (a browser's)."""
    form = request.GET.get("f")
    if form is not None:
        if form not in ("json", "html"):
            raise invalid("f", "must be json or html")
        return form == "html"
    accept = request.headers.get("Accept", "")
    return "text/html" in accept and "application/json" not in accept


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
        return self.answer(request, {
            "title": "jobsite", "description": "Raster jobs over a tile index, as OGC API - Processes",
            "links": [link(here, "self", "this document"),
                      link(absolute(request, "ogc-api"), "service-desc", "the OpenAPI 3.0 document of this API",
                           openapi.MEDIA_TYPE),
                      link(absolute(request, "ogc-api-docs"), "service-doc", "the API's documentation", "text/html"),
                      link(absolute(request, "ogc-conformance"), "http://www.opengis.net/def/rel/ogc/1.0/conformance",
                           "the conformance classes implemented"),
                      link(absolute(request, "ogc-processes"), "http://www.opengis.net/def/rel/ogc/1.0/processes",
                           "the processes"),
                      link(absolute(request, "ogc-jobs"), "http://www.opengis.net/def/rel/ogc/1.0/job-list", "the jobs"),
                      link(f"{here}?f=html", "alternate", "this document as HTML", "text/html")],
        }, "landing.html")


class OpenAPIDocument(OGCView):
    permission_classes = [AllowAny]

    def get(self, request):
        if wants_html(request):
            return redirect("ogc-api-docs")
        return Response(openapi.document(request), content_type=openapi.MEDIA_TYPE)


class Conformance(OGCView):
    permission_classes = [AllowAny]

    def get(self, request):
        return self.answer(request, {"conformsTo": CONFORMANCE}, "conformance.html")


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
        links.append(link(f"{url}?limit={limit}&offset={offset}&f=html", "alternate", "this page as HTML", "text/html"))
        return self.answer(request, {"processes": [documents.process_summary(request, kind) for kind in page],
                                     "links": links}, "processes.html", query=f"limit={limit}&offset={offset}")


class ProcessDescription(OGCView):
    def get(self, request, process_id):
        description = documents.process_description(request, _process(process_id))
        inputs = [{"name": name, "input": given, "schema": json.dumps(given["schema"], separators=(", ", ": "))}
                  for name, given in description["inputs"].items()]
        return self.answer(request, description, "process.html", inputs=inputs)


class Execute(OGCView):
    def post(self, request, process_id):
        kind = _process(process_id)
        execution = read_execution(request.data, kind, request)
        if "respond-async" in request.headers.get("Prefer", ""):
            execution.mode = "async"
        return _executed(request, execution)


class SPSJobs(OGCView):
    """The SPS jobs-database request: POST /ogcapi/processes/{id}:{version}/jobs."""

    def post(self, request, process_id, version):
        kind = _process(process_id)
        if version != kind.version:
            raise no_such_process(f"{process_id}:{version}",
                                  f"the process {kind.name} has version {kind.version}, not {version[:60]!r}")
        return _executed(request, read_sps_request(request.data, kind, request))


# An execute request answers within this many seconds, well within the web server's time-out (120 s):
# the time its files took to fetch and check is taken from its wait for the results.
REQUEST_SECONDS = 90


def _executed(request, execution):
    """Submit the job (checked as the REST API's create request is); answer its results if it may
    run synchronously and ends in time, else its status with its Location."""
    started = time.monotonic()
    if execution.given:  # what costs nothing is checked before any file is fetched
        submit.check_before_files(owner=request.user, job_type=execution.submit["type"],
                                  params=execution.submit["params"])
    with given_files.stored(request.user, execution.given) as stored:
        if stored:
            execution.submit["inputs"] = {**execution.submit.get("inputs", {}), **stored}
        # Every data file is named by its URL, so it is there: a job never waits here.
        job = JobCreateSerializer(data=execution.submit).submit(request.user, wait_for_files=False)
    url = absolute(request, "ogc-job", job_id=job.pk)
    wait = min(settings.OGC_SYNC_SECONDS, REQUEST_SECONDS - (time.monotonic() - started))
    if execution.mode != "async" and job.tiles_total <= settings.OGC_SYNC_MAX_TILES and wait > 0:
        with places.sync_waits.place(request.user.pk) as waiting:
            finished = waiting and _finished_within(job.pk, wait)
        if finished:
            return _sync_answer(request, finished, execution, url)
    job = Job.objects.with_counts().get(pk=job.pk)
    headers = {"Location": url}
    if execution.mode == "async":
        headers["Preference-Applied"] = "respond-async"
    return Response(documents.status_info(request, job), status=status.HTTP_201_CREATED, headers=headers)


def _finished_within(job_id, seconds):
    """The job once it has ended, or None if it has not within `seconds` (or is gone)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        state = Job.objects.filter(pk=job_id).values_list("status", flat=True).first()
        if state is None:
            return None
        if state in JobStatus.final():
            return Job.objects.with_counts().filter(pk=job_id).first()
        time.sleep(0.1)
    return None


def _sync_answer(request, job, execution, url):
    if job.status != JobStatus.SUCCEEDED:
        error = Problem(status.HTTP_500_INTERNAL_SERVER_ERROR, "about:blank",
                        f"job {job.pk} {documents.STATUS[job.status]}: {job.error or 'no result'}")
        error.extra = {"jobID": str(job.pk), "links": [link(url, "monitor", f"job {job.pk}")]}
        raise error
    selected = set(execution.outputs) or None
    if execution.response == "raw" and selected is not None and len(selected) == 1:
        [name] = selected
        return _output_file(request, job, name)
    by_value = {name for name, mode in execution.outputs.items() if mode == "value"} if execution.outputs else None
    return Response(documents.results(request, job, selected, by_value), headers={"Link": f'<{url}>; rel="monitor"'})


def _output_file(request, job, name):
    """One result file, streamed with its media type, byte ranges and validators."""
    output = next((o for o in job.outputs if o["name"] == name), None)
    if output is None or not media.media_path(output["path"]).is_file():
        raise Problem(status.HTTP_404_NOT_FOUND, "about:blank", f"job {job.pk} has no result {name[:100]!r}")
    return downloads.serve_file(request, output["path"], filename=name, content_type=documents.MEDIA_TYPES.get(
        output["content_type"], output["content_type"]))


class JobList(OGCView):
    def get(self, request):
        jobs, limit, offset = jobquery.jobs_asked_for(request)
        page = list(jobs[offset:offset + limit + 1])
        url = absolute(request, "ogc-jobs")
        query = request.GET.copy()
        query.pop("f", None)
        query["limit"] = str(limit)
        links = [link(f"{url}?{_with(query, offset)}", "self", "this page")]
        if len(page) > limit:
            links.append(link(f"{url}?{_with(query, offset + limit)}", "next", "the next page"))
        links.append(link(f"{url}?{_with(query, offset)}&f=html", "alternate", "this page as HTML", "text/html"))
        return self.answer(request, {"jobs": [documents.status_info(request, job) for job in page[:limit]],
                                     "links": links}, "jobs.html", query=_with(query, offset))


def _with(query, offset):
    query["offset"] = str(offset)
    return query.urlencode()


class JobStatusInfo(OGCView):
    def get(self, request, job_id):
        return self.answer(request, documents.status_info(request, _job(request, job_id)), "job.html")

    def delete(self, request, job_id):
        """Dismiss: a job that has not finished is canceled; a finished one is deleted, as the REST
        API's delete does; one dismissed before (canceled) says so."""
        job = _job(request, job_id)
        if job.status == JobStatus.CANCELED:
            raise no_such_job(job_id, f"job {job.pk} was dismissed")
        if not job.is_final:
            try:
                control.job_cancel(job=job, by=request.user)
                return Response(documents.status_info(request, Job.objects.with_counts().get(pk=job.pk)))
            except Conflict:  # it ended meanwhile: a finished job is deleted
                job = _job(request, job_id)
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
        found = documents.results(request, job)
        outputs = [{"name": name, **(value if isinstance(value, dict) and "href" in value
                                     else {"value": json.dumps(value)[:2000]})} for name, value in found.items()]
        answer = self.answer(request, found, "results.html", job_id=job.pk, outputs=outputs)
        answer["Link"] = f'<{documents.stac_item_url(request, job)}>; rel="alternate"; type="application/geo+json"'
        return answer


class JobResultFile(OGCView):
    def get(self, request, job_id, name):
        job = _job(request, job_id)
        if job.status != JobStatus.SUCCEEDED:
            raise Problem(status.HTTP_404_NOT_FOUND, RESULT_NOT_READY,
                          f"job {job.pk} is {documents.STATUS[job.status]}: its results are not ready")
        return _output_file(request, job, name)


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
