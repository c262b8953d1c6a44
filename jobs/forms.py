"""Dashboard forms. The new-job form is built from the job type's parameter and input schema."""

import json

from django import forms
from django.conf import settings

from datafiles.models import DataFile

from .jobtypes import JOB_TYPES
from .models import Collection, Town


class BoundedJSONField(forms.JSONField):
    """A JSON field that refuses nesting too deep for the parser (a RecursionError otherwise)."""

    def to_python(self, value):
        try:
            return super().to_python(value)
        except RecursionError:
            raise forms.ValidationError("is nested too deeply") from None


def _param_field(param):
    field = _typed_field(param)
    if param.unused_with:  # static/js/job_form.js disables the field while these values are chosen
        field.widget.attrs["data-unused-with"] = json.dumps(
            {f"param_{other}": list(values) for other, values in param.unused_with})
    return field


def _typed_field(param):
    help_text, label = param.help, param.name.replace("_", " ").capitalize()
    if param.type == "boolean":
        return forms.BooleanField(required=False, initial=param.default, help_text=help_text, label=label)
    if param.choices:
        return forms.ChoiceField(choices=[(c, c) for c in param.choices], initial=param.default, help_text=help_text,
                                 label=label)
    if param.type == "string":
        return forms.CharField(required=param.required, initial=param.default, help_text=help_text, label=label)
    if param.type == "object":
        return BoundedJSONField(required=param.required, initial=param.default, help_text=help_text, label=label)
    bounds = []
    if param.minimum is not None:
        bounds.append(f"{'>' if param.exclusive_minimum else '≥'} {param.minimum:g}")
    if param.maximum is not None:
        bounds.append(f"≤ {param.maximum:g}")
    if bounds:
        help_text = f"{help_text} ({', '.join(bounds)})"
    field_class = forms.IntegerField if param.type == "integer" else forms.FloatField
    field = field_class(required=param.required, initial=param.default, help_text=help_text, label=label,
                        min_value=None if param.exclusive_minimum else param.minimum, max_value=param.maximum)
    field.widget.attrs["step"] = "any"
    return field


class JobForm(forms.Form):
    """A new job of one type: the area (a town or tile ids), the type's parameters and data files."""

    def __init__(self, *args, owner, kind, **kwargs):
        super().__init__(*args, **kwargs)
        self.kind = kind
        self.fields["type"] = forms.ChoiceField(choices=[(name, name) for name in JOB_TYPES], initial=kind.name)
        self.fields["collection"] = forms.ModelChoiceField(
            Collection.objects.order_by("id"), initial=settings.DEFAULT_COLLECTION, empty_label=None, required=False,
            help_text="the collection of tiles to run over")
        self.fields["town"] = forms.ModelChoiceField(Town.objects.order_by("name"), required=False,
                                                     empty_label="(the tile ids below)", help_text="a town's tiles")
        self.fields["tile_ids"] = forms.CharField(required=False, help_text="or tile ids, comma-separated: 4315, 4283")
        for param in kind.params:
            self.fields[f"param_{param.name}"] = _param_field(param)
        self._disable_unused_params()
        for job_input in kind.inputs:
            files = DataFile.objects.filter(owner=owner, kind=job_input.kind).order_by("name")
            self.fields[f"input_{job_input.name}"] = forms.ChoiceField(
                choices=[("", f"(choose one of your {job_input.kind} files)")] + [(f.name, f.name) for f in files],
                help_text=job_input.help, label=job_input.name.replace("_", " "))
        self.fields["labels"] = forms.CharField(required=False, help_text="comma-separated")

    def _disable_unused_params(self):
        """A parameter that the posted values of the others leave unused is disabled: whatever was
        posted for it (a browser without JavaScript sends it) is neither checked nor submitted."""
        if not self.is_bound:
            return
        posted = {param.name: self.data.get(f"param_{param.name}") for param in self.kind.params}
        for param in self.kind.params:
            if param.is_unused(posted):
                self.fields[f"param_{param.name}"].disabled = True

    def clean_tile_ids(self):
        raw = self.cleaned_data["tile_ids"].strip()
        if not raw:
            return None
        try:
            return [int(part) for part in raw.replace(" ", "").split(",") if part]
        except ValueError:
            raise forms.ValidationError("tile ids are whole numbers separated by commas") from None

    def submit_kwargs(self):
        data = self.cleaned_data
        return {
            "job_type": self.kind.name, "tile_ids": data["tile_ids"],
            "collection": data["collection"].pk if data.get("collection") and not self.kind.decides_collection else None,
            "town_id": data["town"].pk if data["town"] else None,
            "params": {p.name: data[f"param_{p.name}"] for p in self.kind.params
                       if data.get(f"param_{p.name}") is not None and not self.fields[f"param_{p.name}"].disabled},
            "inputs": {i.name: data[f"input_{i.name}"] for i in self.kind.inputs} or None,
            "labels": [label.strip() for label in data["labels"].split(",") if label.strip()],
        }

    def add_service_errors(self, errors):
        """Put the service's refusal next to the fields it names."""
        for key, problem in errors.items():
            if isinstance(problem, dict):
                prefix = {"params": "param_", "inputs": "input_"}.get(key, "")
                for name, message in problem.items():
                    field = f"{prefix}{name.split('.')[0]}"  # params.inputs.nir is about param_inputs
                    self.add_error(field if field in self.fields else None, f"{name}: {message}")
            else:
                field = {"town_id": "town", "type": "type"}.get(key, key)
                self.add_error(field if field in self.fields else None, str(problem))


class ResumeForm(forms.Form):
    """Parameter changes for a resume: only the fields filled in change."""

    def __init__(self, *args, kind, current, **kwargs):
        super().__init__(*args, **kwargs)
        for param in kind.params:
            field = _param_field(param)
            field.required = False
            field.initial = current.get(param.name, param.default)
            self.fields[f"param_{param.name}"] = field
        self.kind = kind

    def changes(self, current):
        return {p.name: self.cleaned_data[f"param_{p.name}"] for p in self.kind.params
                if self.cleaned_data.get(f"param_{p.name}") not in (None, "") and
                self.cleaned_data[f"param_{p.name}"] != current.get(p.name)}
