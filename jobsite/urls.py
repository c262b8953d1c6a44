from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from jobs import legacy
from jobs.api import views

router = DefaultRouter()
router.register("jobs", views.JobViewSet, basename="job")
router.register("tiles", views.TileViewSet, basename="tile")
router.register("towns", views.TownViewSet, basename="town")
router.register("job-types", views.JobTypeViewSet, basename="job-type")
router.register("labels", views.LabelViewSet, basename="label")

urlpatterns = [
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
