"""Data file pages of the dashboard: upload, list, detail with preview, delete."""

import json

from django.conf import settings
from django.contrib import messages
from django.contrib.admin.views.decorators import staff_member_required
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST, require_safe

from jobsite import downloads, media
from jobsite.exceptions import Conflict, Rejected, TooLarge

from . import metadata, services
from .formats import Unreadable
from .forms import UploadForm
from .models import DataFile


@login_required
@require_http_methods(["GET", "POST"])
def datafile_list(request):
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        try:
            datafile, created = services.datafile_store(owner=request.user, upload=form.cleaned_data["file"],
                                                        name=form.cleaned_data["name"] or None,
                                                        replace=form.cleaned_data["replace"])
        except Rejected as exc:
            for field, problem in exc.errors.items():
                form.add_error(field if field in form.fields else "file", str(problem))
        except (Conflict, TooLarge) as exc:
            form.add_error("file", str(exc))
        else:
            messages.success(request, f"{datafile.name} {'stored' if created else 'replaced'}: a {datafile.kind} file.")
            return redirect("datafile-page", name=datafile.name)
    files = DataFile.objects.filter(owner=request.user).order_by("name")
    return render(request, "datafiles/datafile_list.html", {"form": form, "files": files,
                                                            "used": services.data_bytes(request.user)})


def _own(request, name):
    return get_object_or_404(DataFile, owner=request.user, name=name)


@login_required
@require_GET
def datafile_detail(request, name):
    datafile = _own(request, name)
    preview = None
    if datafile.kind == "text":
        preview = _first_lines(datafile)
    return render(request, "datafiles/datafile_detail.html", {
        "datafile": datafile, "preview": preview, "jobs": services.jobs_using(datafile),
        "preview_size": _preview_display_size(datafile.metadata) if datafile.kind == "raster" else None,
        "facts": _metadata_rows(datafile.metadata, shown_above={"preview"} if datafile.kind == "table" else set()),
        "metadata": json.dumps(datafile.metadata, indent=2, ensure_ascii=False), "map": _map_urls(datafile)})


def _map_urls(datafile):
    """The layers of the data file's map: the file itself, over the relief of the default collection."""
    if datafile.kind not in (DataFile.Kind.RASTER, DataFile.Kind.VECTOR):
        return None
    urls = {"collection": reverse("collection-detail", args=[settings.DEFAULT_COLLECTION])}
    if datafile.kind == DataFile.Kind.RASTER:
        return {**urls, "tilejson": reverse("datafile-tilejson", args=[datafile.name])}
    return {**urls, "geojson": reverse("datafile-geojson", args=[datafile.name])}


PREVIEW_PIXELS = 256  # the longer side of a raster's preview PNG (sandbox.preview), at most


def _preview_display_size(metadata):
    """Width and height to show a raster's preview at: a preview smaller than PREVIEW_PIXELS is scaled
    up by the largest whole factor that keeps it within that, so a 64 x 48 raster is seen at 256 x 192."""
    width, height = metadata.get("width"), metadata.get("height")
    if not width or not height:
        return None
    scale = min(1.0, PREVIEW_PIXELS / max(width, height))  # as the preview is drawn
    width, height = max(1, round(width * scale)), max(1, round(height * scale))
    factor = max(1, PREVIEW_PIXELS // max(width, height))
    return {"width": width * factor, "height": height * factor}


def _metadata_rows(metadata, shown_above=()):
    """A data file's metadata as rows of (name, text, table): a list of objects (bands, layers)
    becomes a table of its own with a column per key; anything else reads as one line of text."""
    rows = []
    for key, value in sorted(metadata.items(), key=lambda item: _reading_order(item[0])):
        if key in shown_above:
            continue
        name = _label(key).capitalize() if key not in ACRONYMS else _label(key)
        if isinstance(value, list) and value and all(isinstance(item, dict) for item in value):
            columns = sorted(dict.fromkeys(column for item in value for column in item), key=_reading_order)
            rows.append((name, None, {"columns": [_label(c) for c in columns],
                                      "rows": [[_as_text(item.get(c)) for c in columns] for item in value]}))
        else:
            rows.append((name, _as_text(value), None))
    return rows


ACRONYMS = {"crs": "CRS", "epsg": "EPSG", "json_type": "JSON type"}

# Metadata keys in the order they read best; PostgreSQL keeps JSON objects in an order of its own.
READING_ORDER = ("name", "driver", "kind", "width", "height", "band_count", "type", "geometry_type", "feature_count",
                 "row_count", "columns", "delimiter", "lines", "characters", "json_type", "nodata", "fields", "bands",
                 "layers", "crs", "epsg", "bounds", "extent", "geotransform")


def _reading_order(key):
    return (READING_ORDER.index(key), "") if key in READING_ORDER else (len(READING_ORDER), key)


def _label(key):
    return ACRONYMS.get(key, key.replace("_", " "))


def _as_text(value):
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.10g}"
    if isinstance(value, dict):
        return ", ".join(f"{key}: {_as_text(item)}" for key, item in value.items())
    if isinstance(value, list):
        if all(isinstance(item, dict) for item in value):  # a layer's fields: "id Integer, name String"
            return ", ".join(" ".join(_as_text(v) for v in item.values()) for item in value) or "none"
        return ", ".join(_as_text(item) for item in value) or "none"
    return str(value)


PREVIEW_LINES, PREVIEW_CHARACTERS = 40, 16 * 1024


def _first_lines(datafile):
    """The first lines of a text file, read no further than they need."""
    text = ""
    try:
        for chunk in metadata.iter_text(media.media_path(datafile.path), datafile.name):
            text += chunk
            if text.count("\n") >= PREVIEW_LINES or len(text) >= PREVIEW_CHARACTERS:
                break
    except Unreadable as exc:
        return str(exc)
    return "\n".join(text[:PREVIEW_CHARACTERS].splitlines()[:PREVIEW_LINES])


@login_required
@require_GET
def datafile_thumbnail(request, name):
    datafile = _own(request, name)
    if datafile.kind != "raster":
        return HttpResponse(status=404)
    try:
        path = services.datafile_preview(datafile)
    except services.NotReady:
        return HttpResponse("the preview is being made", status=503, headers={"Retry-After": "2"},
                            content_type="text/plain; charset=utf-8")
    except Unreadable as exc:
        return HttpResponse(str(exc), status=422, content_type="text/plain; charset=utf-8")
    return HttpResponse(path.read_bytes(), content_type="image/png")


@login_required
@require_POST
def datafile_delete(request, name):
    datafile = _own(request, name)
    if request.POST.get("confirm") != "yes":
        return render(request, "datafiles/confirm_delete.html", {"datafile": datafile})
    try:
        services.datafile_delete(datafile=datafile)
    except Conflict as exc:
        messages.error(request, str(exc))
        return redirect("datafile-page", name=name)
    messages.success(request, f"{name} deleted.")
    return redirect("datafile-list-page")


@staff_member_required
@require_safe
def admin_download(request, pk):
    """Any user's data file, for staff (linked from the admin)."""
    datafile = get_object_or_404(DataFile, pk=pk)
    return downloads.serve_file(request, datafile.path, as_attachment=True, filename=datafile.name,
                                content_type="application/octet-stream")
