from django.urls import path, re_path
from drf_spectacular.views import SpectacularSwaggerSplitView

from . import views

urlpatterns = [
    path("", views.LandingPage.as_view(), name="ogc-landing"),
    path("api", views.OpenAPIDocument.as_view(), name="ogc-api"),
    path("api.html", SpectacularSwaggerSplitView.as_view(url_name="ogc-api", template_name="api/swagger_ui.html",
                                                         title="jobsite OGC API - Processes"), name="ogc-api-docs"),
    path("conformance", views.Conformance.as_view(), name="ogc-conformance"),
    path("processes", views.ProcessList.as_view(), name="ogc-processes"),
    # The SPS jobs-database request names the version: processes/hillshade:1/jobs.
    re_path(r"^processes/(?P<process_id>[^/:]+):(?P<version>[^/]+)/jobs$", views.SPSJobs.as_view(), name="ogc-sps-jobs"),
    path("processes/<str:process_id>", views.ProcessDescription.as_view(), name="ogc-process"),
    path("processes/<str:process_id>/execution", views.Execute.as_view(), name="ogc-execute"),
    path("jobs", views.JobList.as_view(), name="ogc-jobs"),
    path("jobs/<str:job_id>", views.JobStatusInfo.as_view(), name="ogc-job"),
    path("jobs/<str:job_id>/results", views.JobResults.as_view(), name="ogc-results"),
    path("jobs/<str:job_id>/results/<str:name>", views.JobResultFile.as_view(), name="ogc-result"),
    re_path(r"^.*$", views.NoResource.as_view(), name="ogc-nothing"),
]
