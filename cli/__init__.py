"""The `mlops` command: one module per command group, assembled by `cli.main`."""
