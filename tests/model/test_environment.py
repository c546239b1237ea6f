"""The environment lock written at training."""

from __future__ import annotations

import platform
import subprocess
import sys
from importlib import metadata

from model import environment


def test_capture_lists_every_locked_library_with_its_running_version() -> None:
    lock = environment.capture()
    assert lock["python"] == platform.python_version()
    assert lock["libraries"] == {name: metadata.version(name) for name in environment.LOCKED_LIBRARIES}
    assert {"scikit-learn", "numpy", "joblib"} <= set(lock["libraries"])


def test_a_distribution_s_top_level_modules_come_from_its_metadata() -> None:
    assert environment.top_level_modules("scikit-learn") == ["sklearn"]  # not the distribution's own name
    assert environment.top_level_modules("joblib") == ["joblib"]
    assert environment.top_level_modules("no-such-distribution-here") == []


def test_libraries_import_in_a_thread_of_their_own_and_a_missing_one_is_left_alone() -> None:
    code = (
        "import sys\n"
        "from model.environment import import_in_background\n"
        "assert 'sklearn' not in sys.modules\n"
        "thread = import_in_background(['no-such-distribution-here', 'scikit-learn'])\n"
        "assert thread.daemon\n"
        "thread.join(60)\n"
        "print('sklearn' in sys.modules, thread.is_alive())\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert (result.returncode, result.stdout.strip()) == (0, "True False"), result.stderr


def test_libraries_named_for_later_import_only_once_the_process_waits() -> None:
    code = (
        "import sys, time\n"
        "from model import environment\n"
        "environment.import_when_waiting(['scikit-learn'])\n"
        "time.sleep(0.5)\n"
        "before = 'sklearn' in sys.modules\n"
        "environment.waiting()\n"
        "environment.waiting()  # a second wait starts nothing more\n"
        "environment.join_imports()\n"
        "print(before, 'sklearn' in sys.modules)\n"
        "environment.import_when_waiting(['pandera'])\n"
        "environment.join_imports()  # never started: forgotten, not imported\n"
        "environment.waiting()\n"
        "print('pandera' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert (result.returncode, result.stdout.split()) == (0, ["False", "True", "False"]), result.stderr
