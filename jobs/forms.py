"""Dashboard forms. The new-job form is built from the job type's JSON Schema of its parameters
(jobs.paramschema) and its inputs."""

import json

from django import forms
from django.conf import settings

from datafiles.models import DataFile

from . import paramschema
from .chains import CHAIN
from .jobtypes import JOB_TYPES
from .models import Collection, Priority, Start, Town


class BoundedJSONField(forms.JSONField):
    """A JSON field that refuses nesting too deep for the parser (a RecursionError otherwise)."""

    def to_python(self, value):
        try:
            return super().to_python(value)
        except RecursionError:
            raise forms.ValidationError("is nested too deeply") from None


def param_fields(schema, prefix="param_"):
    """{field name: form field} for the parameters a job type's JSON Schema describes."""
    return {f"{prefix}{name}": _param_field(name, prop, name in schema["required"], prefix)
            for name, prop in schema["properties"].items()}


def _param_field(name, prop, required, prefix):
    field = _typed_field(prop, required, prop.get("description", ""), name.replace("_", " ").capitalize())
    if "x-unused-with" in prop:  # static/js/job_form.js disables the field while these values are chosen
        field.widget.attrs["data-unused-with"] = json.dumps(
            {f"{prefix}{other}": values for other, values in prop["x-unused-with"].items()})
    return field


def type_field(initial):
    """The job type to submit: one of JOB_TYPES, or a chain of them (jobs.chainform)."""
    return forms.ChoiceField(choices=[(name, name) for name in JOB_TYPES] + [(CHAIN, f"{CHAIN}: several steps")],
                             initial=initial)


def area_fields():
    """Where a job runs: its collection, and a town or tile ids."""
    return {
        "collection": forms.ModelChoiceField(
            Collection.objects.order_by("id"), initial=settings.DEFAULT_COLLECTION, empty_label=None,
            required=False, help_text="the collection of tiles to run over"),
        "town": forms.ModelChoiceField(Town.objects.order_by("name"), required=False,
                                       empty_label="(the tile ids below)", help_text="a town's tiles"),
        "tile_ids": forms.CharField(required=False, help_text="or tile ids, comma-separated: 4315, 4283"),
        "wait_for_tiles": forms.BooleanField(required=False, label="Wait for tiles",
                                             help_text="the tile ids may name tiles not loaded yet: the job waits "
                                                       "for them"),
        "start": forms.ChoiceField(choices=Start.choices, initial=Start.ALL_ARRIVED, required=False,
                                   help_text="with tiles to wait for: start once all have arrived, or run each tile "
                                             "as soon as it and its neighbours are there"),
    }


def wait_kwargs(data):
    """The submit's wait_for_tiles and start, from a form's cleaned data."""
    return {"wait_for_tiles": bool(data.get("wait_for_tiles")), "start": data.get("start") or None}


def input_field(owner, job_input):
    """The owner's data files that can be the input `job_input` of a job type."""
    files = DataFile.objects.filter(owner=owner, kind=job_input.kind).order_by("name")
    return forms.ChoiceField(
        choices=[("", f"(choose one of your {job_input.kind} files)")] + [(f.name, f.name) for f in files],
        help_text=job_input.help, label=job_input.name.replace("_", " "))


def last_fields(owner):
    """The labels and the priority of a job: the higher only for staff."""
    priorities = [name for name, value in Priority.by_name().items() if value != Priority.HIGH or owner.is_staff]
    return {"labels": forms.CharField(required=False, help_text="comma-separated"),
            "priority": forms.ChoiceField(choices=[(name, name) for name in priorities], initial="normal",
                                          required=False, help_text="which jobs the workers serve first")}


def tile_ids(raw):
    """Tile ids typed as "4315, 4283"; None for none."""
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        return [int(part) for part in raw.replace(" ", "").split(",") if part]
    except ValueError:
        raise forms.ValidationError("tile ids are whole numbers separated by commas") from None


def labels(raw):
    return [label.strip() for label in raw.split(",") if label.strip()]


def _typed_field(prop, required, help_text, label):
    initial = prop.get("default")
    if prop["type"] == "boolean":
        return forms.BooleanField(required=False, initial=initial, help_text=help_text, label=label)
    if "enum" in prop:
        return forms.ChoiceField(choices=[(c, c) for c in prop["enum"]], initial=initial, help_text=help_text,
                                 label=label)
    if prop["type"] == "string":
        return forms.CharField(required=required, initial=initial, help_text=help_text, label=label,
                               max_length=prop.get("maxLength"))
    if prop["type"] == "object":
        return BoundedJSONField(required=required, initial=initial, help_text=help_text, label=label)
    bounds = []
    if "exclusiveMinimum" in prop:
        bounds.append(f"> {prop['exclusiveMinimum']:g}")
    if "minimum" in prop:
        bounds.append(f"≥ {prop['minimum']:g}")
    if "maximum" in prop:
        bounds.append(f"≤ {prop['maximum']:g}")
    if bounds:
        help_text = f"{help_text} ({', '.join(bounds)})"
    field_class = forms.IntegerField if prop["type"] == "integer" else forms.FloatField
    field = field_class(required=required, initial=initial, help_text=help_text, label=label,
                        min_value=prop.get("minimum"), max_value=prop.get("maximum"))
    field.widget.attrs["step"] = "any"
    return field


def disable_unused(form, schema, prefix="param_"):
    """A parameter that the posted values of the others leave unused is disabled: whatever was
    posted for it (a browser without JavaScript sends it) is neither checked nor submitted."""
    if not form.is_bound:
        return
    for name in paramschema.unused(schema, {name: form.data.get(f"{prefix}{name}") for name in schema["properties"]}):
        form.fields[f"{prefix}{name}"].disabled = True


class JobForm(forms.Form):
    """A new job of one type: the area (a town or tile ids), the type's parameters and data files."""

    def __init__(self, *args, owner, kind, **kwargs):
        super().__init__(*args, **kwargs)
        self.kind = kind
        self.fields["type"] = type_field(kind.name)
        if kind.uses_tiles:  # where it runs
            self.fields.update(area_fields())
        self.fields.update(param_fields(kind.params_schema()))
        disable_unused(self, kind.params_schema())
        for job_input in kind.inputs:
            self.fields[f"input_{job_input.name}"] = input_field(owner, job_input)
        self.fields.update(last_fields(owner))

    def clean_tile_ids(self):
        return tile_ids(self.cleaned_data.get("tile_ids"))

    def submit_kwargs(self):
        data = self.cleaned_data
        return {
            "job_type": self.kind.name, "tile_ids": data.get("tile_ids"),
            "collection": data["collection"].pk if data.get("collection") and not self.kind.decides_collection else None,
            "town_id": data["town"].pk if data.get("town") else None,
            "params": {name: data[f"param_{name}"] for name in self.kind.params_schema()["properties"]
                       if data.get(f"param_{name}") is not None and not self.fields[f"param_{name}"].disabled},
            "inputs": {i.name: data[f"input_{i.name}"] for i in self.kind.inputs} or None,
            "labels": labels(data["labels"]),
            "priority": data.get("priority") or None, **wait_kwargs(data),
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
        for name, field in param_fields(kind.params_schema()).items():
            field.required = False
            field.initial = current.get(name.removeprefix("param_"), field.initial)
            self.fields[name] = field
        self.kind = kind

    def changes(self, current):
        return {name: self.cleaned_data[f"param_{name}"] for name in self.kind.params_schema()["properties"]
                if self.cleaned_data.get(f"param_{name}") not in (None, "") and
                self.cleaned_data[f"param_{name}"] != current.get(name)}
