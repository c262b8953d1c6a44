"""gunicorn's settings for jobsite, read from the working directory: `gunicorn jobsite.wsgi`.

Sync workers, two per CPU unless WEB_CONCURRENCY says otherwise. A request's Python holds its
process for a few milliseconds, so threads in one process would wait for each other's GIL; one
process per request at a time lets the kernel hand each new connection to whichever worker is
free, and while one worker waits for the database another uses the CPU. bench/api.py measures
this setup: the job status at 200 requests/s while jobs run.
"""

import gc
import os

# gunicorn itself reads WEB_CONCURRENCY (and refuses one that is not a number); this sets the
# default without it, and refuses a count that would serve nothing.
if not os.environ.get("WEB_CONCURRENCY"):
    workers = 2 * (os.cpu_count() or 1)
elif int(os.environ["WEB_CONCURRENCY"]) < 1:
    raise SystemExit(f"WEB_CONCURRENCY must be at least 1 worker, not {os.environ['WEB_CONCURRENCY']}")
worker_class = "sync"
# A sync worker serves a whole upload; behind a proxy that buffers request bodies (nginx does by
# default) it receives them at once, without one a data file upload may take this long.
timeout = 120


def post_worker_init(worker):
    """Move what loading jobsite created (about 70,000 objects) out of the garbage collector's
    sight: a full collection scans them all, about 35 ms here, and the request that triggers it
    waits that long. They live as long as the worker anyway."""
    gc.freeze()
