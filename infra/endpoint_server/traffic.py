"""Which deployment answers a request: the weighted split of live traffic, a pinned deployment, and mirror
copies (Azure ML's mirror traffic: a share of unpinned requests also goes to a deployment taking no live
traffic; its answers are logged and dropped)."""

from __future__ import annotations

import asyncio
import bisect
import itertools
import random
import time
import traceback
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from infra.endpoint_server.collect import Recorder
from infra.endpoint_server.errors import HttpError


@dataclass(frozen=True)
class Deployment:
    """One loaded bundle: its `score.py` module (with its own model), where it came from, the bundle's hash, and the
    response headers naming all that (built once, sent with every answer this deployment gives); `micro_batching`:
    its `run()` may get the rows of several requests in one call (the bundle's `micro_batching`)."""

    name: str
    model: str
    bundle: str
    module: ModuleType
    micro_batching: bool = False
    bundle_sha256: str = ""
    headers: tuple[tuple[bytes, bytes], ...] = ()


class TrafficSplit:
    """Live traffic weights (summing to 100, or all 0) and mirror percentages, by deployment name."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.traffic: dict[str, int] = {}
        self.mirror: dict[str, int] = {}
        self._names: list[str] = []
        self._bounds: list[int] = []

    @property
    def ready(self) -> bool:
        """A deployment takes live traffic."""
        return bool(self._names)

    @property
    def serving(self) -> str | None:
        """The deployment taking the largest share of traffic, if any deployment exists."""
        return max(self.traffic, key=lambda n: self.traffic[n], default=None)

    def apply(self, traffic: Mapping[str, int], deployments: Iterable[str]) -> None:
        """Take `traffic` (already checked) over `deployments`; a deployment it does not name takes 0 %."""
        names = [n for n in sorted(traffic) if traffic[n] > 0]
        self._names, self._bounds = names, list(itertools.accumulate(traffic[n] for n in names))
        self.traffic = {name: traffic.get(name, 0) for name in deployments}

    def pick(self, deployments: Mapping[str, Deployment], pinned: bytes | None) -> Deployment:
        """The deployment `pinned` names, else one drawn by the traffic weights."""
        if pinned:
            name = pinned.decode("latin-1")
            if name not in deployments:
                known = ", ".join(sorted(deployments)) or "none"
                raise HttpError(
                    404, f"deployment {name!r} does not exist on endpoint {self.endpoint!r} (deployments: {known})"
                )
            return deployments[name]
        if not self._names:
            raise HttpError(503, f"endpoint {self.endpoint!r} has no deployment taking traffic")
        index = bisect.bisect_right(self._bounds, random.random() * self._bounds[-1])
        return deployments[self._names[min(index, len(self._names) - 1)]]

    def set_traffic(self, traffic: dict[str, Any], deployments: Iterable[str]) -> None:
        """Check and take new weights (a deployment not named takes 0 %); one given live traffic stops being
        mirrored."""
        known = list(deployments)
        unknown = sorted(set(traffic) - set(known))
        if unknown:
            raise HttpError(
                422,
                f"traffic names unknown deployment(s) {', '.join(unknown)}; deployments: {', '.join(sorted(known)) or 'none'}",
            )
        if any(type(v) is not int or not 0 <= v <= 100 for v in traffic.values()):
            raise HttpError(422, f"traffic weights must be whole numbers from 0 to 100, got {traffic}")
        if sum(traffic.values()) not in (0, 100):
            raise HttpError(
                422,
                f"traffic weights must sum to 100 (or 0 to stop all traffic), got {sum(traffic.values())} ({traffic})",
            )
        self.apply({name: traffic.get(name, 0) for name in known}, known)
        self.mirror = {n: p for n, p in self.mirror.items() if self.traffic.get(n, 0) == 0}

    def set_mirror(self, mirror: dict[str, Any], deployments: Iterable[str]) -> None:
        """Azure ML's rules: a mirror target takes no live traffic, and mirrors at most 50 % of requests."""
        unknown = sorted(set(mirror) - set(deployments))
        if unknown:
            raise HttpError(422, f"mirror traffic names unknown deployment(s) {', '.join(unknown)}")
        if any(type(v) is not int or not 0 <= v <= 50 for v in mirror.values()):
            raise HttpError(422, f"mirror traffic must be whole percentages from 0 to 50, got {mirror}")
        live = sorted(n for n, v in mirror.items() if v > 0 and self.traffic.get(n, 0) > 0)
        if live:
            raise HttpError(
                422, f"deployment(s) {', '.join(live)} take live traffic and cannot also receive mirror traffic"
            )
        self.mirror = {n: v for n, v in mirror.items() if v > 0}

    def maybe_mirror(
        self, deployments: Mapping[str, Deployment], text: str, headers: dict[bytes, bytes], recorder: Recorder
    ) -> None:
        """Send a copy of the request to each mirror deployment, at its percentage; the answer is only logged."""
        for name, percent in self.mirror.items():
            target = deployments.get(name)
            if target is not None and random.random() * 100 < percent:
                asyncio.get_running_loop().create_task(_send_mirror_copy(target, text, headers, recorder))


async def _send_mirror_copy(target: Deployment, text: str, headers: dict[bytes, bytes], recorder: Recorder) -> None:
    started = time.perf_counter()
    try:
        answer = await asyncio.to_thread(target.module.run, text)
        status, predictions = 200, len(answer.get("result", ()))
    except ValueError:
        status, predictions = 400, 0
    except Exception:  # noqa: BLE001 - a mirror copy's failure is logged, never answered
        traceback.print_exc()
        status, predictions = 500, 0
    scope = {"method": "POST", "path": "/score", "mirror": True}
    recorder.log(
        scope,
        headers,
        uuid.uuid4().hex,
        status,
        target.name,
        target.model,
        predictions,
        started,
        None,
        target.bundle_sha256,
    )
