"""What turns flows into commands, scheduled and event-chained Prefect deployments, and CI entry points."""
