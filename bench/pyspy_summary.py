#!/usr/bin/env python3
"""Summarise a py-spy raw profile (`py-spy record -f raw`): the share of samples each function is on the
stack (inclusive) and at the top (self), per thread. Usage: pyspy_summary.py FILE.raw [--top 40] [--match S]"""
from __future__ import annotations

import argparse
import collections
import re


def frames(line: str) -> tuple[list[str], int]:
    stack, _, count = line.rstrip().rpartition(" ")
    return stack.split(";"), int(count)


def short(frame: str) -> str:
    # "func (path/to/module.py:123)" -> "func (module.py)"
    m = re.match(r"(.*) \((.*?):\d+\)$", frame)
    if not m:
        return frame
    path = m.group(2)
    path = path.split("site-packages/")[-1] if "site-packages/" in path else path.split("/src/")[-1]
    return f"{m.group(1)} ({path})"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("raw")
    p.add_argument("--top", type=int, default=40)
    p.add_argument("--match", default="", help="only stacks through a frame containing this text")
    args = p.parse_args()
    total, incl, self_ = 0, collections.Counter(), collections.Counter()
    threads = collections.Counter()
    for line in open(args.raw):
        if not line.strip() or not line.rstrip().rpartition(" ")[2].isdigit():
            continue  # blank, or a piece of a frame name that ran over a line break (a source line py-spy quoted)
        stack, n = frames(line)
        if args.match and not any(args.match in f for f in stack):
            continue
        total += n
        threads[stack[0]] += n
        names = [short(f) for f in stack[1:]] or [stack[0]]
        for name in set(names):
            incl[name] += n
        self_[names[-1]] += n
    print(f"{total} samples")
    print("threads:", ", ".join(f"{t} {n / total:.0%}" for t, n in threads.most_common(6)))
    print(f"\n{'incl':>6} {'self':>6}  function")
    for name, n in incl.most_common(args.top):
        print(f"{n / total:6.1%} {self_[name] / total:6.1%}  {name}")
    print("\nby self time:")
    for name, n in self_.most_common(args.top // 2):
        print(f"{n / total:6.1%}  {name}")


if __name__ == "__main__":
    main()
