"""Event streams under load: 1,000 clients listening while a job of about 2,000 tiles runs (a real
cluster, two workers) and the job status endpoint is asked 200 times a second, against the same
job and status load without the clients, in one run.

The streams are served as the README's Operations say: uvicorn (two workers) beside gunicorn. The
clients, in a process of their own, all listen to the job owner's stream (`/api/v1/events/`), so
each of the job's events goes to every one of them. An event's latency runs from its timestamp
(taken inside the transaction that records it, just before its commit) to its arrival at a
client. Prints p50 and p99 of those latencies (target: p99 under 250 ms), the job's wall time
with and without the clients (target: at most 5 % slower) and the status endpoint's p99 with and
without them (target: within 10 %).

    .venv/bin/python bench/streams.py [--clients 1000] [--side 45] [--tile-size 128] [--database-url postgres://...]

`--listen URL TOKEN` is the clients' side, which the benchmark starts as a child process.
"""

import argparse
import asyncio
import json
import shutil
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime

import harness


class _Listener(asyncio.Protocol):
    """One stream client that only notes when each piece arrives: the events are read afterwards,
    so that 1,000 of them in one process measure the server, not their own parsing."""

    def __init__(self, request):
        self.request, self.pieces, self.opened = request, [], asyncio.get_running_loop().create_future()

    def connection_made(self, transport):
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data):
        self.pieces.append((time.time(), data))
        if not self.opened.done():
            received = b"".join(piece for _, piece in self.pieces)
            if not received.startswith(b"HTTP/1.1 200 "):
                self.opened.set_exception(ConnectionError(received.split(b"\r\n", 1)[0].decode()))
            elif b"\n\n" in received.partition(b"\r\n\r\n")[2]:  # the stream's first lines: it listens
                self.opened.set_result(True)

    def connection_lost(self, exc):
        if not self.opened.done():
            self.opened.set_exception(ConnectionError("closed"))

    def latencies(self):
        """Each event's arrival less its timestamp, from the data lines (chunk framing aside)."""
        found, pending = [], b""
        for arrived, piece in self.pieces:
            pending += piece
            *lines, pending = pending.split(b"\n")
            for line in lines:
                if line.startswith(b"data: "):
                    found.append(arrived - datetime.fromisoformat(json.loads(line[6:])["timestamp"]).timestamp())
        return found


async def _listen(url, token, clients):
    """Open `clients` streams, say "ready", and note each event's latency until stdin closes."""
    host, port = url.removeprefix("http://").split(":")
    request = (f"GET /api/v1/events/ HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Token {token}\r\n"
               "Accept: text/event-stream\r\n\r\n").encode()
    loop = asyncio.get_running_loop()
    connecting = asyncio.Semaphore(50)

    async def connect():
        async with connecting:
            _, listener = await loop.create_connection(lambda: _Listener(request), host, int(port))
            await listener.opened
            return listener

    opened = await asyncio.gather(*(connect() for _ in range(clients)), return_exceptions=True)
    failures = {}
    for failure in (o for o in opened if isinstance(o, BaseException)):
        failures[repr(failure)] = failures.get(repr(failure), 0) + 1
    listeners = [o for o in opened if not isinstance(o, BaseException)]
    print(json.dumps({"ready": len(listeners), "failures": failures}), flush=True)
    await loop.run_in_executor(None, sys.stdin.read)
    for listener in listeners:
        listener.transport.close()
    print(json.dumps({"latencies": [value for listener in listeners for value in listener.latencies()],
                      "failures": failures}), flush=True)


