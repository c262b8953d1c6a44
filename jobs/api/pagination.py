from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination, LimitOffsetPagination
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param


class Pagination(LimitOffsetPagination):
    """limit/offset paging with the total count; a limit above the maximum is clamped."""

    default_limit = 50
    max_limit = 500


class AfterCursorPagination(BasePagination):
    """Forward paging by id for tailing a growing list: `?after=<id>` returns the rows after that id.

    The `next` link carries the last id returned; follow it (even once it returns nothing) to
    get only the rows added since.
    """

    limit = 200
    max_limit = 1000

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        try:
            after = int(request.query_params.get("after", 0))
            limit = min(int(request.query_params.get("limit", self.limit)), self.max_limit)
        except ValueError:
            raise ValidationError({"after": "after and limit must be integers"}) from None
        if after < 0 or limit < 1:
            raise ValidationError({"after": "after must be 0 or more and limit 1 or more"})
        self.rows = list(queryset.filter(id__gt=after).order_by("id")[:limit])
        self.last = self.rows[-1].id if self.rows else after
        return self.rows

    def get_paginated_response(self, data):
        url = replace_query_param(self.request.build_absolute_uri(), "after", self.last)
        return Response({"next": url, "last_id": self.last, "results": data})

    def get_paginated_response_schema(self, schema):
        return {
            "type": "object",
            "required": ["next", "last_id", "results"],
            "properties": {
                "next": {"type": "string", "format": "uri", "description": "the rows after these, once there are any"},
                "last_id": {"type": "integer"},
                "results": schema,
            },
        }

    def get_schema_operation_parameters(self, view):
        return [
            {"name": "after", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 0},
             "description": "Return only rows with an id above this one."},
            {"name": "limit", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 1},
             "description": f"At most this many rows (clamped to {self.max_limit})."},
        ]
