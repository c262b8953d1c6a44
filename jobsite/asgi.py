"""jobsite as an ASGI application, for uvicorn: the same site, where the event streams stay open
without holding a process (`make run` serves everything this way; see the README's Operations)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobsite.settings")
application = get_asgi_application()
