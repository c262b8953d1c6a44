"""The project's settings for the test suite: the real ones, with a test key and fast password hashing."""

import os
from pathlib import Path

os.environ.setdefault("SECRET_KEY", "jobsite-tests-only")
# Tests that write files point MEDIA_ROOT at a folder of their own (and pass it to the cluster they start).
os.environ.setdefault("MEDIA_ROOT", str(Path(__file__).resolve().parent.parent / "var" / "test-media"))

from jobsite.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
