"""`make azure-smoke`'s own logic, without Azure or the emulator: the names it gives its endpoints, the deletion
that runs after a billed step (and says what is left when it fails), and its exit code for bad settings.
The round trips themselves run against the emulator in tests/cli/test_train_status_azureml.py."""

from __future__ import annotations

import pytest

from deployments import azure_smoke
from infra.errors import BackendError
from infra.settings import load_settings

LEFT = "online endpoint smoke-online-1 (deployment smoke: 1 x Standard_DS3_v2, billed until deleted)"
COMMAND = "az ml online-endpoint delete --name smoke-online-1 --resource-group rg --workspace-name ws --yes"


def _failing_delete() -> None:
    raise BackendError("deleting online endpoint smoke-online-1: 500 InternalServerError")


class TestDeletedAfter:
    def test_a_failed_step_still_deletes(self) -> None:
        deleted: list[str] = []
        with (
            pytest.raises(BackendError, match="the step failed"),
            azure_smoke.deleted_after(LEFT, lambda: deleted.append("x"), COMMAND),
        ):
            raise BackendError("the step failed")
        assert deleted == ["x"]

    def test_a_failed_deletion_after_a_failed_step_names_what_is_left_and_the_command(
        self, capsys: pytest.CaptureFixture[str]
    ) -> None:
        with (
            pytest.raises(BackendError, match="the step failed"),
            azure_smoke.deleted_after(LEFT, _failing_delete, COMMAND),
        ):
            raise BackendError("the step failed")  # the step's own error is the one that propagates
        err = capsys.readouterr().err
        assert f"azure-smoke: LEFT BEHIND: {LEFT}: deleting it failed: deleting online endpoint" in err
        assert f"  delete it with: {COMMAND}" in err

    def test_a_failed_deletion_after_a_passed_step_fails_the_smoke(self, capsys: pytest.CaptureFixture[str]) -> None:
        with (
            pytest.raises(BackendError, match="could not be deleted"),
            azure_smoke.deleted_after(LEFT, _failing_delete, COMMAND),
        ):
            pass
        assert "LEFT BEHIND" in capsys.readouterr().err


def test_the_smoke_endpoints_are_named_like_the_real_ones_but_never_are_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLOPS_AZUREML_SUBSCRIPTION_ID", "11111111-2222-3333-4444-555555555555")
    settings = load_settings(backend="azureml")
    names = azure_smoke.smoke_names(settings)
    suffix = settings.endpoint_name.rsplit("-", 1)[1]  # the workspace's own 8 hex, as the real names carry
    assert names == {"endpoint_name": f"smoke-online-{suffix}", "aml_batch_endpoint_name": f"smoke-batch-{suffix}"}


def test_bad_settings_exit_2_naming_the_step(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("MLOPS_AZUREML_SUBSCRIPTION_ID", "AZURE_SUBSCRIPTION_ID", "MLOPS_AZUREML_EMULATOR"):
        monkeypatch.delenv(name, raising=False)
    assert azure_smoke.main([]) == 2
    err = capsys.readouterr().err
    assert err.startswith("azure-smoke: step 'reading the settings' failed: invalid settings")
    assert "azure_subscription_id" in err.lower()
