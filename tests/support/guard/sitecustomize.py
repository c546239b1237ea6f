"""Loaded by every Python process of a `make test-fast` run (this folder is put first on PYTHONPATH):
installs the fast tier's guard when MLOPS_TEST_GUARD names its report file. See tests/support/tier_guard.py."""

import os

if os.environ.get("MLOPS_TEST_GUARD"):
    from tests.support.tier_guard import install

    install()
