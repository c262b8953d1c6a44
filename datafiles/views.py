from django.contrib.admin.views.decorators import staff_member_required
from django.http import FileResponse
from django.shortcuts import get_object_or_404

from jobs import storage

from .models import DataFile


@staff_member_required
def admin_download(request, pk):
    """Any user's data file, for staff (linked from the admin)."""
    datafile = get_object_or_404(DataFile, pk=pk)
    return FileResponse(storage.media_path(datafile.path).open("rb"), as_attachment=True, filename=datafile.name)
