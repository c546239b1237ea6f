"""deployments/temporary_server.api_settings: no certificate bundle loaded for a plain-HTTP Prefect API."""

from __future__ import annotations

import ssl
from typing import Any

import pytest
from prefect.client.orchestration import PrefectClient
from prefect.settings import PREFECT_API_TLS_INSECURE_SKIP_VERIFY, PREFECT_API_URL, temporary_settings

from deployments.temporary_server import api_settings


def test_a_plain_http_api_skips_verification_and_https_keeps_it() -> None:
    assert api_settings("http://127.0.0.1:4200/api") == {
        PREFECT_API_URL: "http://127.0.0.1:4200/api",
        PREFECT_API_TLS_INSECURE_SKIP_VERIFY: True,
    }
    assert api_settings("https://api.prefect.cloud/api/accounts/a/workspaces/w") == {
        PREFECT_API_URL: "https://api.prefect.cloud/api/accounts/a/workspaces/w"
    }


def test_a_client_of_a_plain_http_api_loads_no_certificates(monkeypatch: pytest.MonkeyPatch) -> None:
    loaded: list[Any] = []
    original = ssl.SSLContext.load_verify_locations

    def counting(self: ssl.SSLContext, *args: Any, **kwargs: Any) -> None:
        loaded.append(args or kwargs)
        original(self, *args, **kwargs)

    monkeypatch.setattr(ssl.SSLContext, "load_verify_locations", counting)
    with temporary_settings(updates=api_settings("http://127.0.0.1:9/api")):
        PrefectClient("http://127.0.0.1:9/api")
    assert loaded == []
    with temporary_settings(updates=api_settings("https://127.0.0.1:9/api")):
        PrefectClient("https://127.0.0.1:9/api")
    assert len(loaded) == 1  # Prefect's own verification, certifi's bundle
