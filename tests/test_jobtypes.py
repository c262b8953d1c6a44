import time

import pytest
from jsonschema import Draft202012Validator

from jobs.services.control import job_cancel, job_resume
from jobs.services.submit import job_submit
from jobsite.exceptions import Rejected
from jobs.jobtypes import JOB_TYPES, get_job_type
from jobs.models import Job


def rejected(name, params):
    with pytest.raises(Rejected) as caught:
        JOB_TYPES[name].clean_params(params)
    return caught.value.errors["params"]


def test_it_fills_in_defaults():
    assert JOB_TYPES["hillshade"].clean_params({}) == {
        "z_factor": 1.0, "scale": 1.0, "azimuth": 315.0, "altitude": 45.0, "mode": "standard", "algorithm": "Horn",
        "compute_edges": False, "band": 1,
    }
    assert JOB_TYPES["slope"].clean_params(None)["units"] == "degree"


def test_it_keeps_valid_values_converted_to_their_type():
    clean = JOB_TYPES["hillshade"].clean_params({"z_factor": 2, "azimuth": 0, "mode": "combined"})
    assert clean["z_factor"] == 2.0 and isinstance(clean["z_factor"], float)
    assert clean["azimuth"] == 0.0


@pytest.mark.parametrize("params,field,problem", [
    ({"azimuth": 361}, "azimuth", "must be at most 360"),
    ({"altitude": -1}, "altitude", "must be at least 0"),
    ({"z_factor": 0}, "z_factor", "must be greater than 0"),
    ({"z_factor": "2"}, "z_factor", "must be a number"),
    ({"z_factor": True}, "z_factor", "must be a number"),
    ({"z_factor": float("nan")}, "z_factor", "must be a finite number"),
    ({"mode": "sideways"}, "mode", "must be one of standard, combined, multidirectional, igor"),
    ({"compute_edges": "yes"}, "compute_edges", "must be true or false"),
    ({"colour": "red"}, "colour", "unknown parameter"),
    ({"mode": "igor", "azimuth": 361}, "azimuth", "must be at most 360"),
])
def test_it_rejects_a_bad_hillshade_parameter_by_name(params, field, problem):
    assert problem in rejected("hillshade", params)[field]


@pytest.mark.parametrize("mode,unused", [("multidirectional", "azimuth"), ("igor", "altitude")])
def test_a_parameter_the_mode_does_not_use_is_ignored_and_not_kept(mode, unused):
    kind = JOB_TYPES["hillshade"]
    assert unused not in kind.clean_params({"mode": mode})
    assert unused not in kind.clean_params({"mode": mode, unused: 30})
    assert unused not in kind.clean_params({"mode": mode, unused: "not even a number"})
    assert unused not in kind.gdal_options(kind.clean_params({"mode": mode}))
    assert set(kind.clean_params({"mode": "standard"})) >= {"azimuth", "altitude"}


def test_a_job_stored_with_an_unused_parameter_still_runs_without_it():
    """Jobs submitted before unused parameters were dropped hold the default; GDAL refuses it."""
    kind = JOB_TYPES["hillshade"]
    stored = {**kind.clean_params({}), "mode": "igor"}
    assert "altitude" not in kind.gdal_options(stored) and kind.gdal_options(stored)["igor"] is True


@pytest.mark.parametrize("mode,unused", [("igor", "altitude"), ("multidirectional", "azimuth")])
def test_the_api_stores_no_parameter_the_mode_does_not_use(index, owner, client_for, mode, unused):
    client = client_for(owner)
    response = client.post("/api/v1/jobs/", {"type": "hillshade", "tile_ids": index.ids[:1], "params": {"mode": mode}},
                           format="json")
    assert response.status_code == 201, response.json()
    assert unused not in response.json()["params"] and unused not in Job.objects.get().params
    given = client.post("/api/v1/jobs/", {"type": "hillshade", "tile_ids": index.ids[:1],
                                          "params": {"mode": mode, unused: 30}}, format="json")
    assert given.status_code == 201 and unused not in given.json()["params"]


