from django.contrib import admin
from django.contrib.auth import views as auth_pages
from django.urls import include, path, register_converter
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from datafiles import views as datafile_pages
from datafiles.api import DataFileViewSet
from jobs import legacy
from jobs import views as job_pages
from jobs.api import maps, outputs, stac, views
from jobs.api.auth import throttle_password_attempts
from notifications import streams
from notifications.api import SubscriptionViewSet


class Router(DefaultRouter):
    """DefaultRouter, plus DELETE on a list route for viewsets that delete everything (destroy_all)."""

    routes = [route._replace(mapping={**route.mapping, "delete": "destroy_all"})
              if getattr(route, "mapping", {}).get("get") == "list" else route for route in DefaultRouter.routes]


class ImageFormat:
    """The image formats of map tiles, as the suffix of a tile's URL."""

    regex = "png|webp"

    def to_python(self, value):
        return value

    def to_url(self, value):
        return value


register_converter(ImageFormat, "image")

router = Router()
router.register("jobs", views.JobViewSet, basename="job")
router.register("collections", views.CollectionViewSet, basename="collection")
router.register("tiles", views.TileViewSet, basename="tile")
router.register("towns", views.TownViewSet, basename="town")
router.register("job-types", views.JobTypeViewSet, basename="job-type")
router.register("labels", views.LabelViewSet, basename="label")
router.register("datafiles", DataFileViewSet, basename="datafile")
router.register("webhooks", SubscriptionViewSet, basename="webhook")

urlpatterns = [
    path("", job_pages.job_list, name="job-list"),
    path("jobs/live/", job_pages.jobs_live, name="jobs-live"),
    path("jobs/new/", job_pages.job_new, name="job-new"),
    path("jobs/<int:pk>/", job_pages.job_detail, name="job-page"),
    path("jobs/<int:pk>/live/", job_pages.job_live, name="job-live"),
    path("jobs/<int:pk>/cancel/", job_pages.job_cancel, name="job-page-cancel"),
    path("jobs/<int:pk>/resume/", job_pages.job_resume, name="job-page-resume"),
    path("jobs/<int:pk>/delete/", job_pages.job_delete, name="job-page-delete"),
    path("jobs/<int:pk>/outputs/<str:name>/link/", job_pages.job_output_link, name="job-page-output-link"),
    path("collections/", job_pages.collection_list, name="collection-list-page"),
    path("datafiles/", datafile_pages.datafile_list, name="datafile-list-page"),
    path("datafiles/<str:name>/", datafile_pages.datafile_detail, name="datafile-page"),
    path("datafiles/<str:name>/preview.png", datafile_pages.datafile_thumbnail, name="datafile-thumbnail"),
    path("datafiles/<str:name>/delete/", datafile_pages.datafile_delete, name="datafile-delete-page"),
    path("staff/datafiles/<int:pk>/download/", datafile_pages.admin_download, name="admin-datafile-download"),
    # The login pages, ahead of the ones included below: password attempts are throttled.
    path("accounts/login/", throttle_password_attempts(auth_pages.LoginView.as_view()), name="login"),
    path("admin/login/", throttle_password_attempts(admin.site.login)),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("api/v1/auth/token/", views.TokenView.as_view(), name="api-token"),
    path("api/v1/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # Its start-up script as a file of its own (?script), for the Content-Security-Policy.
    path("api/v1/docs/",
         SpectacularSwaggerSplitView.as_view(url_name="api-schema", template_name="api/swagger_ui.html"),
         name="api-docs"),
    path("api/v1/storage/", views.StorageView.as_view(), name="api-storage"),
    path("api/v1/usage/", views.UsageView.as_view(), name="api-usage"),
    path("api/v1/quotas/", views.QuotasView.as_view(), name="api-quotas"),
    path("api/v1/health/", views.HealthView.as_view(), name="api-health"),
    path("api/v1/events/", streams.all_events, name="api-events"),
    path("api/v1/jobs/<int:pk>/events/", streams.job_events, name="api-job-events"),
    path("api/v1/jobs/<int:pk>/outputs/", outputs.OutputList.as_view(), name="job-outputs"),
    # The file's name last, so that GDAL's /vsicurl/ knows the format by its extension.
    path("api/v1/jobs/<int:pk>/outputs/<str:name>", outputs.OutputFile.as_view(), name="job-output"),
    path("api/v1/jobs/<int:pk>/outputs/<str:name>/", outputs.OutputFileAsFirstGiven.as_view()),
    path("api/v1/jobs/<int:pk>/outputs/<str:name>/link/", outputs.OutputLink.as_view(), name="job-output-link"),
    path("api/v1/links/<str:signed>/<str:name>", outputs.linked_output, name="output-link"),
    path("api/v1/jobs/<int:pk>/outputs/<str:name>/tiles/<int:z>/<int:x>/<int:y>.<image:image_format>",
         maps.OutputTileView.as_view(), name="job-output-tile"),
    path("api/v1/jobs/<int:pk>/outputs/<str:name>/tilejson.json", maps.OutputTileJSONView.as_view(),
         name="job-output-tilejson"),
    path("api/v1/jobs/<int:pk>/outputs/<str:name>/value/", maps.OutputValueView.as_view(), name="job-output-value"),
    path("api/v1/collections/<slug:pk>/tiles/<int:z>/<int:x>/<int:y>.<image:image_format>",
         maps.CollectionTileView.as_view(), name="collection-map-tile"),
    path("api/v1/collections/<slug:pk>/tilejson.json", maps.CollectionTileJSONView.as_view(),
         name="collection-tilejson"),
    path("api/v1/datafiles/<str:name>/tiles/<int:z>/<int:x>/<int:y>.<image:image_format>",
         maps.DataFileTileView.as_view(), name="datafile-map-tile"),
    path("api/v1/datafiles/<str:name>/tilejson.json", maps.DataFileTileJSONView.as_view(), name="datafile-tilejson"),
    path("api/v1/stac/", stac.CatalogView.as_view(), name="stac-catalog"),
    path("api/v1/stac/search", stac.SearchView.as_view(), name="stac-search"),
    path("api/v1/stac/collections", stac.CollectionsView.as_view(), name="stac-collections"),
    path("api/v1/stac/collections/<str:type_name>", stac.CollectionView.as_view(), name="stac-collection"),
    path("api/v1/stac/collections/<str:type_name>/items", stac.ItemsView.as_view(), name="stac-items"),
    path("api/v1/stac/collections/<str:type_name>/items/<int:job_id>", stac.ItemView.as_view(), name="stac-item"),
    path("api/v1/", include(router.urls)),
    path("ogcapi/", include("jobs.ogcapi.urls")),
    # The old tile pipeline's endpoints.
    path("start_job", legacy.start_job, name="legacy-start-job"),
    path("job_status", legacy.job_status, name="legacy-job-status"),
    path("cancel_job", legacy.cancel_job, name="legacy-cancel-job"),
]

handler400 = "jobsite.api.errors.bad_request"
handler404 = "jobsite.api.errors.page_not_found"
handler500 = "jobsite.api.errors.server_error"
