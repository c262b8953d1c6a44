import pytest

from jobs.exceptions import Rejected
from jobs.jobtypes import JOB_TYPES, get_job_type


def rejected(name, params):
    with pytest.raises(Rejected) as caught:
        JOB_TYPES[name].clean_params(params)
    return caught.value.errors["params"]


def test_it_fills_in_defaults():
    assert JOB_TYPES["hillshade"].clean_params({}) == {
        "z_factor": 1.0, "scale": 1.0, "azimuth": 315.0, "altitude": 45.0, "mode": "standard", "algorithm": "Horn",
        "compute_edges": False,
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
    ({"mode": "multidirectional", "azimuth": 90}, "azimuth", "is not used with mode multidirectional"),
    ({"mode": "igor", "altitude": 30}, "altitude", "is not used with mode igor"),
])
def test_it_rejects_a_bad_hillshade_parameter_by_name(params, field, problem):
    assert problem in rejected("hillshade", params)[field]


def test_it_names_every_bad_parameter_at_once():
    assert set(rejected("slope", {"units": "radian", "scale": -1})) == {"units", "scale"}


def test_params_must_be_an_object():
    with pytest.raises(Rejected) as caught:
        JOB_TYPES["aspect"].clean_params([1, 2])
    assert "must be an object" in caught.value.errors["params"]


def test_an_unknown_type_lists_the_known_ones():
    with pytest.raises(Rejected) as caught:
        get_job_type("erosion")
    assert caught.value.errors["type"] == ("unknown job type 'erosion'; the types are aspect, clip, color-relief, "
                                           "hillshade, slope, zonal-statistics")


def test_each_type_describes_its_schema():
    schema = JOB_TYPES["hillshade"].schema()
    azimuth = next(p for p in schema["params"] if p["name"] == "azimuth")
    assert azimuth == {"name": "azimuth", "type": "number", "required": False, "default": 315.0, "minimum": 0,
                       "maximum": 360, "help": azimuth["help"]}
    mode = next(p for p in schema["params"] if p["name"] == "mode")
    assert mode["choices"] == ["standard", "combined", "multidirectional", "igor"]
