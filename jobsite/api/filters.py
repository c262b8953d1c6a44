"""Filters that refuse a value outside their choices with a 400 naming the valid ones, for every
API of the site (django-filter's own answer would be an empty list)."""

import django_filters as filters
from django import forms
from django_filters.fields import ChoiceField

from jobsite.exceptions import quoted


class NamedChoiceField(ChoiceField):
    """A choice whose refusal names the valid values: `Select a valid choice: 'x' is not one of queued, ...`."""

    def validate(self, value):
        if value not in self.empty_values and not self.valid_value(value):
            valid = ", ".join(str(key) for key, _ in self.choices if key not in self.empty_values)
            raise forms.ValidationError(f"Select a valid choice: {quoted(value)} is not one of {valid}",
                                        code="invalid_choice")
        super().validate(value)


class ChoiceFilter(filters.ChoiceFilter):
    """One of the choices; anything else is a 400 naming them (never an empty answer)."""

    field_class = NamedChoiceField


class ChoiceInFilter(filters.BaseInFilter, ChoiceFilter):
    """Any of several choices, comma-separated: `?status=queued,running`."""


class OrderingFilter(filters.OrderingFilter):
    """Ordering by one of the fields (`-` before it reverses); anything else is a 400 naming them."""

    field_class = NamedChoiceField
