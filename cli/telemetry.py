"""`mlops trace` and `mlops logs`: one request's path, or a run's requests, from the local telemetry.

Both read the spans `infra.telemetry` writes under MLOPS_HOME/telemetry (the `files` destination);
`mlops logs` without a run reads the endpoint's own request log.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cli.command import Command, Subparsers, add, json_argument
from infra import telemetry
from infra.services.supervisor import rotated_files
from infra.settings import Settings
from infra.telemetry import Span


def trace(settings: Settings, args: argparse.Namespace) -> int:
    """`mlops trace ID`: the chain from the flow run to a request, or a run's whole tree."""
    spans = telemetry.read_spans(settings.telemetry_dir)
    found = telemetry.find_trace(spans, args.id)
    if found is None:
        print(_not_found(settings, args.id, spans), file=sys.stderr)
        return 1
    trace_id, span = found
    if args.json:
        print(json.dumps([_as_dict(s) for s in spans if s.trace_id == trace_id], indent=2, default=str))
        return 0
    print(f"trace {trace_id}")
    telemetry.build_tree(spans, trace_id)
    chain = telemetry.ancestors(spans, span)
    for depth, step in enumerate(chain[:-1]):
        print(_line(step, depth))
    _print_tree(span, len(chain) - 1)
    return 0


def logs(settings: Settings, args: argparse.Namespace) -> int:
    """`mlops logs [RUN_ID]`: the scoring requests of a flow run (from the spans), else the endpoint's latest."""
    if args.run_id:
        spans = telemetry.read_spans(settings.telemetry_dir)
        found = telemetry.find_trace(spans, args.run_id)
        if found is None:
            print(_not_found(settings, args.run_id, spans), file=sys.stderr)
            return 1
        telemetry.build_tree(spans, found[0])
        requests = [_request_of(s) for s in _descendants(found[1]) if s.name == "POST /score"]
    else:
        log = settings.home / "endpoints" / settings.endpoint_name / "server.log"
        if not rotated_files(log):
            print(f"mlops logs: endpoint {settings.endpoint_name} has no request log yet ({log})", file=sys.stderr)
            return 1
        requests = [r for r in _read_log(log) if r.get("path") == "/score"]
    shown = requests[-args.last :] if args.last else requests
    if args.json:
        print(json.dumps(shown, indent=2))
        return 0
    print(f"{len(shown)} of {len(requests)} request(s)")
    for r in shown:
        when = datetime.fromtimestamp(float(r["time"]), UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        print(
            f"{when}  {r['request_id'][:12]:<12}  {r['status']}  {r.get('deployment') or '-':<8}  "
            f"{r.get('model') or '-'}  {r.get('predictions', 0)} prediction(s)  {r['latency_ms']:.2f} ms  "
            f"trace {r.get('trace_id') or '-'}"
        )
    return 0


def _line(span: Span, depth: int) -> str:
    a = span.attributes
    indent = "  " * depth + ("└ " if depth else "")
    status = "" if span.status in ("OK", "UNSET") else f"  {span.status}"
    if span.run_type in ("flow", "task"):
        flow = f" {a['mlops.flow']}" if "mlops.flow" in a else ""
        return f"{indent}{span.run_type} run{flow} {span.name} [{a.get('prefect.run.id', '?')}] {span.seconds:.3f} s{status}"
    if "mlops.request_id" in a:
        answer = f"  {a['mlops.answer']}" if "mlops.answer" in a else ""
        return (
            f"{indent}{span.name} → endpoint {a.get('mlops.endpoint', '?')}"
            f" deployment {a.get('mlops.deployment') or '-'} model {a.get('mlops.model') or '-'}"
            f" → {a.get('http.response.status_code', '?')}, {a.get('mlops.predictions', 0)} prediction(s){answer}"
            f"  [request {a['mlops.request_id']}] {span.seconds * 1000:.2f} ms{status}"
        )
    return f"{indent}{span.name} ({span.service}) {span.seconds:.3f} s{status}"


def _print_tree(span: Span, depth: int) -> None:
    print(_line(span, depth))
    for child in span.children:
        _print_tree(child, depth + 1)


def _descendants(span: Span) -> list[Span]:
    found: list[Span] = []
    for child in span.children:
        found += [child, *_descendants(child)]
    return sorted(found, key=lambda s: s.start)


def _request_of(span: Span) -> dict[str, Any]:
    a = span.attributes
    return {
        "time": span.start,
        "request_id": a["mlops.request_id"],
        "trace_id": span.trace_id,
        "span_id": span.span_id,
        "path": span.name.partition(" ")[2],
        "status": a.get("http.response.status_code", 0),
        "deployment": a.get("mlops.deployment", ""),
        "model": a.get("mlops.model", ""),
        "predictions": a.get("mlops.predictions", 0),
        "latency_ms": span.seconds * 1000,
    }


def _read_log(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of a request log and its rotated files (server.log.4 … server.log.1, server.log), oldest first."""
    lines = []
    texts = [line for file in rotated_files(path) for line in file.read_text(errors="replace").splitlines()]
    for text in texts:
        if text.startswith("{"):
            try:
                lines.append(json.loads(text))
            except json.JSONDecodeError:
                continue
    return lines


def _not_found(settings: Settings, identifier: str, spans: list[Span]) -> str:
    where = telemetry.destination()
    if where != "files":
        return f"mlops: spans go to {where} here, not to {settings.telemetry_dir}: look up {identifier} there"
    if not spans:
        return f"mlops: no spans under {settings.telemetry_dir} yet (is MLOPS_TRACING off?)"
    return f"mlops: no flow run, task run, request or trace {identifier!r} in the {len(spans)} spans under {settings.telemetry_dir}"


def _as_dict(span: Span) -> dict[str, Any]:
    return {k: v for k, v in vars(span).items() if k != "children"}


def register(commands: Subparsers) -> None:
    add(
        commands,
        "trace",
        Command("trace", trace),
        help="a request's path from its flow run, or a flow run's spans",
        arguments=_trace_arguments,
    )
    add(
        commands,
        "logs",
        Command("logs", logs),
        help="the endpoint requests of a flow run, or the endpoint's latest",
        arguments=_logs_arguments,
    )


def _trace_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", help="a request id (x-ms-request-id), a flow or task run id, or a trace id")
    parser.add_argument("--json", action="store_true", help="print the trace's spans as JSON")


def _logs_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_id", nargs="?", help="a flow or task run id (default: the endpoint's request log)")
    parser.add_argument("--last", type=int, default=20, help="show the newest N (default 20; 0: all)")
    json_argument(parser)
