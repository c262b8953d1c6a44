"""The job status endpoint under load while jobs run, served by gunicorn.

A real cluster with 2 workers runs job after job (slope over --side x --side tiles of 512 x 512)
while a separate process sends GET /api/v1/jobs/<id>/ for the running job at a fixed rate
(--rate per second for --seconds, an asyncio client that does not wait for one answer before
sending the next) and records each answer's latency from the moment it was due, so a slow
answer delays none of the others' clocks. The baseline, in the same run: the same load with no
job running. Prints p50, p99 and the errors of both; the target is p99 at most 50 ms, no errors.

    .venv/bin/python bench/api.py [--rate 200] [--seconds 20] [--database-url postgres://...]

`--load URL TOKEN JOB_ID` is the client side, which the benchmark starts as a child process.
"""

import argparse
import asyncio
import json
import os
import resource
import runpy
import statistics
import subprocess
import sys
import threading
import time

import harness


async def _load(url, token, job_id, rate, seconds):
    import aiohttp

    latencies, errors = [], {}
    path = f"{url}/api/v1/jobs/{job_id}/"
    # Idle connections are dropped after 1 s, before gunicorn's keep-alive of 2 s closes them from
    # its side: a request sent on a connection the server is closing fails, on any client.
    connector = aiohttp.TCPConnector(limit=64, keepalive_timeout=1)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                     headers={"Authorization": f"Token {token}"}) as session:

        async def get():
            async with session.get(path) as answer:
                await answer.read()
                return answer.status

        # Warm up with one second's worth of requests, unrecorded: each web worker's first
        # requests open its database connections and import what the view needs.
        await asyncio.gather(*(get() for _ in range(int(rate))))

        async def one(due):
            try:
                code = await get()
                key = None if code == 200 else str(code)
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                key = type(exc).__name__
            if key:
                errors[key] = errors.get(key, 0) + 1
            latencies.append(time.perf_counter() - due)

        start = time.perf_counter()
        tasks = []
        for number in range(int(rate * seconds)):
            due = start + number / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(one(due)))
        await asyncio.gather(*tasks)
    return latencies, errors


def client_main(url, token, job_id, rate, seconds):
    latencies, errors = asyncio.run(_load(url, token, job_id, rate, seconds))
    print(json.dumps({"latencies": latencies, "errors": errors}))


def measure(url, token, job_id, rate, seconds):
    """Run the client process; returns (p50 ms, p99 ms, requests, errors, client CPU seconds)."""
    cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
    answer = subprocess.run([sys.executable, __file__, "--load", url, token, str(job_id), "--rate", str(rate),
                             "--seconds", str(seconds)], capture_output=True, text=True, check=True)
    result = json.loads(answer.stdout)
    latencies = sorted(result["latencies"])
    p50 = 1000 * statistics.median(latencies)
    p99 = 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return p50, p99, len(latencies), result["errors"], used.ru_utime + used.ru_stime - cpu.ru_utime - cpu.ru_stime


def keep_jobs_running(owner, tile_ids, stop):
    """Submit job after job until `stop` is set; returns the list of their ids, filled as they are
    submitted, and the thread."""
    from jobs.services.submit import job_submit
    from jobs.models import JobStatus

    submitted = []

    def loop():
        while not stop.is_set():
            job = job_submit(owner=owner, job_type="slope", tile_ids=tile_ids, interim_results="never")
            submitted.append(job.pk)
            harness.wait_until(job.pk, JobStatus.final(), poll=0.05)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return submitted, thread


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--side", type=int, default=12, help="tiles per side of the jobs that run")
    parser.add_argument("--web-workers", type=int, help="gunicorn workers (default: gunicorn.conf.py's)")
    parser.add_argument("--web-threads", type=int, help="threads per gunicorn worker (default: gunicorn.conf.py's)")
    parser.add_argument("--cluster-nice", type=int, default=10,
                        help="niceness of the cluster, as the README's service unit sets it (0: none)")
    parser.add_argument("--load", nargs=3, metavar=("URL", "TOKEN", "JOB_ID"), help=argparse.SUPPRESS)
    harness.database_arguments(parser)
    args = parser.parse_args()
    if args.load:
        return client_main(*args.load, args.rate, args.seconds)

    work = harness.configure(args.database_url)
    from django.contrib.auth.models import User
    from django.db import connection

    import dispatch
    from jobs.models import Job, JobStatus, Tile

    (work / "tiles").mkdir()
    dispatch.make_index(work / "tiles", args.side, 512)
    tile_ids = list(Tile.objects.order_by("number").values_list("number", flat=True))
    owner = User.objects.get_or_create(username="bench")[0]
    token = harness.api_token(owner)

    with harness.cluster(args.cluster_nice), harness.web_server(args.web_workers, args.web_threads) as url:
        from jobs.services.submit import job_submit

        idle_job = job_submit(owner=owner, job_type="slope", tile_ids=tile_ids[:1])
        harness.wait_until(idle_job.pk, JobStatus.final())
        idle = measure(url, token, idle_job.pk, args.rate, args.seconds)

        stop = threading.Event()
        submitted, thread = keep_jobs_running(owner, tile_ids, stop)
        while not submitted:
            time.sleep(0.01)
        harness.wait_until(submitted[0], [JobStatus.RUNNING, *JobStatus.final()])
        busy = measure(url, token, submitted[0], args.rate, args.seconds)
        stop.set()
        thread.join(120)
        connection.close()
        ran = Job.objects.filter(pk__in=submitted, status=JobStatus.SUCCEEDED).count()

    config = runpy.run_path(str(harness.BASE_DIR / "gunicorn.conf.py"))
    # gunicorn.conf.py sets workers unless WEB_CONCURRENCY does
    web_workers = args.web_workers or config.get("workers") or int(os.environ["WEB_CONCURRENCY"])
    web_threads = args.web_threads or config.get("threads", 1)
    print(f"GET /api/v1/jobs/<id>/ at {args.rate:.0f} requests/s for {args.seconds:.0f} s, gunicorn "
          f"{web_workers} workers x {web_threads} threads, 2 cluster workers at nice {args.cluster_nice}, "
          f"{connection.vendor}")
    for label, (p50, p99, count, errors, client_cpu) in (("no job running", idle), (f"jobs running ({ran} ran)", busy)):
        print(f"  {label:22s} p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  {count} requests, errors: {errors or 'none'}; "
              f"client CPU {1000 * client_cpu / count:.2f} ms a request")
    print(f"  p99 busy / idle: {busy[1] / idle[1]:.2f} (target: p99 at most 50 ms, no errors)")
    harness.record("api", {"rate": args.rate, "seconds": args.seconds, "cluster_nice": args.cluster_nice,
                           "web_workers": web_workers, "web_threads": web_threads, "requests": busy[2],
                           "p50_ms": round(busy[0], 1), "p99_ms": round(busy[1], 1), "errors": busy[3],
                           "idle_p50_ms": round(idle[0], 1), "idle_p99_ms": round(idle[1], 1), "idle_errors": idle[3],
                           "jobs_ran": ran})


if __name__ == "__main__":
    main()
