"""A longer fuzz campaign than CI runs: the tests in tests/fuzz with CBGATE_FUZZ_SCALE times their inputs,
randomised (CI's run is deterministic), printing what each fuzzer tried and saw.

    python3 bench/fuzz.py            # scale 20: 36,000 inputs, about 20 minutes on 2 shared cores
    python3 bench/fuzz.py --scale 5  # 9,000 inputs, about 5 minutes (the README's figures)

Exits non-zero when any input broke the rule in tests/fuzz/rules.py; Hypothesis prints the failing input
and a @reproduce_failure line to replay it.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=20.0, help="times the CI number of inputs (default 20)")
    args = parser.parse_args()
    env = {**os.environ, "CBGATE_FUZZ_SCALE": str(args.scale)}
    python = ROOT / ".venv" / "bin" / "python"
    command = [str(python if python.exists() else sys.executable), "-m", "pytest", "tests/fuzz", "-q", "-s",
               "-p", "no:logging", "-p", "no:cacheprovider"]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    # -q prints a test's dot and then its output on the same line: take each figure from "fuzz " on
    figures = [line[line.index("fuzz "):] for line in result.stdout.splitlines() if "fuzz " in line
               and "inputs" in line]
    print("\n".join(figures))
    print(result.stdout.splitlines()[-1] if result.stdout else result.stderr[-2000:])
    if result.returncode:
        print(result.stdout[-6000:], file=sys.stderr)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
