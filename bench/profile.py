#!/usr/bin/env python3
"""Profile one cbgate worker on the chat hot path: the benchmark's servers (bench/run.py), wrk at 32
clients, and py-spy sampling the worker meanwhile (only the thread holding the GIL: on a loaded machine a
thread waiting for it would otherwise count as busy); writes the summary (bench/pyspy_summary.py) per mode.

    python3 -m venv bench/.venv-tools && bench/.venv-tools/bin/pip install py-spy   # once, not in .venv
    python3 bench/profile.py [--seconds 8] [--modes json,sse] [--out bench/results/profile]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402

PY_SPY = run.BENCH / ".venv-tools" / "bin" / "py-spy"


def commit() -> str:
    return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                          cwd=run.REPO).stdout.strip()


def main(argv: list[str]) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=float, default=8)
    p.add_argument("--modes", default="json,sse")
    p.add_argument("--out", default=str(run.BENCH / "results" / "profile"), help="prefix of the written files")
    args = p.parse_args(argv)
    if not PY_SPY.exists():
        sys.exit(f"no {PY_SPY}: python3 -m venv bench/.venv-tools && bench/.venv-tools/bin/pip install py-spy")
    procs = run.Processes()
    try:
        upstream = run.free_port()
        run.start_fake_upstream(procs, upstream)
        gw = run.start_cbgate(procs, run.free_port(), upstream, run.clean_env(), 1)
        for mode in args.modes.split(","):
            run.check_once(gw, mode)
            run.run_wrk(gw, mode, 32, 3)  # warm: the token encoding loads in the background at first
            raw = run.RUN / f"profile-{mode}.raw"
            result: dict = {}
            load = run.load_average()
            wrk = threading.Thread(target=lambda: result.update(run.run_wrk(gw, mode, 32, args.seconds + 3)))
            wrk.start()
            subprocess.run([str(PY_SPY), "record", "--pid", str(procs.pid("cbgate")), "-r", "250", "-d",
                            str(round(args.seconds)), "-f", "raw", "-o", str(raw), "--nonblocking",
                            "--gil"],
                           check=True, capture_output=True, timeout=args.seconds + 60)
            wrk.join()
            summary = subprocess.run([sys.executable, str(run.BENCH / "pyspy_summary.py"), str(raw), "--top", "60"],
                                     check=True, capture_output=True, text=True).stdout
            header = (f"# py-spy, one cbgate worker, wrk -c32 {mode}: {result['rps']:.0f} req/s while sampled; "
                      f"load {load}; commit {commit()}\n")
            Path(f"{args.out}-{mode}.txt").write_text(header + summary)
            print(header + summary[:3000])
    finally:
        procs.stop_all()


if __name__ == "__main__":
    main(sys.argv[1:])
