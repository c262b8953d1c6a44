"""The staff dashboard: jobs list, job detail with tile map and log, new job, actions.

Thin views over the same services as the API. Every action is a plain form post that asks for a
confirmation page when it arrives without `confirm=yes` (JavaScript asks in a dialog instead), so
everything works without JavaScript; the live parts poll small JSON endpoints.
"""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from .api.filters import JobFilter
from .api.outputs import link_for
from .api.pagination import BIGGEST
from jobsite.exceptions import Conflict, LimitExceeded, Rejected, TooLarge, id_list, quoted
from . import chainform
from .forms import JobForm, ResumeForm
from .chains import CHAIN, is_chain, job_type_of, steps_of
from .jobtypes import JOB_TYPES
from jobsite import georef

from .models import Collection, Job, JobLog, JobStatus, JobTile, Label, TileStatus
from .services import chainruns, control, estimate, submit, usage

PAGE_SIZE = 25
LOG_TAIL = 100


def _jobs(request):
    return Job.objects.visible_to(request.user).with_counts().select_related("owner").prefetch_related("labels")


def _summary(job):
    """What the list and the detail page update live."""
    return {"id": job.pk, "status": job.status, "progress": job.progress(job.tiles_done), "tiles_done": job.tiles_done,
            "tiles_failed": job.tiles_failed, "tiles_total": job.tiles_total, "final": job.is_final,
            "duration": _duration(job)}


def _duration(job):
    """How long a job ran (or has been running): "0.4 s" and "42 s" under a minute, "3:05" and "1:02:05" beyond."""
    if job.started is None:
        return ""
    exact = max(0.0, ((job.finished or timezone.now()) - job.started).total_seconds())
    if exact < 9.95:
        return f"{exact:.1f} s"
    seconds = int(exact)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60}:{seconds % 60:02d}"
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


@login_required
@require_GET
def job_list(request):
    filterset = JobFilter(request.GET, queryset=_jobs(request), request=request)
    jobs = filterset.qs if filterset.is_valid() else _jobs(request).none()
    page = Paginator(jobs, PAGE_SIZE).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "jobs/job_list.html", {
        "page": page, "rows": [(job, _summary(job)) for job in page], "filter_errors": filterset.errors,
        "statuses": JobStatus.choices, "types": sorted([*JOB_TYPES, CHAIN]), "query": query.urlencode(),
        "labels": Label.objects.filter(jobs__in=Job.objects.visible_to(request.user)).distinct().order_by("name"),
        "chosen": {key: request.GET.get(key, "") for key in ("status", "type", "label", "search")},
    })


@login_required
@require_GET
def jobs_live(request):
    """Status and progress of the listed jobs, by id: `?ids=3,2,1`."""
    try:
        ids = [int(part) for part in request.GET.get("ids", "").split(",") if part][:200]
    except ValueError:
        return JsonResponse({"detail": "ids: comma-separated job ids"}, status=400)
    if not all(0 <= job_id <= BIGGEST for job_id in ids):  # beyond 64 bits the database would overflow
        return JsonResponse({"detail": f"ids: job ids are whole numbers from 0 to {BIGGEST}"}, status=400)
    return JsonResponse({"jobs": [_summary(job) for job in _jobs(request).filter(pk__in=ids)]})


def _job_or_404(request, pk):
    return get_object_or_404(_jobs(request), pk=pk)


def _tile_map(job):
    """Rectangles of the job's tiles in a 1000-unit wide SVG view box, with their status."""
    tiles = list(JobTile.objects.filter(job=job).select_related("tile").only(
        "status", "tile__number", "tile__minx", "tile__miny", "tile__maxx", "tile__maxy").order_by("tile__number"))
    if not tiles:
        return {"tiles": [], "width": 1000, "height": 1000}
    minx, maxy = min(t.tile.minx for t in tiles), max(t.tile.maxy for t in tiles)
    span_x = max(t.tile.maxx for t in tiles) - minx
    span_y = maxy - min(t.tile.miny for t in tiles)
    scale = 1000 / max(span_x, span_y)
    return {"width": round(span_x * scale), "height": round(span_y * scale), "tiles": [
        {"id": t.tile.number, "status": t.status, "x": round((t.tile.minx - minx) * scale, 2),
         "y": round((maxy - t.tile.maxy) * scale, 2), "w": round((t.tile.maxx - t.tile.minx) * scale, 2),
         "h": round((t.tile.maxy - t.tile.miny) * scale, 2)} for t in tiles]}


