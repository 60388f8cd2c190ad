#!/usr/bin/env python3
"""The cbgate benchmark: the gateway, the fake upstream called directly, and LiteLLM proxy fronting the
same fake, measured in one run with wrk (requests/s, p50/p99), non-streaming and streaming, 1 and 32
clients. Prints a table with ratios and writes bench/results/latest.md. See bench/README.md."""
from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import configs  # noqa: E402  (bench/ is not a package; its runner is a script)
import baseline  # noqa: E402

BENCH = configs.BENCH_DIR
REPO = BENCH.parent
RUN = BENCH / ".run"  # scratch space for one run: data dir, nginx prefix, logs (git-ignored)
LITELLM_BIN = BENCH / ".venv-litellm" / "bin" / "litellm"
CBGATE_BIN = REPO / ".venv" / "bin" / "cbgate"
TARGETS = ("direct", "cbgate", "base", "litellm")  # base: cbgate at an older commit (--base)
DEFAULT_BASE = "a4df6eb"  # before the third wave (issue 17 measures against it)
TARGETS_RPS = {"json": 1500, "sse": 600}  # issue 3, one worker, 32 clients


@dataclass
class Target:
    name: str
    urls: dict[str, str]  # mode (json|sse) -> URL to POST
    key: str = ""
    note: str = ""  # what the report should say about how it was set up
    pid: int | None = None  # the serving process, whose CPU time each cell reads (None: not read)
    models: dict[str, str] = field(default_factory=lambda: {"json": configs.MODEL_JSON, "sse": configs.MODEL_SSE})


@dataclass
class Cell:
    mode: str  # json | sse
    clients: int
    target: str
    result: dict
    load: str


# ---------------------------------------------------------------- processes

class Processes:
    """Starts the servers with their output in RUN/logs and stops every one of them (only those) at the end."""

    def __init__(self):
        self.running: list[tuple[str, subprocess.Popen]] = []
        (RUN / "logs").mkdir(parents=True, exist_ok=True)

    def start(self, name: str, argv: list[str], env: dict | None = None, cwd: Path | None = None):
        log = open(RUN / "logs" / f"{name}.log", "wb")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                start_new_session=True)
        self.running.append((name, proc))
        return proc

    def log_tail(self, name: str, lines: int = 30) -> str:
        text = (RUN / "logs" / f"{name}.log").read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def pid(self, name: str) -> int:
        return next(p.pid for n, p in self.running if n == name)

    def stop_all(self) -> None:
        """Last started first, each gone before the next, so no proxy outlives the fake upstream."""
        for _, proc in reversed(self.running):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)  # its own session: the server and its children
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(procs: Processes, name: str, url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    proc = dict(procs.running)[name]
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{name} exited while starting; the end of its log:\n{procs.log_tail(name)}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers HTTP: up
        except OSError:
            time.sleep(0.2)
    sys.exit(f"{name} did not answer {url} within {timeout:.0f} s; the end of its log:\n{procs.log_tail(name)}")


def start_fake_upstream(procs: Processes, port: int) -> Target:
    prefix = RUN / "nginx"
    conf = configs.write_fake_upstream(prefix, port)
    procs.start("nginx", ["nginx", "-p", str(prefix), "-c", str(conf), "-e", "stderr"])
    wait_ready(procs, "nginx", f"http://127.0.0.1:{port}/", 10)
    return Target("direct", {m: configs.upstream_url(port, model) + "/chat/completions"
                             for m, model in (("json", configs.MODEL_JSON), ("sse", configs.MODEL_SSE))})


def cbgate_cli(data_dir: Path, *args: str, cli: list[str] | None = None, env: dict | None = None) -> str:
    env = {k: v for k, v in (env or os.environ).items() if not k.startswith("CBGATE_")}  # the data dir decides
    out = subprocess.run([*(cli or [str(CBGATE_BIN)]), *args, "--data-dir", str(data_dir)], check=True,
                         capture_output=True, text=True, env=env)
    return out.stdout.strip().splitlines()[-1]


# Every limit set, and high enough never to refuse: admission does all its checks, and refuses nothing.
NEVER_REACHED_LIMITS = ("--concurrency", "4096", "--rpm", "100000000", "--tpm", "100000000000",
                        "--token-quota", "1000000000000000")


def switch_on_admission(data_dir: Path, env_id: str, **how) -> str:
    try:
        cbgate_cli(data_dir, "limits", "set", "--env", env_id, *NEVER_REACHED_LIMITS, **how)
    except subprocess.CalledProcessError:
        return "admission: not in this build (no `cbgate limits`)"
    return ("admission on (in-process limiter; concurrency, rpm, tpm and token quota all set, none reached), "
            "usage ledger on")


def start_cbgate(procs: Processes, port: int, upstream_port: int, server_env: dict, workers: int,
                 name: str = "cbgate", base: baseline.Baseline | None = None) -> Target:
    """Today's cbgate from the repository's .venv, or (name "base") an older commit from its own venv."""
    data_dir = RUN / name
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)
    (data_dir / "cbgate.toml").write_text(configs.cbgate_toml(upstream_port))
    how = {"cli": base.cli(), "env": base.env(dict(os.environ))} if base else {}
    env_id = cbgate_cli(data_dir, "env", "create", "bench", **how)
    key = cbgate_cli(data_dir, "key", "create", "--env", env_id, **how)
    note = switch_on_admission(data_dir, env_id, **how)
    if base:
        note = f"commit {base.commit} (its own worktree and venv in bench/.run/); {note}"
    else:
        note += "; access log on (INFO, to the server's log file)"
    cli = base.cli() if base else [str(CBGATE_BIN)]
    procs.start(name, [*cli, "serve", "--data-dir", str(data_dir), "--port", str(port),
                       "--workers", str(workers)], env=base.env(server_env) if base else server_env)
    wait_ready(procs, name, f"http://127.0.0.1:{port}/healthz", 60)
    url = f"http://127.0.0.1:{port}/v1/ai/cloudbase/chat/completions"
    return Target(name, {"json": url, "sse": url}, key, note, pid=procs.pid(name))


