from django.contrib import admin
from django.urls import include, path
from rest_framework.authtoken.views import obtain_auth_token
from rest_framework.routers import DefaultRouter

from jobs import api, legacy

router = DefaultRouter()
router.register("jobs", api.JobViewSet, basename="job")

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/v1/auth/token/", obtain_auth_token, name="api-token"),
    path("api/v1/", include(router.urls)),
    # The old tile pipeline's endpoints.
    path("start_job", legacy.start_job, name="legacy-start-job"),
    path("job_status", legacy.job_status, name="legacy-job-status"),
    path("cancel_job", legacy.cancel_job, name="legacy-cancel-job"),
]
