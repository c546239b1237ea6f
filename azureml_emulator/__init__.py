"""A local Azure ML control plane for the real azure-ai-ml SDK: HTTPS, its own CA, state in SQLite, jobs that run.

Start it with `mlops emulator up` (or `python -m azureml_emulator`); point the backend at it
with `MLOPS_BACKEND=azureml MLOPS_AZUREML_EMULATOR=1`. See `server.py` for the routes it serves.

    server.py    the HTTPS server; it wires the handler modules' routes up and starts the job runner
    core/        what the handlers share: state, the request context, ARM errors, the route table
    handlers/    one module per resource family, each importing the core only
    bodies/      literal response bodies, as JSON, each saying where it comes from
    runner.py    the job runner (jobs really run); batch_driver.py a batch job's command
    tls.py       its certificates; process.py starts and stops the server (blob storage: core/blobs.py)
"""