def start_litellm(procs: Processes, port: int, upstream_port: int, server_env: dict) -> Target:
    master_key = "sk-bench-" + secrets.token_hex(16)
    conf = RUN / "litellm.yaml"
    conf.write_text(configs.litellm_yaml(upstream_port, master_key))
    env = dict(server_env, LITELLM_LOG="ERROR", LITELLM_TELEMETRY="False", DISABLE_ADMIN_UI="True")
    env.pop("DATABASE_URL", None)
    procs.start("litellm", [str(LITELLM_BIN), "--config", str(conf), "--host", "127.0.0.1", "--port", str(port),
                            "--num_workers", "1"], env=env, cwd=RUN)
    wait_ready(procs, "litellm", f"http://127.0.0.1:{port}/health/liveliness", 180)
    url = f"http://127.0.0.1:{port}/v1/chat/completions"
    return Target("litellm", {"json": url, "sse": url}, master_key)


# ---------------------------------------------------------------- measuring

def body_file(target: Target, mode: str) -> Path:
    path = RUN / f"body-{target.name}-{mode}.json"
    path.write_bytes(configs.request_body(target.models[mode], stream=mode == "sse"))
    return path


def must_contain(mode: str) -> str:
    return "data: [DONE]" if mode == "sse" else '"usage"'


