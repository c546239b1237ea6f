"""The emulator's handler modules, one per resource family; each adds its routes with `register(routes)`.

    control.py     the emulator's own routes: health, the request log, endpoint names taken in the region
    workspace.py   workspaces (GET, PATCH, DELETE), discovery, workspace creation through ARM deployments
    assets.py      datastores; codes, data, environments and models, and their uploads
    registries.py  Azure ML registries: their discovery, their model versions and uploads
    jobs.py        command jobs, their cancel, run history, output URIs
    operations.py  the status of long-running operations
    online.py      online endpoints and deployments, keys, tokens, logs
    batch.py       batch endpoints and deployments, and invoking them
    compute.py     compute clusters
    schedules.py   schedules (model monitors)

A handler module imports the core (`azureml_emulator.core`), never another handler module
(`tests/azureml_emulator/test_structure.py`).
"""
