from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from datafiles.api import DataFileViewSet
from datafiles.views import admin_download
from jobs import legacy
from jobs.api import views


class Router(DefaultRouter):
    """DefaultRouter, plus DELETE on a list route for viewsets that delete everything (destroy_all)."""

    routes = [route._replace(mapping={**route.mapping, "delete": "destroy_all"})
              if getattr(route, "mapping", {}).get("get") == "list" else route for route in DefaultRouter.routes]


router = Router()
router.register("jobs", views.JobViewSet, basename="job")
router.register("tiles", views.TileViewSet, basename="tile")
router.register("towns", views.TownViewSet, basename="town")
router.register("job-types", views.JobTypeViewSet, basename="job-type")
router.register("labels", views.LabelViewSet, basename="label")
router.register("datafiles", DataFileViewSet, basename="datafile")

urlpatterns = [
    path("staff/datafiles/<int:pk>/download/", admin_download, name="admin-datafile-download"),
    path("admin/", admin.site.urls),
    path("api/v1/auth/token/", views.TokenView.as_view(), name="api-token"),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/v1/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/v1/storage/", views.StorageView.as_view(), name="api-storage"),
    path("api/v1/", include(router.urls)),
    # The old tile pipeline's endpoints.
    path("start_job", legacy.start_job, name="legacy-start-job"),
    path("job_status", legacy.job_status, name="legacy-job-status"),
    path("cancel_job", legacy.cancel_job, name="legacy-cancel-job"),
]

handler404 = "jobs.api.errors.page_not_found"
handler500 = "jobs.api.errors.server_error"