def test_a_resume_that_changes_the_mode_drops_what_it_leaves_unused(index, owner):
    job = job_submit(owner=owner, job_type="hillshade", tile_ids=index.ids[:1])
    job_cancel(job=job)
    job, _ = job_resume(job=job, params={"mode": "igor"})
    assert job.params["mode"] == "igor" and "altitude" not in job.params
    job_cancel(job=job)
    job, _ = job_resume(job=job, params={"mode": "standard"})
    assert job.params["altitude"] == 45.0


def test_it_names_every_bad_parameter_at_once():
    assert set(rejected("slope", {"units": "radian", "scale": -1})) == {"units", "scale"}


def test_params_must_be_an_object():
    with pytest.raises(Rejected) as caught:
        JOB_TYPES["aspect"].clean_params([1, 2])
    assert "must be an object" in caught.value.errors["params"]


def test_an_unknown_type_lists_the_known_ones():
    with pytest.raises(Rejected) as caught:
        get_job_type("erosion")
    assert caught.value.errors["type"] == ("unknown job type 'erosion'; the types are aspect, calc, clip, color-relief, echo, "
                                           "hillshade, reproject, slope, zonal-statistics")


def test_each_type_describes_its_parameters_as_json_schema():
    schema = JOB_TYPES["hillshade"].schema()["params"]
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema" and schema["additionalProperties"] is False
    azimuth = schema["properties"]["azimuth"]
    assert azimuth == {"type": "number", "default": 315.0, "minimum": 0, "maximum": 360,
                       "description": azimuth["description"], "x-unused-with": {"mode": ["multidirectional"]}}
    assert schema["properties"]["mode"]["enum"] == ["standard", "combined", "multidirectional", "igor"]
    assert JOB_TYPES["reproject"].params_schema()["required"] == ["dst_crs", "resolution"]
    for kind in JOB_TYPES.values():  # each a valid draft 2020-12 schema whose defaults it accepts
        schema = kind.params_schema()
        Draft202012Validator.check_schema(schema)
        for name, prop in schema["properties"].items():
            assert "default" not in prop or Draft202012Validator(prop).is_valid(prop["default"]), (kind.name, name)


def test_any_json_schema_validator_refuses_what_the_service_refuses():
    """A client that checks its values with the published schema (jsonschema here, any other
    library elsewhere) refuses the values that the service refuses, outside the unused ones."""
    schema = JOB_TYPES["hillshade"].params_schema()
    for bad in ({"z_factor": 0}, {"azimuth": 361}, {"mode": "flat"}, {"compute_edges": "yes"}, {"band": 1.5},
                {"shadow": 1}, {"z_factor": "2"}):
        assert list(Draft202012Validator(schema).iter_errors(bad)), bad
        with pytest.raises(Rejected):
            JOB_TYPES["hillshade"].clean_params(bad)
    assert JOB_TYPES["hillshade"].clean_params({"band": 2.0})["band"] == 2




def test_a_long_value_is_refused_for_its_length_before_any_pattern_is_tried():
    from jobs.jobschema import Param

    label = Param("label", "string", "a", "", pattern="(a|aa)+")
    started = time.monotonic()
    with pytest.raises(ValueError, match="must be at most 256 characters long"):
        label.clean("a" * 10_000_000)
    with pytest.raises(ValueError, match="must not start with - or contain control characters"):
        label.clean("a" * 100 + "\n")
    assert time.monotonic() - started < 1


def test_an_unknown_parameter_is_refused_even_as_null_and_a_known_null_is_its_default():
    errors = rejected("slope", {"shadow": None, "units": None})
    assert errors == {"shadow": "unknown parameter; slope takes scale, units, algorithm, compute_edges, band"}
    assert JOB_TYPES["slope"].clean_params({"units": None})["units"] == "degree"