def _allowed(job):
    return {"cancel": not job.is_final, "resume": job.is_resumable, "delete": job.is_final}


# The parts of a job page that change while it runs. The page includes them and the live endpoint
# sends them rendered by the same templates, so what a poll shows is what a reload shows.
LIVE_PARTS = ("state", "result", "facts")


def _live_context(job):
    outputs = [{**o, "url": reverse("job-output", kwargs={"pk": job.pk, "name": o["name"]})} for o in job.outputs]
    inputs = job.inputs.all()
    steps = steps_of(job, {i.name: i.file_name for i in inputs}, chainruns.step_facts(job)) if is_chain(job) else None
    return {"job": job, "summary": _summary(job), "allowed": _allowed(job), "inputs": inputs, "steps": steps,
            "outputs": outputs, "link_hours": settings.OUTPUT_LINK_SECONDS / 3600,
            "thumbnail": next((o["url"] for o in outputs if o["name"] == "thumbnail.png"), None),
            "usage": usage.job_usage(job) if job.is_final else None,  # not at every poll of a running job
            "waiting_for_tiles": id_list(job.waiting_for_tiles), "tiles_held": _tiles_held(job)}


def _tiles_held(job):
    """How many of the tiles of a job that runs as its tiles arrive wait for a neighbour to arrive."""
    if not job.waiting_for_tiles or job.is_final:
        return 0
    return JobTile.objects.filter(job=job, status=TileStatus.WAITING).count()


def _live_parts(request, context):
    return {name: render_to_string(f"jobs/_job_{name}.html", context, request=request) for name in LIVE_PARTS}


def _log_lines(request, logs):
    return [{"id": log.id, "created": log.created.isoformat(), "level": log.level, "tile": log.tile.number if log.tile_id else None,
             "message": log.message, "html": render_to_string("jobs/_log_line.html", {"log": log}, request=request)}
            for log in logs]


@login_required
@require_GET
def job_detail(request, pk):
    job = _job_or_404(request, pk)
    logs = list(JobLog.objects.filter(job=job).select_related("tile").order_by("-id")[:LOG_TAIL])[::-1]
    return render(request, "jobs/job_detail.html", {
        **_live_context(job), "tile_map": _tile_map(job), "logs": logs, "last_log": logs[-1].id if logs else 0,
        "resume_form": ResumeForm(kind=job_type_of(job), current=job.params), "statuses": TileStatus.values,
    })


@login_required
@require_GET
def job_live(request, pk):
    """What changed on a job page: status, progress, each tile's status, log lines after `after`, and
    the page's changing parts as HTML. `settled` once the job is final and no tile is still moving:
    none pending or running, and none stopping (canceled while its worker, which logs how it
    stopped, still holds it)."""
    job = _job_or_404(request, pk)
    try:
        after = int(request.GET.get("after", 0))
    except ValueError:
        return JsonResponse({"detail": "after: a log id"}, status=400)
    if not 0 <= after <= BIGGEST:
        return JsonResponse({"detail": f"after: a log id from 0 to {BIGGEST}"}, status=400)
    tiles = dict(JobTile.objects.filter(job=job).values_list("tile__number", "status"))
    context = _live_context(job)
    return JsonResponse({
        **context["summary"], "allowed": context["allowed"], "tiles": tiles,
        "settled": job.is_final and not any(s in (TileStatus.PENDING, TileStatus.RUNNING) for s in tiles.values())
        and not _stopping(job).exists(),
        "logs": _log_lines(request, JobLog.objects.filter(job=job, id__gt=after).select_related("tile").order_by("id")[:500]),
        "parts": _live_parts(request, context),
    })


def _stopping(job):
    """The job's canceled tiles whose worker still holds them under a lease (one that ran out aside:
    that worker is gone, or busy in a step that renews nothing)."""
    return JobTile.objects.filter(job=job, status=TileStatus.CANCELED, lease_expires__gt=timezone.now()).exclude(
        lease_owner="")


