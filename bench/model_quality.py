"""A fixed set of 20 questions with checkable answers, asked of each embedded model in the default catalog at
temperature 0, so that the next change of default model is a measured one.

    PYTHONPATH=src .venv/bin/python bench/model_quality.py [--out bench/results/model-quality.md]

Each model runs in llama-server with the command line the gateway uses (one sequence); an answer counts when its
pattern (case-insensitive) is found in the first 64 tokens. Patterns never appear in their question, so a model
that only echoes the question scores nothing.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from cbgate.config import default_catalog
from cbgate.providers.local.child import free_port
from cbgate.providers.local.command import API_KEY_ENV, EngineOptions
from cbgate.providers.local.source import resolve_model_file

QUESTIONS = [
    ("What is 2+2?", r"\b4\b|four"),
    ("What is 10 minus 3?", r"\b7\b|seven"),
    ("What is 5 times 6?", r"\b30\b|thirty"),
    ("What is the capital of France?", r"paris"),
    ("What is the capital of Japan?", r"tokyo"),
    ("What color is the sky on a clear day?", r"blue"),
    ("How many days are in a week?", r"\b7\b|seven"),
    ("How many legs does a spider have?", r"\b8\b|eight"),
    ("What is the opposite of hot?", r"cold"),
    ("What is the largest planet in our solar system?", r"jupiter"),
    ("What is the chemical formula of water?", r"h2o|h₂o"),
    ("Who wrote Romeo and Juliet?", r"shakespeare"),
    ("At what temperature in Celsius does water freeze?", r"(?<![\d.\-])0(?:\.0+)?\s*(?:°|degrees)|\bzero\b"),
    ("How do you say 'hello' in French?", r"bonjour"),
    ("What language is spoken in Brazil?", r"portuguese"),
    ("Which farm animal says 'moo'?", r"\bcows?\b"),
    ("How many hours are in a day?", r"\b24\b|twenty-four"),
    ("Spell the word 'cat' backwards.", r"\bt-?a-?c\b"),
    ("What gas do plants take in from the air for photosynthesis?", r"carbon dioxide|co2|co₂"),
    ("At what temperature in Celsius does water boil at sea level?", r"\b100\b|one hundred"),
]
MAX_TOKENS = 64


class Engine:
    def __init__(self, model: Path, log: Path):
        self.options = EngineOptions.from_deployment(model, {"parallel": 1, "n_ctx": 2048}, dict(os.environ))
        self.port, self.key = free_port(), "bench-quality-key"
        self.url = f"http://127.0.0.1:{self.port}"
        with log.open("ab") as out:
            self.proc = subprocess.Popen(self.options.argv(self.port), stdout=out, stderr=out,
                                         env={**os.environ, API_KEY_ENV: self.key})
        deadline = time.monotonic() + 180
        while True:
            try:
                if requests.get(self.url + "/health", timeout=2).ok:
                    break
            except requests.RequestException:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"llama-server did not start; see {log}")
            time.sleep(0.2)

    def ask(self, question: str) -> str:
        body = {"messages": [{"role": "user", "content": question}], "temperature": 0, "max_tokens": MAX_TOKENS}
        r = requests.post(self.url + "/v1/chat/completions", json=body, timeout=300,
                          headers={"Authorization": f"Bearer {self.key}"})
        r.raise_for_status()
        return r.json()["choices"][0]["message"]["content"] or ""

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def score(name: str, model: Path, log: Path) -> list[tuple[str, str, bool]]:
    engine = Engine(model, log)
    try:
        rows = []
        for question, pattern in QUESTIONS:
            answer = engine.ask(question)
            rows.append((question, answer, re.search(pattern, answer, re.I) is not None))
            print(f"{name}: {'ok ' if rows[-1][2] else 'no '} {question} -> {answer[:80]!r}", file=sys.stderr)
        return rows
    finally:
        engine.stop()


def report(results: dict[str, list[tuple[str, str, bool]]]) -> str:
    lines = ["# Embedded model quality (bench/model_quality.py)", "",
             f"{len(QUESTIONS)} questions at temperature 0, {MAX_TOKENS} tokens at most; an answer counts when "
             "its pattern is found.", "", "| model | score |", "|---|---|"]
    lines += [f"| {name} | {sum(ok for *_, ok in rows)}/{len(rows)} |" for name, rows in results.items()]
    for name, rows in results.items():
        lines += ["", f"## {name}", "", "| question | answer | counted |", "|---|---|---|"]
        lines += [f"| {q} | {a[:120].replace('|', '/').replace(chr(10), ' ')} | {'yes' if ok else 'no'} |"
                  for q, a, ok in rows]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the markdown report here too")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for model in default_catalog():
            for deployment in model.deployments:
                if deployment.kind == "local":
                    path = resolve_model_file(deployment.options["source"], Path(tmp))
                    results[model.name] = score(model.name, path, Path(tmp) / f"{model.name}.log")
    text = report(results)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
