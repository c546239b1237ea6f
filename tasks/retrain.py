"""The retraining policy: what drift or a degraded live metric does, once per cooldown window.

The monitor and labels flows decide here, and only here, whether a signal (cause `drift` or `degraded`, for one model
version) becomes `mlops.retrain.requested` (which prefect.yaml's train-register trigger follows), a
`mlops.retrain.suggested` event with an artifact saying why (a person starts it), or nothing. A signal whose model
version and cause already led to a request (or, under `suggest`, a suggestion) within `MLOPS_RETRAIN_COOLDOWN_HOURS` is
deduplicated. The ledger that remembers this, and the last drift verdict and live metric `mlops status` shows, is
`<MLOPS_HOME>/retrain.json`, read and written under a file lock (monitor runs may run at once).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from infra.settings import Settings
from tasks._events import chain_label

LEDGER_FILE = "retrain.json"
REQUESTED_EVENT = "mlops.retrain.requested"
SUGGESTED_EVENT = "mlops.retrain.suggested"
_KEPT = 200  # ledger entries kept (the newest)

Cause = Literal["drift", "degraded"]
Action = Literal["requested", "suggested", "suppressed", "off"]


@dataclass(frozen=True)
class Signal:
    """Why a retrain may be due: the model version (`name:version`) it concerns, the cause, a sentence saying
    what was seen, and the data a retrain should train on ("" for the configured training data)."""

    model: str
    cause: Cause
    reason: str
    training_data: str = ""

    @property
    def key(self) -> str:
        return f"{self.model}|{self.cause}"


@dataclass(frozen=True)
class Verdict:
    """What the policy made of a signal, why, and until when (epoch seconds) the same signal is deduplicated."""

    action: Action
    reason: str
    cooldown_ends: float | None = None


def decide(entries: list[dict[str, Any]], signal: Signal, policy: str, now: float, cooldown_seconds: float) -> Verdict:
    """The policy's answer to `signal`, given the ledger's `entries` (pure: the caller records what it acts on).

    `retrain`: a request, unless one was made for the same model version and cause within the cooldown. `suggest`:
    a suggestion, unless a request or a suggestion was. `off`: nothing."""
    if policy == "off":
        return Verdict("off", "MLOPS_RETRAIN_POLICY=off: drift and degradation start no retraining")
    blocking = ("requested",) if policy == "retrain" else ("requested", "suggested")
    active = [e for e in entries if e["key"] == signal.key and e["action"] in blocking and e["until"] > now]
    if active:
        last = max(active, key=lambda e: e["at"])
        return Verdict(
            "suppressed",
            f"deduplicated: a retrain was already {last['action']} for {signal.model} ({signal.cause}) at "
            f"{_stamp(last['at'])}; the cooldown ends at {_stamp(last['until'])}",
            last["until"],
        )
    action: Action = "requested" if policy == "retrain" else "suggested"
    return Verdict(action, f"{signal.cause} of {signal.model}: {signal.reason}", now + cooldown_seconds)


def cooldown_ends(entries: list[dict[str, Any]], now: float) -> float | None:
    """When the last running cooldown ends (None when none runs)."""
    running = [e["until"] for e in entries if e["action"] in ("requested", "suggested") and e["until"] > now]
    return max(running, default=None)


def _stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")


class Ledger:
    """`<home>/retrain.json`: the signals acted on (`entries`), the last drift verdict and the last live metric."""

    def __init__(self, home: Path) -> None:
        self.path = home / LEDGER_FILE

    def read(self) -> dict[str, Any]:
        try:
            document = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {"entries": []}
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(
                f"{self.path} is not a readable retrain ledger ({exc}); delete it to start afresh"
            ) from exc
        return document if isinstance(document, dict) else {"entries": []}

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with (self.path.parent / f"{LEDGER_FILE}.lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def update(self, change: Callable[[dict[str, Any]], Any]) -> Any:
        """Read, `change(document)` in place, write atomically, all under the lock; returns what `change` returns."""
        with self._locked():
            document = self.read()
            document.setdefault("entries", [])
            answer = change(document)
            document["entries"] = document["entries"][-_KEPT:]
            temporary = self.path.with_suffix(f".{os.getpid()}.tmp")
            temporary.write_text(json.dumps(document, indent=2) + "\n")
            temporary.replace(self.path)
        return answer

    def consider(self, signal: Signal, policy: str, cooldown_seconds: float, now: float | None = None) -> Verdict:
        """Decide on `signal` and record the decision, in one locked step (two runs at once decide one after the
        other, so one drift episode requests one retrain)."""
        moment = time.time() if now is None else now

        def change(document: dict[str, Any]) -> Verdict:
            verdict = decide(document["entries"], signal, policy, moment, cooldown_seconds)
            if verdict.action in ("requested", "suggested", "suppressed"):
                document["entries"].append(
                    {
                        "key": signal.key,
                        "model": signal.model,
                        "cause": signal.cause,
                        "action": verdict.action,
                        "at": moment,
                        "until": verdict.cooldown_ends if verdict.action != "suppressed" else moment,
                        "reason": verdict.reason,
                    }
                )
            return verdict

        verdict: Verdict = self.update(change)
        return verdict

    def note(self, what: str, record: dict[str, Any]) -> None:
        """Keep the last `drift` verdict or `live` metric (for `mlops status`)."""

        def change(document: dict[str, Any]) -> None:
            document[f"last_{what}"] = {"at": time.time(), **record}

        self.update(change)


def loop_status(settings: Settings, now: float | None = None) -> dict[str, Any]:
    """The loop as `mlops status` shows it: the policy, the cooldown, the last drift verdict and live metric."""
    moment = time.time() if now is None else now
    document = Ledger(settings.home).read()
    ends = cooldown_ends(document.get("entries", []), moment)
    return {
        "policy": settings.retrain_policy,
        "cooldown_hours": settings.retrain_cooldown_hours,
        "cooldown_ends": _stamp(ends) if ends else None,
        "last_drift": document.get("last_drift"),
        "last_live_metric": document.get("last_live"),
    }


@task(name="decide-retrain", cache_policy=NO_CACHE)
def decide_retrain(settings: Settings, signal: Signal) -> Verdict:
    """Apply MLOPS_RETRAIN_POLICY to `signal`: emit `mlops.retrain.requested` (train-register follows it under
    `mlops platform up`), or `mlops.retrain.suggested` with a `retrain-suggested` artifact, or nothing.

    Inside another flow (the `pipeline`) nothing is decided or recorded: that flow's events start nothing."""
    logger = get_run_logger()
    chain = chain_label()
    if chain["mlops.chain"] != "true":
        logger.info("%s inside another flow run: no retraining is requested from here", signal.cause)
        return Verdict("off", "inside another flow run: its events start nothing")
    verdict = Ledger(settings.home).consider(signal, settings.retrain_policy, settings.retrain_cooldown_hours * 3600)
    logger.info("retrain policy %s: %s (%s)", settings.retrain_policy, verdict.action, verdict.reason)
    if verdict.action not in ("requested", "suggested"):
        return verdict
    name, _, version = signal.model.rpartition(":")
    payload = {**asdict(signal), "name": name, "version": version, "policy": settings.retrain_policy}
    payload["cooldown_ends"] = _stamp(verdict.cooldown_ends) if verdict.cooldown_ends else None
    emit_event(
        event=REQUESTED_EVENT if verdict.action == "requested" else SUGGESTED_EVENT,
        resource={"prefect.resource.id": f"mlops.model.{name}", "prefect.resource.name": name, **chain},
        payload=payload,
    )
    if verdict.action == "suggested":
        command = "mlops train" + (f" --data {signal.training_data}" if signal.training_data else "")
        create_markdown_artifact(
            key="retrain-suggested",
            description=f"retraining suggested: {signal.cause} of {signal.model}",
            markdown="\n".join(
                [
                    f"# Retraining suggested: {signal.cause} of {signal.model}",
                    "",
                    f"- why: {signal.reason}",
                    "- MLOPS_RETRAIN_POLICY=suggest, so nothing was started",
                    f"- to retrain (the candidate must still beat the serving model at the gate): `{command}`",
                    f"- the same suggestion is not repeated before {payload['cooldown_ends']} UTC",
                ]
            ),
        )
    return verdict
