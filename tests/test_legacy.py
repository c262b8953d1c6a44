"""The old pipeline's start_job / job_status / cancel_job endpoints."""

from jobs.models import Job


def test_start_job_with_tile_ids_defaults_to_hillshade(index, owner, client_for):
    response = client_for(owner).get(f"/start_job?tile_ids={index.ids[0]},{index.ids[1]}")
    body = response.json()
    assert response.status_code == 201 and body["status"] == 201
    assert body["data"]["type"] == "hillshade" and body["data"]["tiles_total"] == 2
    assert body["message"] == f"job {body['data']['id']} started over 2 tiles"


def test_start_job_with_a_town_and_a_type(town, owner, client_for):
    body = client_for(owner).get(f"/start_job?town_id={town.id}&type=slope").json()
    assert body["status"] == 201 and body["data"]["type"] == "slope" and body["data"]["tiles_total"] == 4


def test_start_job_rejects_bad_input_in_the_wrapper(index, owner, client_for):
    client = client_for(owner)
    for query, message in [
        ("tile_ids=1,x", "tile_ids: must be comma-separated integers, not '1,x'"),
        ("tile_ids=1,2", "tile_ids: unknown tile ids: 1, 2"),
        ("", "give exactly one of tile_ids and town_id"),
        ("town_id=abc", "town_id: must be an integer, not 'abc'"),
        (f"tile_ids={index.ids[0]}&type=fog", "type: unknown job type 'fog'"),
    ]:
        response = client.get(f"/start_job?{query}")
        assert response.status_code == 400, query
        body = response.json()
        assert body["status"] == 400 and body["data"] is None and message in body["message"]
    assert Job.objects.count() == 0


def test_job_status_and_cancel_job(index, owner, other, client_for):
    client = client_for(owner)
    job_id = client.get(f"/start_job?tile_ids={index.ids[0]}").json()["data"]["id"]
    body = client.get(f"/job_status?job_id={job_id}").json()
    assert body == {"status": 200, "data": body["data"], "message": f"job {job_id} is queued"}
    assert client_for(other).get(f"/job_status?job_id={job_id}").json()["status"] == 404
    assert client_for(other).get(f"/cancel_job?job_id={job_id}").json()["status"] == 404
    body = client.get(f"/cancel_job?job_id={job_id}").json()
    assert body["status"] == 200 and body["data"]["status"] == "canceled"
    again = client.get(f"/cancel_job?job_id={job_id}")
    assert again.status_code == 409 and "already canceled" in again.json()["message"]
    assert client.get("/job_status").json() == {"status": 400, "data": None, "message": "job_id: is required"}


def test_the_old_endpoints_need_credentials(db, client_for):
    assert client_for().get("/job_status?job_id=1").status_code == 401
