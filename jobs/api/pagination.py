import re

from rest_framework.exceptions import ValidationError
from rest_framework.pagination import BasePagination, LimitOffsetPagination
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

# The largest whole number both databases take (a 64-bit integer): an offset or id beyond it would
# overflow on its way into the query.
BIGGEST = 2**63 - 1


def whole_number(request, name, default, minimum=0, maximum=BIGGEST):
    """The query parameter `name` as a whole number from `minimum` to `maximum` (`default` when it
    is absent or empty); 400 naming it otherwise."""
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not re.fullmatch(r"[0-9]{1,19}", raw) or not minimum <= int(raw) <= maximum:
        raise ValidationError({name: f"must be a whole number from {minimum} to {maximum}"})
    return int(raw)


class Pagination(LimitOffsetPagination):
    """limit/offset paging with the total count; a limit above the maximum is clamped, and a limit
    or offset that is not a whole number in range is a 400 (not the first page)."""

    default_limit = 50
    max_limit = 500

    def get_limit(self, request):
        return min(whole_number(request, self.limit_query_param, self.default_limit, minimum=1), self.max_limit)

    def get_offset(self, request):
        return whole_number(request, self.offset_query_param, 0)

    def get_schema_operation_parameters(self, view):
        parameters = super().get_schema_operation_parameters(view)
        for parameter, minimum in zip(parameters, (1, 0), strict=False):
            parameter["schema"].update(minimum=minimum, maximum=BIGGEST)
        return parameters


class AfterCursorPagination(BasePagination):
    """Forward paging by id for tailing a growing list: `?after=<id>` returns the rows after that id.

    The `next` link carries the last id returned; follow it (even once it returns nothing) to
    get only the rows added since.
    """

    limit = 200
    max_limit = 1000

    def paginate_queryset(self, queryset, request, view=None):
        self.request = request
        after = whole_number(request, "after", 0)
        limit = min(whole_number(request, "limit", self.limit, minimum=1), self.max_limit)
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
            {"name": "after", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 0, "maximum": BIGGEST},
             "description": "Return only rows with an id above this one."},
            {"name": "limit", "in": "query", "required": False,
             "schema": {"type": "integer", "minimum": 1, "maximum": BIGGEST},
             "description": f"At most this many rows (clamped to {self.max_limit})."},
        ]
