"""python -m azureml_emulator --home DIR --port PORT [--workspace SUB/RG/WS ...] [--registry SUB/RG/NAME ...] [--max-jobs N] [--endpoint-port P] [--lro-scale F]
[--identity-datastores]"""

from __future__ import annotations

import argparse
import contextlib
from pathlib import Path

from azureml_emulator.server import serve, shutdown_on_signals


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m azureml_emulator")
    parser.add_argument("--home", type=Path, required=True, help="state, certificates, blobs and job folders")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument(
        "--workspace", action="append", default=[], help="subscription/resource-group/workspace it holds"
    )
    parser.add_argument(
        "--registry",
        action="append",
        default=[],
        help="subscription/resource-group/registry it holds (Azure ML registries)",
    )
    parser.add_argument("--max-jobs", type=int, default=2, help="jobs run at once (the rest queue)")
    parser.add_argument("--endpoint-port", type=int, help="first port of online endpoints' servers (default PORT+1)")
    parser.add_argument(
        "--lro-scale",
        type=float,
        default=0.0,
        help="long-running operations take Azure's recorded time times this (0: done at once)",
    )
    parser.add_argument(
        "--identity-datastores",
        action="store_true",
        help="workspaces' datastores are identity-based: no secrets, blob access with the caller's token",
    )
    args = parser.parse_args()
    shutdown_on_signals()
    with contextlib.suppress(KeyboardInterrupt):
        serve(
            args.home.resolve(),
            args.port,
            args.workspace,
            registries=tuple(args.registry),
            max_jobs=args.max_jobs,
            endpoint_port=args.endpoint_port,
            lro_scale=args.lro_scale,
            identity_datastores=args.identity_datastores,
        )


if __name__ == "__main__":
    main()