def _confirmed(request, job, action, question):
    """True when the post carries confirm=yes; otherwise the confirmation page is the answer."""
    if request.POST.get("confirm") == "yes":
        return True, None
    return False, render(request, "jobs/confirm.html", {"job": job, "action": action, "question": question,
                                                        "fields": request.POST.items()})


@login_required
@require_POST
def job_cancel(request, pk):
    job = _job_or_404(request, pk)
    confirmed, page = _confirmed(request, job, "cancel", f"Cancel job {job.pk}?")
    if not confirmed:
        return page
    try:
        control.job_cancel(job=job, by=request.user)
        messages.success(request, f"Job {job.pk} canceled.")
    except Conflict as exc:
        messages.error(request, str(exc))
    return redirect("job-page", pk=job.pk)


@login_required
@require_http_methods(["GET", "POST"])
def job_output_link(request, pk, name):
    """A shareable link to one of the job's files: asked for on this page, made by its POST (the
    job page's script makes it in place, through the API)."""
    job = _job_or_404(request, pk)
    if not any(output["name"] == name for output in job.outputs):
        raise Http404(f"job {job.pk} has no output {quoted(name)}")
    context = {"job": job, "name": name, "link_hours": settings.OUTPUT_LINK_SECONDS / 3600}
    if request.method == "POST":
        context["url"], context["expires"] = link_for(request, job, name, settings.OUTPUT_LINK_SECONDS)
    return render(request, "jobs/output_link.html", context)


@login_required
@require_POST
def job_resume(request, pk):
    job = _job_or_404(request, pk)
    form = ResumeForm(request.POST, kind=job_type_of(job), current=job.params)
    if not form.is_valid():
        messages.error(request, "; ".join(f"{k.removeprefix('param_')}: {' '.join(v)}" for k, v in form.errors.items()))
        return redirect("job-page", pk=job.pk)
    confirmed, page = _confirmed(request, job, "resume", f"Resume job {job.pk}?")
    if not confirmed:
        return page
    try:
        _, to_run = control.job_resume(job=job, by=request.user, params=form.changes(job.params) or None)
        messages.success(request, f"Job {job.pk} resumed: {to_run} tiles will run.")
    except (Conflict, Rejected, TooLarge, LimitExceeded) as exc:
        messages.error(request, str(exc))
    return redirect("job-page", pk=job.pk)


@login_required
@require_POST
def job_delete(request, pk):
    job = _job_or_404(request, pk)
    confirmed, page = _confirmed(request, job, "delete", f"Delete job {job.pk} with its files?")
    if not confirmed:
        return page
    try:
        control.job_delete(job=job)
    except Conflict as exc:
        messages.error(request, str(exc))
        return redirect("job-page", pk=job.pk)
    messages.success(request, f"Job {pk} deleted.")
    return redirect("job-list")


@login_required
@require_http_methods(["GET", "POST"])
def job_new(request):
    type_name = request.POST.get("type") or request.GET.get("type") or "hillshade"
    if type_name == CHAIN:
        return _chain_new(request)
    if type_name not in JOB_TYPES:
        raise Http404(f"no job type {quoted(type_name)}")
    kind = JOB_TYPES[type_name]
    switching = request.method == "POST" and request.POST.get("switch_type")
    initial = {"type": type_name}
    if Collection.objects.filter(pk=request.GET.get("collection", "")).exists():  # from the collections page
        initial["collection"] = request.GET["collection"]
    form = JobForm(request.POST if request.method == "POST" and not switching else None, owner=request.user, kind=kind,
                   initial=initial)
    if request.method == "POST" and request.POST.get("estimate"):
        return _estimate(request, form, kind)
    if request.method == "POST" and not switching and form.is_valid():
        if submitted := _submitted(request, form):
            return submitted
    elif request.method == "POST" and not switching:
        _add_param_problems(form, kind)
    return render(request, "jobs/job_new.html", {"form": form, "kind": kind, "types": JOB_TYPES.values()})


def _submitted(request, form):
    """The job page of the job the valid `form` submits; None, with the refusal on the form, if it is refused."""
    try:
        job = submit.job_submit(owner=request.user, **form.submit_kwargs())
    except Rejected as exc:
        form.add_service_errors(exc.errors)  # every field the service refused, all at once
    except (LimitExceeded, TooLarge) as exc:
        form.add_error(None, str(exc))
    else:
        messages.success(request, f"Job {job.pk} submitted ({job.tiles_total} tiles).")
        return redirect("job-page", pk=job.pk)
    return None


