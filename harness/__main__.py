"""`python -m harness`: set thread counts before numpy/torch/faiss load, then run the CLI."""
from __future__ import annotations

import sys


def _prescan_threads(argv: list[str]) -> int:
    """The --threads value if given, the first of a list (default 1): thread pools must be
    sized before imports (each build job sets its own count again, `set_job_threads`)."""
    for i, arg in enumerate(argv):
        value = arg.split("=", 1)[1] if arg.startswith("--threads=") else (argv[i + 1] if arg == "--threads" and i + 1 < len(argv) else None)
        if value is not None:
            try:
                return max(1, int(value.split(",")[0]))
            except ValueError:
                return 1
    return 1


if __name__ == "__main__":
    from harness.measure.threads import set_env_threads

    set_env_threads(_prescan_threads(sys.argv[1:]))
    from harness.cli import main

    sys.exit(main())
