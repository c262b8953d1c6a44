"""jobsite as an ASGI application, for uvicorn: the same site, where the event streams stay open
without holding a process (`make run` serves everything this way; see the README's Operations)."""

import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobsite.settings")
# Under ASGI each request's database work runs in a thread of its own that ends with it: a
# connection kept for the next request would never be used again.
os.environ["DB_CONN_MAX_AGE"] = "0"
application = get_asgi_application()

# What loading jobsite created lives as long as the process: out of the garbage collector's
# sight, a full collection (which every open stream's event would wait for) has less to scan.
gc.freeze()
