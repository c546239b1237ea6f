"""Prefect flows: one module per pipeline, each reading like its row of the design table.

Importing this package installs the process's tracer provider (`infra.telemetry`) before any flow
starts, so Prefect's span for each flow and task run is recorded: the CLI and a worker's
`prefect flow-run execute` both import a flow from here first.
"""

from infra.telemetry import setup_tracing

setup_tracing("mlops-flows")
