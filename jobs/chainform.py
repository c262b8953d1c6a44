"""The dashboard's form for a new chain (jobs.chains), built step by step.

The form posts itself back to change its steps: "Add a step" appends one, "Remove the last step"
drops it, and a step's "Show its parameters" (which the page's script presses when the step's type
changes) shows the fields of the type chosen. What was entered stays in the fields each time. Each
step has its type, its parameters (with the prefix `step{n}_param_`) and its data files
(`step{n}_input_`); a step after the first reads the step before, so its `band` is not asked.
"""

import json
import re

from django import forms
from django.forms.fields import InvalidJSONInput

from jobsite.exceptions import Rejected

from .forms import (area_fields, disable_unused, input_field, labels, last_fields, param_fields, tile_ids, type_field,
                    wait_kwargs)
from .chains import CHAIN, MAX_STEPS, chain_of_steps
from .jobtypes import JOB_TYPES

FIRST_STEP = "hillshade"


def chainable(first):
    """The type names a step may have: the first step, or a later one."""
    allowed = ("any", "first") if first else ("any", "last")
    return [name for name, kind in JOB_TYPES.items() if kind.chain_position in allowed]


def step_types(data):
    """The steps' types as the posted form (a QueryDict) gives them, after its button's change: one
    step more or less. A type a step may not have becomes the first one it may."""
    count = min(max(_int(data.get("steps"), 1), 1), MAX_STEPS)
    types = [data.get(f"step{number}_type") for number in range(count)]
    types = [name if name in chainable(number == 0) else (FIRST_STEP if number == 0 else chainable(False)[0])
             for number, name in enumerate(types)]
    if data.get("add_step") and len(types) < MAX_STEPS:
        last = JOB_TYPES[types[-1]]
        types.append(types[-1] if last.chain_position == "any" else chainable(False)[0])
    elif data.get("remove_step") and len(types) > 1:
        types.pop()
    return types


def changes_steps(data):
    """Whether the post only changes the form (its steps), rather than submitting or estimating it."""
    return any(data.get(button) for button in ("add_step", "remove_step", "switch_type"))


def _json(text):
    """A JSON field's posted text as the value it shows again (as it was typed, if it is not JSON)."""
    try:
        return json.loads(text)
    except ValueError:
        return InvalidJSONInput(text)


def _int(value, default):
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


class ChainForm(forms.Form):
    """A new chain job: the area, its steps, labels and priority."""

    def __init__(self, *args, owner, types, **kwargs):
        super().__init__(*args, **kwargs)
        self.types = types
        self.fields["type"] = type_field(CHAIN)
        self.fields["steps"] = forms.IntegerField(widget=forms.HiddenInput, initial=len(types), min_value=1,
                                                  max_value=MAX_STEPS)
        self.fields.update(area_fields())
        for number, name in enumerate(types):
            kind, prefix = JOB_TYPES[name], f"step{number}_"
            self.fields[f"{prefix}type"] = forms.ChoiceField(
                choices=[(n, n) for n in chainable(number == 0)], initial=name, label="Type",
                help_text=kind.description)
            fields = param_fields(kind.params_schema(), f"{prefix}param_")
            if number:
                fields.pop(f"{prefix}param_band", None)  # it reads band 1, the result of the step before
            self.fields.update(fields)
            disable_unused(self, kind.params_schema(), f"{prefix}param_")
            for job_input in kind.inputs:
                self.fields[f"{prefix}input_{job_input.name}"] = input_field(owner, job_input)
        self.fields.update(last_fields(owner))

    def initial_from(self, data):
        """Show what was posted (a change of the steps), without checking it yet."""
        for name, field in self.fields.items():
            if name == "steps" or re.fullmatch(r"step\d+_type", name):
                continue
            if name in data:
                self.initial[name] = _json(data[name]) if isinstance(field, forms.JSONField) else data[name]
            elif isinstance(field, forms.BooleanField) and f"{name.split('_', 1)[0]}_type" in data:
                self.initial[name] = False  # a box left unchecked in a step that was posted
        return self

    def steps(self):
        """Per step: its number (from 1), its type and its bound fields, for the template."""
        return [{"number": number + 1, "kind": JOB_TYPES[name],
                 "fields": [self[n] for n in self.fields if n.startswith(f"step{number}_") and n != f"step{number}_type"],
                 "type": self[f"step{number}_type"]} for number, name in enumerate(self.types)]

    def clean_tile_ids(self):
        return tile_ids(self.cleaned_data.get("tile_ids"))

    def _steps(self, data):
        """The steps as a request gives them, from the clean `data`, with what it holds."""
        steps = []
        for number, name in enumerate(self.types):
            kind, prefix = JOB_TYPES[name], f"step{number}_"
            params = {param: data[f"{prefix}param_{param}"] for param in kind.params_schema()["properties"]
                      if f"{prefix}param_{param}" in self.fields and data.get(f"{prefix}param_{param}") is not None
                      and not self.fields[f"{prefix}param_{param}"].disabled}
            step = {"type": name, "params": params}
            if kind.inputs:
                step["inputs"] = {i.name: data.get(f"{prefix}input_{i.name}") for i in kind.inputs}
            steps.append(step)
        return steps

    def submit_kwargs(self):
        data = self.cleaned_data
        decided = JOB_TYPES[self.types[0]].decides_collection
        return {"steps": self._steps(data), "tile_ids": data.get("tile_ids"),
                "collection": data["collection"].pk if data.get("collection") and not decided else None,
                "town_id": data["town"].pk if data.get("town") else None,
                "labels": labels(data["labels"]), "priority": data.get("priority") or None, **wait_kwargs(data)}

    def add_step_problems(self):
        """A form refused for some fields is not submitted, so the chain checks the steps' parameters
        the form could read, to name their problems along with the form's own."""
        steps = self._steps(getattr(self, "cleaned_data", {}))
        try:
            chain_of_steps([{"type": step["type"], "params": step["params"]} for step in steps], with_inputs=False)
        except Rejected as exc:
            self.add_service_errors({key: problem for key, problem in exc.errors.items()
                                     if self._field_of(key) not in self.errors})

    def add_service_errors(self, errors):
        """Put the service's refusal next to the fields it names: `steps[1].params.z_factor` beside
        step 2's z factor."""
        for key, problem in errors.items():
            field = self._field_of(key)
            self.add_error(field, str(problem) if field else f"{key}: {problem}")

    def _field_of(self, key):
        """The field of a refusal's key (`steps[1].params.z_factor`: step1_param_z_factor), or None."""
        field = {"town_id": "town", "steps": None}.get(key, key)
        if key.startswith("steps["):
            number, _, rest = key[len("steps["):].partition("]")
            part, _, name = rest.lstrip(".").partition(".")
            field = {"params": f"step{number}_param_{name.split('.')[0]}", "inputs": f"step{number}_input_{name}",
                     "type": f"step{number}_type", "": f"step{number}_type"}.get(part)
        return field if field in self.fields else None
