"""Prefect flows: one module per pipeline, each reading like its row of the design table."""
