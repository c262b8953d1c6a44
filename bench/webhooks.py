"""Webhooks against no webhooks: a job of about 2,000 small tiles through the service (a real
cluster, two workers), with a progress (`update`) and a `finished` webhook to a local receiver
that takes 200 ms to answer each, and the same job without them, in one run.

Prints each job's wall time, their ratio, how many events the receiver got, and how long after
the job's end its `finished` webhook arrived.

    .venv/bin/python bench/webhooks.py [--repeat 3] [--side 45] [--tile-size 64] [--database-url postgres://...]
"""

import argparse
import os
import shutil
import statistics
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import harness


class Receiver:
    """A receiver on 127.0.0.1 that answers every POST after `delay` seconds, noting when it got
    each event type."""

    def __init__(self, delay):
        self.delay, self.got = delay, []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                receiver.got.append((time.time(), self.path, body))
                time.sleep(receiver.delay)
                self.send_response(200)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"


def timed_job(owner, tile_ids, webhooks=None):
    from jobs.services.submit import job_submit

    start = time.perf_counter()
    job = job_submit(owner=owner, job_type="hillshade", tile_ids=tile_ids, webhooks=webhooks)
    done = harness.wait_for_success(job.pk)
    return job.pk, time.perf_counter() - start, done.finished.timestamp()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--side", type=int, default=45, help="tiles per side")
    parser.add_argument("--tile-size", type=int, default=64)
    parser.add_argument("--delay", type=float, default=0.2, help="seconds the receiver takes to answer")
    harness.database_arguments(parser)
    args = parser.parse_args()

    os.environ["JOBSITE_WEBHOOK_ALLOWED_HOSTS"] = "127.0.0.1"
    os.environ["JOBSITE_WEBHOOK_PROGRESS_SECONDS"] = "1"
    work = harness.configure(args.database_url)
    from django.contrib.auth.models import User

    import pipeline
    from jobs.models import Tile

    (work / "tiles").mkdir()
    pipeline.make_index(work / "tiles", args.side, args.tile_size)
    tile_ids = list(Tile.objects.order_by("number").values_list("number", flat=True))
    owner = User.objects.get_or_create(username="bench")[0]
    receiver = Receiver(args.delay)
    hooks = {"update": f"{receiver.url}/update", "finished": f"{receiver.url}/finished"}
    plain, hooked, arrivals, events = [], [], [], []
    with harness.cluster():
        timed_job(owner, tile_ids[:8], hooks)  # warm-up
        for _ in range(args.repeat):
            plain.append(timed_job(owner, tile_ids)[1])
            before = len(receiver.got)
            job_id, seconds, finished = timed_job(owner, tile_ids, hooks)
            hooked.append(seconds)
            deadline = time.monotonic() + 60
            while not any(path == "/finished" for _, path, _ in receiver.got[before:]):
                if time.monotonic() > deadline:
                    raise SystemExit("the finished webhook did not arrive within 60 s of the job's end")
                time.sleep(0.01)
            arrival = next(when for when, path, _ in receiver.got[before:] if path == "/finished")
            arrivals.append(arrival - finished)
            events.append(len(receiver.got) - before)
    receiver.server.shutdown()
    base, with_hooks = statistics.median(plain), statistics.median(hooked)
    print(f"hillshade over {len(tile_ids)} tiles of {args.tile_size} x {args.tile_size}, 2 workers, "
          f"median of {args.repeat}; the receiver answers in {args.delay * 1000:.0f} ms")
    print(f"  without webhooks {base:6.2f} s")
    print(f"  with update and finished webhooks {with_hooks:6.2f} s  (ratio {with_hooks / base:.3f}), "
          f"{statistics.median(events):.0f} events delivered")
    print(f"  the finished webhook arrived {statistics.median(arrivals):.2f} s after the job ended")
    harness.record("webhooks", {
        "tiles": len(tile_ids), "tile_size": args.tile_size, "receiver_delay_s": args.delay,
        "plain_s": round(base, 3), "webhooks_s": round(with_hooks, 3), "ratio": round(with_hooks / base, 3),
        "events": statistics.median(events), "finished_after_s": round(statistics.median(arrivals), 3),
    })
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
