"""deployments/temporary_server.api_settings: no certificate bundle loaded for a plain-HTTP Prefect API."""

from __future__ import annotations

from prefect.settings import PREFECT_API_TLS_INSECURE_SKIP_VERIFY, PREFECT_API_URL

from deployments.temporary_server import api_settings


def test_a_plain_http_api_skips_verification_and_https_keeps_it() -> None:
    assert api_settings("http://127.0.0.1:4200/api") == {
        PREFECT_API_URL: "http://127.0.0.1:4200/api",
        PREFECT_API_TLS_INSECURE_SKIP_VERIFY: True,
    }
    assert api_settings("https://api.prefect.cloud/api/accounts/a/workspaces/w") == {
        PREFECT_API_URL: "https://api.prefect.cloud/api/accounts/a/workspaces/w"
    }
