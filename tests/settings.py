"""The project's settings for the test suite: the real ones, with a test key and fast password hashing."""

import os

os.environ.setdefault("SECRET_KEY", "jobsite-tests-only")

from jobsite.settings import *  # noqa: E402,F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MEDIA_ROOT = VAR_DIR / "test-media"  # noqa: F405  (tests that write files point it at their own folder)
