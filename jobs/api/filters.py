"""django-filter FilterSets: the query parameters of the list endpoints."""

import datetime
import math

import django_filters as filters
from django import forms
from django.conf import settings
from django.db.models import Exists, F, OuterRef, Q
from django_filters.fields import IsoDateTimeField
from rest_framework.exceptions import ValidationError

from jobsite.api.filters import ChoiceFilter, ChoiceInFilter, OrderingFilter
from ..chains import CHAIN
from ..jobtypes import JOB_TYPES
from ..models import MAX_ID, Collection, Job, JobStatus, JobTile, Tile, TileStatus


class IdFilter(filters.NumberFilter):
    """A whole-number id within what the database holds."""

    field_class = forms.IntegerField

    def __init__(self, *args, **kwargs):
        super().__init__(*args, min_value=0, max_value=MAX_ID, **kwargs)


class IdInFilter(filters.BaseInFilter, IdFilter):
    """Any of several ids, comma-separated: `?id=4315,4283`."""


class UTCDateTimeField(IsoDateTimeField):
    """An ISO 8601 date-time, handed to the database in UTC: PostgreSQL refuses offsets beyond
    ±15:59, and a time that cannot be expressed in UTC (year 1 with a positive offset) is invalid."""

    default_error_messages = {"invalid": "must be an ISO 8601 date-time, such as 2026-01-31T12:00:00Z"}

    def to_python(self, value):
        value = super().to_python(value)
        if value is None:
            return None
        try:
            return value.astimezone(datetime.timezone.utc)
        except OverflowError:
            raise forms.ValidationError("is out of range once in UTC", code="invalid") from None


class MomentFilter(filters.IsoDateTimeFilter):
    """An ISO 8601 date-time bound of a field: `created_after` is `created >=` it, `created_before`
    `created <=` it. One filter per query parameter, so that a bad one is refused by its own name."""

    field_class = UTCDateTimeField

    def __init__(self, field_name, bound):
        super().__init__(field_name=field_name, lookup_expr="gte" if bound == "after" else "lte",
                         help_text=f"{field_name} at or {bound} this moment (ISO 8601)")


def _names(value):
    return [name.strip() for name in value.split(",") if name.strip()]


def _labelled(name):
    return Exists(Job.labels.through.objects.filter(job_id=OuterRef("pk"), label__name=name))


class NullsLastOrderingFilter(OrderingFilter):
    """Ordering where rows without a value (unfinished jobs have no duration) come last both ways,
    on every database."""

    def get_ordering_value(self, param):
        descending = param.startswith("-")
        field = F(self.param_map[param.lstrip("-")])
        return field.desc(nulls_last=True) if descending else field.asc(nulls_last=True)


class JobFilter(filters.FilterSet):
    status = ChoiceInFilter(choices=JobStatus.choices, help_text="any of these statuses, comma-separated")
    type = ChoiceFilter(choices=[(name, name) for name in sorted([*JOB_TYPES, CHAIN])],
                        help_text="a job type name, or chain")
    label = filters.CharFilter(method="filter_label_any", help_text="has any of these labels, comma-separated")
    label_all = filters.CharFilter(method="filter_label_all", help_text="has all of these labels, comma-separated")
    owner = filters.CharFilter(field_name="owner__username", help_text="owner's username (staff see every owner)")
    town = IdFilter(field_name="town_id")
    tile = IdFilter(method="filter_tile", help_text="the job covers the tile of this number (in its collection)")
    created_after = MomentFilter("created", "after")
    created_before = MomentFilter("created", "before")
    started_after = MomentFilter("started", "after")
    started_before = MomentFilter("started", "before")
    finished_after = MomentFilter("finished", "after")
    finished_before = MomentFilter("finished", "before")
    search = filters.CharFilter(method="filter_search", help_text="text in a label or in the error message")
    ordering = NullsLastOrderingFilter(fields=["created", "finished", "duration", "status", "id"],
                                      help_text="created, finished, duration or status; a leading - reverses")

    class Meta:
        model = Job
        fields = []

    def filter_label_any(self, queryset, name, value):
        return queryset.filter(Exists(Job.labels.through.objects.filter(job_id=OuterRef("pk"), label__name__in=_names(value))))

    def filter_label_all(self, queryset, name, value):
        for label in _names(value):
            queryset = queryset.filter(_labelled(label))
        return queryset

    def filter_tile(self, queryset, name, value):
        return queryset.filter(Exists(JobTile.objects.filter(job_id=OuterRef("pk"), tile__number=value)))

    def filter_search(self, queryset, name, value):
        in_label = Exists(Job.labels.through.objects.filter(job_id=OuterRef("pk"), label__name__icontains=value))
        return queryset.filter(Q(error__icontains=value) | in_label)


class JobTileFilter(filters.FilterSet):
    status = ChoiceInFilter(choices=TileStatus.choices, help_text="any of these statuses, comma-separated")

    class Meta:
        model = JobTile
        fields = []


def parse_bbox(value):
    try:
        minx, miny, maxx, maxy = (float(part) for part in value.split(","))
    except ValueError:
        raise ValidationError({"bbox": "must be minx,miny,maxx,maxy: four numbers in the index CRS"}) from None
    if not all(math.isfinite(n) for n in (minx, miny, maxx, maxy)):  # nan, inf, or 1 and 400 zeros
        raise ValidationError({"bbox": "must be four finite numbers in the index CRS"})
    if minx > maxx or miny > maxy:
        raise ValidationError({"bbox": "minx must not exceed maxx, nor miny maxy"})
    return minx, miny, maxx, maxy


class TileFilter(filters.FilterSet):
    collection = filters.ModelChoiceFilter(queryset=Collection.objects.all(), help_text="the tiles of this collection")
    id = IdInFilter(field_name="number", help_text="any of these tile numbers, comma-separated")
    town = IdFilter(field_name="towns__id")
    bbox = filters.CharFilter(method="filter_bbox", help_text="overlaps minx,miny,maxx,maxy in the CRS of the "
                                                              "collection (the default one without ?collection=)")

    class Meta:
        model = Tile
        fields = []

    def filter_bbox(self, queryset, name, value):
        minx, miny, maxx, maxy = parse_bbox(value)
        if not self.data.get("collection"):  # coordinates mean something in one CRS only
            queryset = queryset.filter(collection_id=settings.DEFAULT_COLLECTION)
        return queryset.filter(minx__lt=maxx, maxx__gt=minx, miny__lt=maxy, maxy__gt=miny)
