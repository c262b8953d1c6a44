"""Running schemathesis over an OpenAPI document of this service, in this process: the document
loaded through the real WSGI application, and a bounded, repeatable run of its cases."""

import os
from contextlib import contextmanager

import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (content_type_conformance, response_schema_conformance,
                                               status_code_conformance)

from jobsite.wsgi import application

# Each status code, content type and body as documented.
AS_DOCUMENTED = [status_code_conformance, content_type_conformance, response_schema_conformance]
NO_SERVER_ERROR = not_a_server_error

# A bounded, repeatable run in the suite; API_EXAMPLES=200 API_RANDOM=1 for a deeper one by hand.
bounded_run = hypothesis_settings(max_examples=int(os.environ.get("API_EXAMPLES", 12)), deadline=None,
                                  derandomize=not os.environ.get("API_RANDOM"), suppress_health_check=list(HealthCheck))


@contextmanager
def schema_at(path):
    """The OpenAPI document at `path`, its requests sent through the WSGI application in this process.
    Like Django's test client, the application is kept from closing the test's database connection
    at the end of each request."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi(path, application)
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)

