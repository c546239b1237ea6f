"""The minimal raw-ASGI scoring server the online benchmark measures as its ceiling.

No validation, no auth, no routing, no logging: read the body, parse with the standard library,
predict, answer. `BENCH_MODEL` is the path of a `model.joblib`.
"""

from __future__ import annotations

import json
import os
from typing import Any

import joblib
import numpy as np

_model = joblib.load(os.environ["BENCH_MODEL"])


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    rows = np.asarray(json.loads(body)["data"], dtype=np.float64)
    answer = json.dumps({"result": _model.predict(rows).tolist()}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})
