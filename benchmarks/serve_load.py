"""Benchmark: `bertkit serve` under load, with micro-batching on and off.

For each mode the script starts `bertkit serve --model DIR` in its own process on a free loopback port,
waits for /health, sends a fixed number of POST /predict requests from N concurrent clients (httpx async,
one input per request unless --inputs-per-request says otherwise), stops at a time cap, and prints
requests/s, p50/p95/p99 latency, the error count (any non-200 answer or failed request; it should be 0)
and the batch-size histogram the server itself counted (/metrics). Loopback only; the clients share the
machine with the server, so their CPU is part of what is measured.

    python benchmarks/serve_load.py --model runs/wnut17 --requests 2000 --clients 32
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from harness import cpu_name  # noqa: E402

# inputs per task when --inputs is not given; a task this does not know needs --inputs
SAMPLES: dict[str, list[Any]] = {
    "ner": ["Alice Smith flew from Paris to Berlin on Monday.", "The match in Tokyo was won by Bob."],
    "classify": ["a gripping, beautifully shot film", "the plot makes no sense at all"],
    "qa": [
        {"question": "Where did Alice fly?", "context": "Alice Smith flew from Paris to Berlin on Monday."}
    ],
    "re": ["The <e1>cup</e1> was full of <e2>tea</e2>.", "The <e1>fire</e1> caused the <e2>smoke</e2>."],
}
MODES = {"on": None, "off": ("--max-batch", "1", "--max-wait-ms", "0")}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(args: argparse.Namespace, mode: str, port: int) -> subprocess.Popen:
    batching = MODES[mode] or ("--max-batch", str(args.max_batch), "--max-wait-ms", str(args.max_wait_ms))
    command = [sys.executable, "-m", "bertkit", "-q", "serve", "--model", args.model, "--port", str(port)]
    command += [
        *batching,
        "--threads",
        str(args.threads),
        "--max-texts",
        str(max(64, args.inputs_per_request)),
    ]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


async def wait_ready(client: Any, server: subprocess.Popen, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"the server exited ({server.returncode}):\n{server.stderr.read()}")
        try:
            response = await client.get("/info")
            if response.status_code == 200:
                return response.json()
        except Exception:  # not listening yet
            pass
        await asyncio.sleep(0.2)
    raise SystemExit("the server did not answer /info in time")


async def load(client: Any, args: argparse.Namespace, inputs: list[Any]) -> tuple[list[float], int, float]:
    """Latencies of the answered requests, the error count, and the wall time of the run."""
    latencies: list[float] = []
    errors, sent = 0, 0
    start = time.perf_counter()
    cap = start + args.time_cap

    async def one_client(k: int) -> None:
        nonlocal errors, sent
        while sent < args.requests and time.perf_counter() < cap:
            i = sent
            sent += 1
            body = {"inputs": [inputs[(i + j) % len(inputs)] for j in range(args.inputs_per_request)]}
            begin = time.perf_counter()
            try:
                response = await client.post("/predict", json=body)
                ok = response.status_code == 200
            except Exception:
                ok = False
            if ok:
                latencies.append(time.perf_counter() - begin)
            else:
                errors += 1

    await asyncio.gather(*(one_client(k) for k in range(args.clients)))
    return latencies, errors, time.perf_counter() - start


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def batch_histogram(metrics: str, name: str = "bertkit_batch_inputs") -> dict[str, int]:
    """Batches per size range, from the cumulative buckets of /metrics."""
    buckets = [
        (le, int(float(n))) for le, n in re.findall(rf'^{name}_bucket{{le="([^"]+)"}} (\S+)$', metrics, re.M)
    ]
    out, below, low = {}, 0, 1
    for le, total in buckets:
        high = le if le == "+Inf" else str(int(float(le)))
        label = high if str(low) == high else f"{low}-{high}"
        if total - below:
            out[label] = total - below
        below, low = total, (int(float(le)) + 1 if le != "+Inf" else low)
    return out


async def run_mode(args: argparse.Namespace, mode: str) -> dict[str, Any]:
    import httpx

    port = free_port()
    server = start_server(args, mode, port)
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=60, limits=limits
        ) as client:
            info = await wait_ready(client, server)
            inputs = read_inputs(args.inputs) if args.inputs else SAMPLES.get(info["task"])
            if not inputs:
                raise SystemExit(f"no sample inputs for task {info['task']!r}: pass --inputs FILE")
            await client.post("/predict", json={"inputs": inputs[:1]})  # warm-up, not counted
            before = batch_histogram((await client.get("/metrics")).text)
            latencies, errors, wall = await load(client, args, inputs)
            after = batch_histogram((await client.get("/metrics")).text)
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {
        "mode": mode,
        "task": info["task"],
        "requests": len(latencies) + errors,
        "errors": errors,
        "requests_per_s": len(latencies) / wall,
        "p50_ms": 1000 * percentile(latencies, 50),
        "p95_ms": 1000 * percentile(latencies, 95),
        "p99_ms": 1000 * percentile(latencies, 99),
        "batches": {size: n - before.get(size, 0) for size, n in after.items() if n - before.get(size, 0)},
        "wall_s": wall,
    }


def read_inputs(path: str) -> list[Any]:
    """JSON lines, one input per line, in the shape the model's task takes."""
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="fine-tuned model directory to serve")
    parser.add_argument("--requests", type=int, default=2000, help="requests per mode (default 2000)")
    parser.add_argument("--clients", type=int, default=32, help="concurrent clients (default 32)")
    parser.add_argument("--time-cap", type=float, default=120, help="seconds per mode at most (default 120)")
    parser.add_argument("--inputs-per-request", type=int, default=1)
    parser.add_argument("--inputs", help="JSON lines of inputs (default: samples for the model's task)")
    parser.add_argument("--modes", default="on,off", help="micro-batching on, off, or both (default on,off)")
    parser.add_argument("--max-batch", type=int, default=32, help="--max-batch of the 'on' server")
    parser.add_argument("--max-wait-ms", type=float, default=5.0, help="--max-wait-ms of the 'on' server")
    parser.add_argument(
        "--threads", type=int, default=0, help="the server's --threads (default 0: its cores)"
    )
    parser.add_argument("--json-out", help="also write the figures here")
    args = parser.parse_args()

    print(f"CPU: {cpu_name()}; server --threads {args.threads}; {args.clients} clients on loopback")
    rows = [asyncio.run(run_mode(args, mode)) for mode in args.modes.split(",")]
    columns = ("requests", "errors", "req/s", "p50 ms", "p95 ms", "p99 ms")
    header = f"{'batching':<9} " + " ".join(f"{c:>8}" for c in columns)
    print(header, "-" * len(header), sep="\n")
    for r in rows:
        print(
            f"{r['mode']:<9} {r['requests']:>8} {r['errors']:>8} {r['requests_per_s']:>8.1f} "
            f"{r['p50_ms']:>8.1f} {r['p95_ms']:>8.1f} {r['p99_ms']:>8.1f}"
        )
    for r in rows:
        sizes = ", ".join(f"{size}: {n}" for size, n in r["batches"].items())
        print(f"inputs per model batch, batching {r['mode']}: {sizes}")
    if args.json_out:
        Path(args.json_out).write_text(json.dumps({"cpu": cpu_name(), "rows": rows}, indent=2) + "\n")
    if any(r["errors"] for r in rows):
        raise SystemExit("some requests failed")


if __name__ == "__main__":
    main()