def _chain_new(request):
    """The new-job form for a chain, built step by step (jobs.chainform)."""
    data = request.POST if request.method == "POST" else {}
    types = chainform.step_types(data)
    changing = request.method == "POST" and chainform.changes_steps(data)
    if request.method == "POST" and not changing:
        form = chainform.ChainForm(data, owner=request.user, types=types)
    else:
        form = chainform.ChainForm(owner=request.user, types=types).initial_from(data)
    if request.method == "POST" and not changing and data.get("estimate"):
        return _estimate(request, form, None)
    if request.method == "POST" and not changing:
        if form.is_valid() and (submitted := _submitted(request, form)):
            return submitted
        if not form.is_valid():
            form.add_step_problems()
    return render(request, "jobs/job_new.html", {"form": form, "chain": form.steps(), "types": JOB_TYPES.values()})


def _estimate(request, form, kind):
    """The form's "Estimate" button (or its script, asking for JSON): what the job would cost,
    shown with the form, which is not submitted."""
    found = None
    if form.is_valid():
        try:
            found = estimate.job_estimate(owner=request.user, **form.submit_kwargs())
        except Rejected as exc:
            form.add_service_errors(exc.errors)
    elif kind is None:
        form.add_step_problems()
    else:
        _add_param_problems(form, kind)
    if "application/json" in request.headers.get("Accept", ""):
        if found is None:
            return JsonResponse({"errors": {name: [str(e) for e in errors] for name, errors in form.errors.items()}},
                                status=400)
        return JsonResponse({**found, "text": render_to_string("jobs/_estimate.html", {"estimate": found})})
    return render(request, "jobs/job_new.html", {"form": form, "kind": kind, "types": JOB_TYPES.values(),
                                                 "estimate": found, "chain": form.steps() if kind is None else None})


def _add_param_problems(form, kind):
    """A form refused for some fields is not submitted, so the job type checks the parameters the form
    could read, to name their problems along with the form's own."""
    read = {name: form.cleaned_data[f"param_{name}"] for name in kind.params_schema()["properties"]
            if form.cleaned_data.get(f"param_{name}") is not None and not form.fields[f"param_{name}"].disabled}
    try:
        kind.clean_params(read)
    except Rejected as exc:
        problems = exc.errors.get("params")
        if isinstance(problems, dict):
            form.add_service_errors({"params": {name: problem for name, problem in problems.items()
                                                if name in read and f"param_{name}" not in form.errors}})


@login_required
@require_GET
def collection_list(request):
    """The collections with what they hold, and their footprints on one lon/lat sketch."""
    collections = list(Collection.objects.order_by("id"))
    rows = []
    for collection in collections:
        box = (collection.minx, collection.miny, collection.maxx, collection.maxy)
        lonlat = georef.lonlat_bounds(box, collection.crs_wkt) if collection.tile_count and collection.crs_wkt else None
        rows.append({"collection": collection, "lonlat": lonlat, "crs": georef.crs_name(collection.crs_wkt) if
                     collection.crs_wkt else "", "epsg": georef.epsg_of(collection.crs_wkt) if collection.crs_wkt else None})
    return render(request, "jobs/collection_list.html", {"rows": rows, "sketch": _footprints(rows)})


def _footprints(rows):
    """Rectangles of the collections' lon/lat bounds in a 1000-unit wide SVG view box."""
    placed = [row for row in rows if row["lonlat"]]
    if not placed:
        return None
    west, south = min(r["lonlat"][0] for r in placed), min(r["lonlat"][1] for r in placed)
    east, north = max(r["lonlat"][2] for r in placed), max(r["lonlat"][3] for r in placed)
    scale = 1000 / max(east - west, north - south, 1e-9)
    return {"width": round((east - west) * scale), "height": round((north - south) * scale), "boxes": [
        {"id": r["collection"].pk, "x": round((r["lonlat"][0] - west) * scale, 2),
         "y": round((north - r["lonlat"][3]) * scale, 2), "w": round((r["lonlat"][2] - r["lonlat"][0]) * scale, 2),
         "h": round((r["lonlat"][3] - r["lonlat"][1]) * scale, 2)} for r in placed]}
