"""The local online endpoint: one HTTP process hosting several deployments of `score.py` bundles.

It behaves like an Azure ML managed online endpoint:

    GET  /                       liveness ("Healthy")
    GET  /ready                  readiness: 200 once a deployment takes traffic, else 503
    GET  /swagger.json           OpenAPI 3 of the scoring request and response
    POST /score                  Bearer <scoring key>; `azureml-model-deployment: <name>` pins a deployment
    GET  /management/state       Bearer <admin key>: deployments and traffic
    PUT  /management/deployments/<name>   {"bundle": "<folder>"}: load a bundle (at 0 % traffic)
    DELETE /management/deployments/<name> remove a deployment that takes no traffic
    PUT  /management/traffic     {"blue": 90, "green": 10}: weights summing to 100 (or all 0)
    PUT  /management/mirror      {"green": 20}: also send a copy of 20 % of unpinned requests to green
                                 (its answers are logged and dropped, as Azure ML's mirror traffic)
    POST /management/keys/regenerate  {"key": "primary"}: a new scoring key (or {"value": "..."}, that one),
                                 served at once and saved to keys.json; the answer names the key, never a value

Management never needs a restart; the state is saved to `state.json` and reloaded at start. Every
request logs one JSON line (request id, trace and span ids, deployment, model version, predictions,
latency) to stdout, flushed five times a second.

Tracing (`infra.telemetry`): a scoring or management request continues the caller's W3C
`traceparent` (or starts a trace) in a span of its own. A scored request's inputs and outputs are
collected, as Azure ML's data collector does, to `collected/<YYYY-MM-DD>T<HHMMSS>-<n>.jsonl` (the drift monitor
reads them; segments under a size cap and an age, MLOPS_ENDPOINT_COLLECT_MAX_MB and _MAX_AGE_HOURS, as the span
files are under MLOPS_TELEMETRY_MAX_MB and _MAX_AGE_HOURS); requests marked `x-mlops-check` (the smoke test's, the rollout's) are not.
Bad requests get a 4xx JSON error naming the problem; the server keeps serving.

    python -m infra.endpoint_server.server --dir DIR --port PORT [--max-body-bytes N] [--tls-cert F --tls-key F]

This module is the process's entry point; the parts are `app` (ASGI, routing), `batching` (the scoring call:
micro-batching, back-pressure), `traffic` (split and mirror), `management` (deployments, state) and `collect`
(request log, collected data, spans).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from infra.endpoint_server.app import EndpointApp
from infra.endpoint_server.batching import Scorer
from infra.endpoint_server.collect import COLLECTED_FOLDER
from infra.endpoint_server.config import MIB, Retention

__all__ = ["COLLECTED_FOLDER", "EndpointApp", "main"]


def _parser() -> argparse.ArgumentParser:
    """The server's options (`EndpointConfig.server_arguments` writes them)."""
    parser = argparse.ArgumentParser(prog="python -m infra.endpoint_server.server")
    parser.add_argument("--dir", type=Path, required=True, help="endpoint folder with keys.json (and state.json)")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--name", default="endpoint")
    parser.add_argument("--max-body-bytes", type=int, default=1 << 20)
    parser.add_argument("--tls-cert", type=Path, help="serve HTTPS with this certificate (PEM) ...")
    parser.add_argument("--tls-key", type=Path, help="... and this key")
    parser.add_argument("--telemetry-dir", type=Path, help="where spans go as files (default MLOPS_HOME/telemetry)")
    parser.add_argument("--collect-percent", type=float, default=100, help="share of scored requests collected")
    parser.add_argument("--batch-max-rows", type=int, default=1000, help="rows in one batched scoring call, at most")
    parser.add_argument("--max-queue", type=int, default=128, help="requests waiting; past it 503 + Retry-After")
    parser.add_argument("--busy-status", type=int, choices=(429, 503), default=503, help="the answer past --max-queue")
    parser.add_argument("--no-batching", action="store_true", help="score one request per call")
    parser.add_argument("--collect-max-mb", type=float, default=1024, help="MiB of collected requests kept")
    parser.add_argument("--collect-max-age-hours", type=float, default=168, help="collected requests kept this long")
    parser.add_argument("--telemetry-max-mb", type=float, default=256, help="MiB of span files kept")
    parser.add_argument("--telemetry-max-age-hours", type=float, default=168, help="span files kept this long")
    parser.add_argument(
        "--preload",
        action="append",
        default=[],
        metavar="LIBRARY",
        help="a library (distribution name) imported in the background at start, for the deployments to come",
    )
    return parser


def main(argv: list[str] | None = None) -> None:
    """Serve until stopped. The libraries of `--preload` (the model package's: scikit-learn's import is ~1.3 s of
    CPU) import in a thread while the server starts and waits for its first deployment, which then loads in
    ~0.1 s instead of paying them (issue 27: the deploy step of a new workspace's `mlops run`)."""
    import uvicorn

    from infra.endpoint_server.ticks import QuietServer
    from model.environment import import_in_background

    args = _parser().parse_args(argv)
    importing = import_in_background(args.preload)
    retention = Retention(
        collect_bytes=int(args.collect_max_mb * MIB),
        collect_age_seconds=args.collect_max_age_hours * 3600,
        telemetry_bytes=int(args.telemetry_max_mb * MIB),
        telemetry_age_seconds=args.telemetry_max_age_hours * 3600,
    )
    app = EndpointApp(
        args.dir,
        name=args.name,
        max_body_bytes=args.max_body_bytes,
        telemetry_dir=args.telemetry_dir,
        collect_percent=args.collect_percent,
        scorer=Scorer(
            batching=not args.no_batching,
            max_rows=args.batch_max_rows,
            max_queue=args.max_queue,
            busy_status=args.busy_status,
        ),
        retention=retention,
    )
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
        ssl_certfile=args.tls_cert,
        ssl_keyfile=args.tls_key,
    )
    QuietServer(config).run()
    importing.join()  # not left half-way through an import at the interpreter's exit


if __name__ == "__main__":
    main()