def check_once(target: Target, mode: str) -> None:
    """One request before measuring, so a broken target fails loudly instead of as a fast error rate."""
    req = urllib.request.Request(target.urls[mode], data=body_file(target, mode).read_bytes(), method="POST",
                                 headers={"Content-Type": "application/json",
                                          **({"Authorization": f"Bearer {target.key}"} if target.key else {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            body = resp.read().decode()
    except urllib.error.HTTPError as err:
        sys.exit(f"{target.name} {mode}: HTTP {err.code}: {err.read()[:500]!r}")
    if must_contain(mode) not in body:
        sys.exit(f"{target.name} {mode}: unexpected reply: {body[:500]!r}")


def cpu_seconds(pid: int) -> float:
    """The process's CPU time so far, user and kernel, every thread (/proc/PID/stat's utime + stime)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def run_wrk(target: Target, mode: str, clients: int, seconds: float) -> dict:
    argv = ["wrk", "-t1", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
            "-s", str(BENCH / "wrk" / "chat.lua"), target.urls[mode],
            "--", str(body_file(target, mode)), target.key, must_contain(mode)]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("WRK_RESULT ")), None)
    if line is None:
        sys.exit(f"wrk gave no result for {target.name} {mode} c={clients}:\n{out.stdout}\n{out.stderr}")
    result = json.loads(line.removeprefix("WRK_RESULT "))
    result["rps"] = result["requests"] / (result["duration_us"] / 1e6)
    return result


def measure(targets: list[Target], clients: list[int], modes: list[str], seconds: float, warmup: float) -> list[Cell]:
    """Cell by cell, every target in turn, so that drifting machine load hits them alike."""
    cells = []
    for mode in modes:
        for n in clients:
            for target in targets:
                if warmup:
                    run_wrk(target, mode, n, warmup)
                load = load_average()
                cpu = cpu_seconds(target.pid) if target.pid else None
                result = run_wrk(target, mode, n, seconds)
                if cpu is not None:  # what a request costs the server's process, kernel time included: far
                    # steadier than req/s on a shared machine, where the other sessions take the cores
                    result["cpu_us"] = (cpu_seconds(target.pid) - cpu) * 1e6 / max(1, result["requests"])
                cells.append(Cell(mode, n, target.name, result, load))
                print(f"  {mode:4} c={n:<3} {target.name:8} {result['rps']:9.0f} req/s  p50 "
                      f"{result['p50_us'] / 1000:7.2f} ms  p99 {result['p99_us'] / 1000:7.2f} ms  "
                      f"bad {result['bad'] + result['socket_errors']}  cpu/req "
                      f"{result.get('cpu_us', 0):6.0f} us  load {load}", flush=True)
    return cells


# ---------------------------------------------------------------- the run

def clean_env() -> dict:
    """The servers' environment: ours, less anything that would point them at other data or settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CBGATE_", "LITELLM_"))}
    env[configs.UPSTREAM_KEY_ENV] = "sk-upstream-" + secrets.token_hex(16)
    # The default level (info): the access log is on, as in production; its lines go to RUN/logs/.
    env["CBGATE_LOG_LEVEL"] = "INFO"
    env["PYTHONPATH"] = str(REPO / "src")  # this checkout's code, wherever the .venv's install points
    return env


def machine_header(args, argv: list[str], targets: list[Target]) -> list[str]:
    def out(*cmd: str) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO).stdout.strip()
        except OSError:
            return "?"
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), "?")
    commit = out("git", "rev-parse", "--short", "HEAD") + (" (with uncommitted changes)"
                                                          if out("git", "status", "--porcelain", "src") else "")
    litellm = out(str(BENCH / ".venv-litellm" / "bin" / "python"), "-c",
                  "import importlib.metadata as m; print(m.version('litellm'))") if LITELLM_BIN.exists() else "-"
    return [f"## cbgate benchmark, {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC", "",
            f"- command: `{' '.join(['python3', 'bench/run.py', *argv])}`",
            f"- cbgate {commit}, {args.workers} worker(s); LiteLLM {litellm}, 1 worker, no database; "
            f"fake upstream: nginx, 1 process",
            *[f"- {t.name}: {t.note}" for t in targets if t.note],
            f"- machine: {os.cpu_count()} x {cpu}; wrk 1 thread, {args.seconds:g} s per cell after "
            f"{args.warmup:g} s warm-up, {args.rounds} round(s) (the median round's cell is reported); "
            f"load average at start {load_average()}",
            "- every target gets the same body; streams ask for usage (`stream_options.include_usage`), "
            "and every reply is checked (status 200 and `[DONE]` or `usage` present)"]


def parse_args(argv: list[str]):
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--seconds", type=float, default=10, help="measured seconds per cell (default 10)")
    p.add_argument("--warmup", type=float, default=2, help="unmeasured seconds before each cell (default 2)")
    p.add_argument("--clients", default="1,32", help="concurrent connections, comma-separated (default 1,32)")
    p.add_argument("--modes", default="json,sse", help="json (non-streaming), sse (streaming); default both")
    p.add_argument("--targets", default=",".join(TARGETS), help="direct,cbgate,litellm (default all three)")
    p.add_argument("--workers", type=int, default=1, help="cbgate worker processes (default 1)")
    p.add_argument("--base", default=DEFAULT_BASE,
                   help=f"the older commit the `base` target runs (default {DEFAULT_BASE}; see baseline.py)")
    p.add_argument("--rounds", type=int, default=1,
                   help="measure every cell this many times, targets in turn; the report takes the median")
    p.add_argument("--out", default=str(BENCH / "results" / "latest.md"), help="the report ('-' for none)")
    p.add_argument("--hold", action="store_true",
                   help="start the servers, print their URLs and key, and wait (for profiling) instead of measuring")
    args = p.parse_args(argv)
    args.targets = [t for t in args.targets.split(",") if t]
    unknown = set(args.targets) - set(TARGETS)
    if unknown:
        p.error(f"unknown targets: {', '.join(sorted(unknown))}")
    return args


def preflight(args) -> None:
    missing = [tool for tool in ("nginx", "wrk") if shutil.which(tool) is None]
    if missing:
        sys.exit(f"missing {' and '.join(missing)}: apt-get install -y {' '.join(missing)}")
    if "cbgate" in args.targets and not CBGATE_BIN.exists():
        sys.exit(f"no {CBGATE_BIN}: install cbgate into the repository's .venv first (see README)")
    if "litellm" in args.targets and not LITELLM_BIN.exists():
        sys.exit(f"no {LITELLM_BIN}: python3 -m venv bench/.venv-litellm && "
                 "bench/.venv-litellm/bin/pip install 'litellm[proxy]' httptools")


def start_targets(procs: Processes, args) -> list[Target]:
    upstream_port = free_port()
    direct = start_fake_upstream(procs, upstream_port)
    env = clean_env()
    started = {"direct": direct}
    if "cbgate" in args.targets:
        started["cbgate"] = start_cbgate(procs, free_port(), upstream_port, env, args.workers)
    if "base" in args.targets:
        started["base"] = start_cbgate(procs, free_port(), upstream_port, env, args.workers, "base",
                                       baseline.prepare(args.base))
    if "litellm" in args.targets:
        started["litellm"] = start_litellm(procs, free_port(), upstream_port, env)
    return [started[name] for name in TARGETS if name in args.targets]


def hold(targets: list[Target], procs: Processes) -> None:
    for t in targets:
        pids = {n: p.pid for n, p in procs.running}
        print(f"{t.name}: pid {pids.get('nginx' if t.name == 'direct' else t.name)}  key {t.key or '-'}")
        for mode, url in t.urls.items():
            print(f"  {mode}: {url}  body {body_file(t, mode)}")
    print("holding; Ctrl-C stops every server", flush=True)
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass


def main(argv: list[str]) -> None:
    import report

    args = parse_args(argv)
    preflight(args)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped by SIGTERM"))  # still stop the servers
    procs = Processes()
    try:
        targets = start_targets(procs, args)
        modes = [m for m in args.modes.split(",") if m]
        for target in targets:
            for mode in modes:
                check_once(target, mode)
        if args.hold:
            return hold(targets, procs)
        header = machine_header(args, argv, targets)
        print("\n".join(header), flush=True)
        cells = []
        for n in range(args.rounds):  # A/B rounds: the order of targets alternates so drift hits both alike
            order = targets if n % 2 == 0 else list(reversed(targets))
            cells += measure(order, [int(c) for c in args.clients.split(",")], modes, args.seconds, args.warmup)
    finally:
        procs.stop_all()
    text = report.render(cells, header, TARGETS_RPS)
    print("\n" + text)
    if args.out != "-":
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
        print(f"written to {args.out}")


if __name__ == "__main__":
    main(sys.argv[1:])
