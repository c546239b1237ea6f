"""A local Azure ML control plane for the real azure-ai-ml SDK: HTTPS, its own CA, state in SQLite, jobs that run.

Start it with `mlops emulator up` (or `python -m infra.azureml_emulator`); point the backend at it
with `MLOPS_BACKEND=azureml MLOPS_AZUREML_EMULATOR=1`. See `server.py` for the routes it serves.
"""
