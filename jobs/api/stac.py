"""The STAC endpoints: the catalogue of succeeded jobs (jobs.services.stac), per caller."""

from django.http import Http404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.generics import get_object_or_404
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.views import APIView

from jobsite.exceptions import quoted

from ..services import stac

SEARCH_PARAMETERS = [
    OpenApiParameter("bbox", str, description="west,south,east,north in WGS84 degrees: items that meet it"),
    OpenApiParameter("datetime", str, description="an RFC 3339 date and time, or an interval START/END "
                                                  "(.. for an open end): items that ended then"),
    OpenApiParameter("limit", int, description=f"items per page (1 to {stac.MAX_LIMIT}; {stac.DEFAULT_LIMIT})"),
    OpenApiParameter("offset", int, description="items to skip: follow the next link rather than set it"),
    OpenApiParameter("ids", str, description="job ids, comma-separated"),
]


class GeoJSONRenderer(JSONRenderer):
    media_type = "application/geo+json"


class STACDocumentSerializer(serializers.Serializer):
    type = serializers.CharField()
    links = serializers.ListField(child=serializers.DictField())


class STACView(APIView):
    renderer_classes = [JSONRenderer, GeoJSONRenderer]

    def links(self):
        request = self.request
        return stac.Links(url=lambda name, kwargs: reverse(name, kwargs=kwargs, request=request))


class CatalogView(STACView):
    """The root of the STAC catalogue of the caller's succeeded jobs (staff: everybody's)."""

    @extend_schema(responses=STACDocumentSerializer, operation_id="stac_catalog")
    def get(self, request):
        return Response(stac.catalog(self.links()))


class CollectionsView(STACView):
    """The STAC Collections: one per job type."""

    @extend_schema(responses=STACDocumentSerializer, operation_id="stac_collections")
    def get(self, request):
        links = self.links()
        documents = [stac.collection(name, request.user, links) for name in sorted(stac.type_collections())]
        return Response({"collections": documents, "links": [
            {"rel": "self", "href": links.url("stac-collections", {}), "type": "application/json"},
            {"rel": "root", "href": links.url("stac-catalog", {}), "type": "application/json"}]})


class CollectionView(STACView):
    """The STAC Collection of one job type, its extent that of the caller's jobs."""

    @extend_schema(responses=STACDocumentSerializer, operation_id="stac_collection")
    def get(self, request, type_name):
        document = stac.collection(type_name, request.user, self.links())
        if document is None:
            raise Http404(f"no collection {quoted(type_name)}: the collections are the job types")
        return Response(document)


class SearchView(STACView):
    """Items (succeeded jobs) by area and time: STAC API item search, with GET."""

    collection_name = None

    @extend_schema(parameters=[*SEARCH_PARAMETERS, OpenApiParameter("collections", str, description="job types, "
                                                                                                    "comma-separated")],
                   responses=STACDocumentSerializer, operation_id="stac_search")
    def get(self, request, **kwargs):
        return self.answer(request, None)

    def answer(self, request, collection_name):
        query = stac.parse_search(request.query_params, collection_name)

        def page_url(offset):
            params = request.query_params.copy()
            params["offset"] = str(offset)
            return request.build_absolute_uri(request.path) + "?" + params.urlencode()

        return Response(stac.search(request.user, query, self.links(), page_url), content_type="application/geo+json")


class ItemsView(SearchView):
    """The Items of one job type's Collection, newest first, a page at a time."""

    @extend_schema(parameters=SEARCH_PARAMETERS, responses=STACDocumentSerializer, operation_id="stac_items")
    def get(self, request, type_name):
        if type_name not in stac.type_collections():
            raise Http404(f"no collection {quoted(type_name)}: the collections are the job types")
        return self.answer(request, type_name)


class ItemView(STACView):
    """One succeeded job as a STAC Item."""

    @extend_schema(responses=STACDocumentSerializer, operation_id="stac_item")
    def get(self, request, type_name, job_id):
        job = get_object_or_404(stac.jobs_in_catalogue(request.user).filter(type=type_name), pk=job_id)
        return Response(stac.item(job, self.links()), content_type="application/geo+json")
