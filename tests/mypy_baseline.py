"""mypy on lakevec/ against the recorded baseline: fails on any error not in it.

    python -m tests.mypy_baseline            # check (make lint)
    python -m tests.mypy_baseline --update   # record the errors mypy reports now

Errors are compared without line numbers, so edits elsewhere in a file do not disturb them.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

from mypy import api

BASELINE = Path(__file__).resolve().parent.parent / "mypy-baseline.txt"


def current() -> list[str]:
    out, _, _ = api.run(["lakevec"])
    errors = [line for line in out.splitlines() if ": error: " in line]
    return sorted(re.sub(r"^([^:]+):\d+: ", r"\1: ", line) for line in errors)


def main(argv: list[str]) -> int:
    errors = current()
    if "--update" in argv:
        BASELINE.write_text("".join(e + "\n" for e in errors))
        print(f"mypy baseline: {len(errors)} errors recorded in {BASELINE.name}")
        return 0
    known = Counter(BASELINE.read_text().splitlines()) if BASELINE.exists() else Counter()
    new = Counter(errors) - known
    gone = known - Counter(errors)
    for line in sorted(new.elements()):
        print("new:", line)
    if gone:
        print(f"{sum(gone.values())} baseline errors are fixed: run python -m tests.mypy_baseline --update")
    print(f"mypy: {len(errors)} errors, baseline {sum(known.values())}, new {sum(new.values())}")
    return 1 if new else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