def run_job(owner, tile_ids, status_url=None, token=None, load_seconds=0, rate=0):
    """Submit the job, ask its status at `rate` for `load_seconds` while it runs; its wall time and
    the status load's figures (p50 ms, p99 ms, requests, errors, client CPU)."""
    import api
    from jobs.models import JobStatus
    from jobs.services.submit import job_submit

    start = time.perf_counter()
    job = job_submit(owner=owner, job_type="hillshade", tile_ids=tile_ids, interim_results="never")
    harness.wait_until(job.pk, [JobStatus.RUNNING, *JobStatus.final()])
    figures = {}
    load = threading.Thread(target=lambda: figures.update(status=api.measure(status_url, token, job.pk, rate,
                                                                              load_seconds)))
    if load_seconds:
        load.start()
    harness.wait_for_success(job.pk)
    seconds = time.perf_counter() - start
    if not load_seconds:
        return seconds, None
    load.join()
    if seconds < load_seconds + 1:
        raise SystemExit(f"the job took {seconds:.1f} s, not longer than the status load's {load_seconds} s: "
                         "give it more or larger tiles")
    return seconds, figures["status"]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--side", type=int, default=45, help="tiles per side")
    parser.add_argument("--tile-size", type=int, default=128)
    parser.add_argument("--rate", type=float, default=200, help="status requests per second")
    parser.add_argument("--load-seconds", type=float, default=6, help="how long the status load lasts")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--stream-workers", type=int, default=2, help="uvicorn workers (the README's)")
    parser.add_argument("--stream-nice", type=int, default=0, help="niceness of uvicorn")
    parser.add_argument("--listen", nargs=2, metavar=("URL", "TOKEN"), help=argparse.SUPPRESS)
    harness.database_arguments(parser)
    args = parser.parse_args()
    if args.listen:
        return asyncio.run(_listen(*args.listen, args.clients))

    work = harness.configure(args.database_url)
    from django.contrib.auth.models import User

    import pipeline
    from jobs.models import Tile

    (work / "tiles").mkdir()
    pipeline.make_index(work / "tiles", args.side, args.tile_size)
    tile_ids = list(Tile.objects.order_by("number").values_list("number", flat=True))
    owner = User.objects.get_or_create(username="bench")[0]
    token = harness.api_token(owner)
    alone, with_clients, status_alone, status_with, latencies, failures = [], [], [], [], [], {}
    with (harness.cluster(nice=10), harness.web_server() as status_url,
          harness.asgi_server(args.stream_workers, args.stream_nice, JOBSITE_STREAMS_PER_USER=str(args.clients)) as stream_url):
        run_job(owner, tile_ids[:50])  # warm-up
        for _ in range(args.repeat):
            seconds, status = run_job(owner, tile_ids, status_url, token, args.load_seconds, args.rate)
            alone.append(seconds)
            status_alone.append(status[1])
            listeners = subprocess.Popen([sys.executable, __file__, "--listen", stream_url, token, "--clients",
                                          str(args.clients)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            ready = json.loads(listeners.stdout.readline())
            if ready["failures"]:
                raise SystemExit(f"streams refused: {ready['failures']}")
            seconds, status = run_job(owner, tile_ids, status_url, token, args.load_seconds, args.rate)
            time.sleep(1)  # the last events reach the clients
            listeners.stdin.close()
            heard = json.loads(listeners.stdout.readline())
            listeners.wait(30)
            with_clients.append(seconds)
            status_with.append(status[1])
            latencies += heard["latencies"]
            for reason, count in heard["failures"].items():
                failures[reason] = failures.get(reason, 0) + count
    latencies.sort()
    p50 = 1000 * statistics.median(latencies)
    p99 = 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    base, loaded = statistics.median(alone), statistics.median(with_clients)
    status_base, status_loaded = statistics.median(status_alone), statistics.median(status_with)
    print(f"hillshade over {len(tile_ids)} tiles of {args.tile_size} x {args.tile_size}, 2 workers at nice 10, "
          f"status at {args.rate:.0f}/s, {args.stream_workers} uvicorn workers at nice {args.stream_nice}, "
          f"median of {args.repeat}")
    print(f"  {args.clients} stream clients: {len(latencies)} arrivals, latency p50 {p50:.1f} ms, p99 {p99:.1f} ms "
          f"(target under 250 ms); failures: {failures or 'none'}")
    print(f"  job without clients {base:6.2f} s, with them {loaded:6.2f} s (ratio {loaded / base:.3f}, target under 1.05)")
    print(f"  status p99 without clients {status_base:.1f} ms, with them {status_loaded:.1f} ms "
          f"(ratio {status_loaded / status_base:.2f}, target within 1.10)")
    harness.record("streams", {
        "clients": args.clients, "stream_workers": args.stream_workers, "stream_nice": args.stream_nice, "tiles": len(tile_ids), "tile_size": args.tile_size, "rate": args.rate,
        "arrivals": len(latencies), "latency_p50_ms": round(p50, 1), "latency_p99_ms": round(p99, 1),
        "job_s": round(base, 3), "job_with_clients_s": round(loaded, 3), "job_ratio": round(loaded / base, 3),
        "status_p99_ms": round(status_base, 1), "status_p99_with_clients_ms": round(status_loaded, 1),
        "status_ratio": round(status_loaded / status_base, 2), "failures": failures,
    })
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
