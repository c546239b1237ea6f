"""The command the platform's process worker runs for each flow run: Prefect's engine (`python -m prefect.engine`,
which reads the flow run's id from its argument or environment), and then a quick end.

After the flow run, everything the run loaded (Prefect, pandas, scikit-learn, the flow's modules) is frozen out of
the garbage collector (`gc.freeze`): the interpreter's collection at exit then skips it, which took ~0.7 s of CPU a
flow run on this 2-core machine, paid by whatever else runs there (issue 27; `mlops` itself does the same)."""

from __future__ import annotations

import gc
import os
import runpy


def main() -> None:
    if os.environ.get("PREFECT_API_URL", "").startswith("http://"):  # no TLS spoken: no certificate bundle to load
        os.environ.setdefault("PREFECT_API_TLS_INSECURE_SKIP_VERIFY", "true")  # (temporary_server.api_settings)
    try:
        runpy.run_module("prefect.engine", run_name="__main__", alter_sys=True)
    finally:
        gc.freeze()


if __name__ == "__main__":
    main()
