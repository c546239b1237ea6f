"""The emulator's core: what the handler modules share. It imports no handler module and not the server.

store.py             the state: one SQLite file (workspaces, assets, jobs, blobs' properties, the request log)
emulator.py          `Emulator`: the state and services behind the server (home, store, blobs, URLs)
context.py           `Context`: one request and the workspace it addresses; ARM ids and paging
errors.py            `ArmError`: an error answer in ARM's format
routing.py           `Routes`: the route table the handler modules add to
arm.py               names and ids the resource families share (provider, region, storage, store kinds)
bodies.py            literal response bodies, kept as data in `../bodies/*.json`
operations.py        long-running operations and a resource's busy state
endpoints.py         what online and batch endpoints share: names, the endpoint addressed, deployments' assets
endpoint_servers.py  the local servers behind online endpoints
job_bodies.py        a job's stored body, where its outputs go, its time limit
storage.py           files in and out of the emulator's blob storage
blobs.py             the blob service: the part of Azure Blob Storage the SDK uploads to and downloads from
"""
