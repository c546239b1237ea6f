"""The project's errors. Every one the platform code raises is an `MLOpsError`:

    MLOpsError
    ├── ConfigError                a setting is missing or invalid; raised before any work starts
    ├── BackendError               a platform operation failed
    │   ├── TransientBackendError  worth retrying: a crash, a timeout, a busy resource
    │   ├── MissingResourceError   the named model, version, alias or endpoint does not exist
    │   └── JobFailedError         a job ran and failed on its input; retrying will not help
    ├── GateError                  the quality gate cannot compare the candidate with the champion
    └── DeploymentCheckError       a new deployment answered wrongly; its traffic was rolled back
        ├── SmokeTestError         the direct smoke test of the new deployment failed
        └── RolloutCheckError      a check during the traffic shift failed

Errors of the model code itself live in `model.errors` so that `model/` depends on nothing here.
"""

from __future__ import annotations


class MLOpsError(Exception):
    """Base class of the platform errors."""


class ConfigError(MLOpsError):
    """A setting is missing or invalid. The message names the environment variable to fix."""


class BackendError(MLOpsError):
    """A backend operation failed."""


class TransientBackendError(BackendError):
    """A backend operation failed in a way that may succeed on retry. Tasks retry only these."""


class MissingResourceError(BackendError):
    """A named resource (model, version, alias, endpoint) does not exist."""


class JobFailedError(BackendError):
    """A job ran and failed because of its input or code; the message carries the job's own error."""


class GateError(MLOpsError):
    """The gate cannot decide, for example because the champion lacks the gate's metric."""


class DeploymentCheckError(MLOpsError):
    """A check of a new deployment failed; the deploy flow rolled traffic back to the previous deployment."""


class SmokeTestError(DeploymentCheckError):
    """The new deployment's smoke test failed: no answer, a wrong status, or values unlike the bundle's own."""


class RolloutCheckError(DeploymentCheckError):
    """A check at a traffic step failed: an error answer, wrong values or latency over the limit."""
