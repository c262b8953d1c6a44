"""The project's settings for the test suite: the real ones, with a test key and fast password hashing."""

import os
from pathlib import Path

os.environ.setdefault("SECRET_KEY", "jobsite-tests-only")
# Tests that write files point MEDIA_ROOT at a folder of their own (and pass it to the cluster they start).
os.environ.setdefault("MEDIA_ROOT", str(Path(__file__).resolve().parent.parent / "var" / "test-media"))

from jobsite.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Production serves hashed, collected static files; tests find them in the apps instead.
STORAGES = {**STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}  # noqa: F405
WHITENOISE_USE_FINDERS = True
# The live servers of the tests speak plain http.
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = False
