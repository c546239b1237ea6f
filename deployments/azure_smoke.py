"""`make azure-smoke`: one small round trip through your Azure ML workspace with the Azure ML backend.

    MLOPS_BACKEND=azureml AZURE_SUBSCRIPTION_ID=... AZURE_RESOURCE_GROUP=... AZUREML_WORKSPACE_NAME=... make azure-smoke

1. reads the workspace (a wrong name or a missing role stops here, naming the setting to fix);
2. trains the diabetes sample as a command job on MLOPS_AML_COMPUTE_CLUSTER_NAME (the job is named
   `smoke-<time>`, so each smoke run submits one job);
3. registers its output as `<MLOPS_MODEL_NAME>-smoke` (the real model's versions are not touched);
4. archives that version, so it stays out of listings.

With MLOPS_AZUREML_EMULATOR=1 it runs against the local emulator instead (the test suite does).
Exit codes: 0 done, 1 an Azure ML call failed, 2 bad settings.
"""

from __future__ import annotations

import sys
import time

from infra.backend import TrainSpec
from infra.errors import BackendError, ConfigError
from infra.factory import open_backend
from infra.settings import load_settings
from model.data import write_sample_csv


def main() -> int:
    try:
        settings = load_settings(backend="azureml")
        backend = open_backend(settings)
        where = settings.emulator_url or f"subscription {settings.azure_subscription_id}"
        print(f"workspace {settings.azure_workspace_name} (resource group {settings.azure_resource_group}, {where})")  # noqa: T201 - a command line
        backend.workspace.ensure()
        print("  workspace answers")  # noqa: T201 - a command line
        data = settings.default_data_file
        if not data.is_file():
            write_sample_csv(data)
        job = f"smoke-{time.strftime('%Y%m%d-%H%M%S')}"
        print(f"  training job {job} on compute {settings.aml_compute_cluster_name} (a cold cluster takes minutes)")  # noqa: T201 - a command line
        trained = backend.jobs.train(
            TrainSpec(
                job_name=job, data=data, parameters={"alpha": 0.4}, timeout_seconds=settings.train_timeout_seconds
            )
        )
        print(f"  job completed: mse {trained.metrics['mse']:.2f}")  # noqa: T201 - a command line
        name = f"{settings.model_name}-smoke"
        registration = backend.registry.register(
            name,
            trained.outputs,
            tags={"purpose": "azure-smoke", "mse": repr(trained.metrics["mse"])},
            properties={"job_name": job},
        )
        print(f"  registered {registration.model.id} from the job's output")  # noqa: T201 - a command line
        backend.registry.archive(name, registration.model.version)
        print(f"  archived {registration.model.id}")  # noqa: T201 - a command line
    except ConfigError as exc:
        print(f"azure-smoke: {exc}", file=sys.stderr)  # noqa: T201 - a command line
        return 2
    except BackendError as exc:
        print(f"azure-smoke: {exc}", file=sys.stderr)  # noqa: T201 - a command line
        return 1
    print("azure-smoke: passed")  # noqa: T201 - a command line
    return 0


if __name__ == "__main__":
    sys.exit(main())
