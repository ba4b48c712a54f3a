"""``bertkit serve``: a fine-tuned model behind HTTP, with a page to try it at ``/``.

fastapi and uvicorn are imported only when the command runs, so ``bertkit --help`` works without them.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

from bertkit.cli.inference import add_adapt_threads_flag, add_precision_flag
from bertkit.errors import BertkitError

SERVER_PACKAGES = ("fastapi", "uvicorn")


def add_parsers(verbs: argparse._SubParsersAction) -> None:
    serve = verbs.add_parser(
        "serve",
        help="serve a fine-tuned model over HTTP (POST /predict, a page to try it at /)",
        allow_abbrev=False,
    )
    serve.add_argument("--model", required=True, metavar="DIR", help="fine-tuned model directory")
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 opens it to the network)",
    )
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument("--engine", default="torch", choices=("torch", "onnx"), help="what runs the model")
    serve.add_argument(
        "--max-batch",
        type=int,
        default=32,
        metavar="N",
        help="inputs run through the model together at most (default 32; 1 turns batching off)",
    )
    serve.add_argument(
        "--max-wait-ms",
        type=float,
        default=5.0,
        metavar="MS",
        help="how long a request waits for others to share its batch (default 5; 0 turns batching off)",
    )
    serve.add_argument(
        "--max-request-bytes",
        type=int,
        default=1_048_576,
        metavar="N",
        help="largest request body; larger ones get 413 (default 1048576)",
    )
    serve.add_argument(
        "--max-texts", type=int, default=64, metavar="N", help="inputs per request at most (default 64)"
    )
    serve.add_argument(
        "--max-chars",
        type=int,
        default=20_000,
        metavar="N",
        help="characters per input at most (its texts together; default 20000); longer ones get 422",
    )
    serve.add_argument(
        "--max-explain-texts",
        type=int,
        default=4,
        metavar="N",
        help="inputs per POST /explain at most (default 4: integrated gradients cost --explain-steps passes)",
    )
    serve.add_argument(
        "--max-explain-chars",
        type=int,
        default=2_000,
        metavar="N",
        help="characters per input to /explain at most (default 2000)",
    )
    serve.add_argument(
        "--explain-steps", type=int, default=50, metavar="N", help="integrated-gradients steps (default 50)"
    )
    serve.add_argument(
        "--batch-size", type=int, default=64, help="windows per forward pass, >= 1 (default 64)"
    )
    serve.add_argument(
        "--threads",
        type=int,
        default=0,
        metavar="N",
        help="CPU threads (default 0: $OMP_NUM_THREADS when set, else the cores this process may use)",
    )
    add_precision_flag(serve)
    add_adapt_threads_flag(serve)
    serve.set_defaults(func=run_serve)


def check_args(args: argparse.Namespace) -> None:
    """Refuse bad numbers and a model that is not there before anything loads."""
    if Path(args.model).is_file():
        raise BertkitError(f"--model {args.model} is a file; it takes a fine-tuned model directory")
    if not Path(args.model).is_dir():
        raise BertkitError(f"--model {args.model}: no such directory")
    if not 0 <= args.port <= 65535:
        raise BertkitError(f"--port must be 0..65535, got {args.port}")
    for flag, value, least in (
        ("--max-batch", args.max_batch, 1),
        ("--max-wait-ms", args.max_wait_ms, 0),
        ("--max-request-bytes", args.max_request_bytes, 1),
        ("--max-texts", args.max_texts, 1),
        ("--max-chars", args.max_chars, 1),
        ("--max-explain-texts", args.max_explain_texts, 1),
        ("--max-explain-chars", args.max_explain_chars, 1),
        ("--explain-steps", args.explain_steps, 1),
        ("--batch-size", args.batch_size, 1),
        ("--threads", args.threads, 0),
    ):
        if value < least:
            raise BertkitError(f"{flag} must be >= {least}, got {value:g}")


def require_server_packages() -> None:
    missing = [name for name in SERVER_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise BertkitError(
            f"bertkit serve needs {' and '.join(missing)}, which are not installed: "
            "pip install 'bertkit[serve]'"
        )


def run_serve(args: argparse.Namespace) -> int:
    check_args(args)
    require_server_packages()
    from bertkit.inference import serving
    from bertkit.inference.predictor import Limits, Predictor

    options = serving.ServeOptions(
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        max_request_bytes=args.max_request_bytes,
        max_texts=args.max_texts,
        max_chars=args.max_chars,
        engine=args.engine,
        threads=args.threads,
        max_explain_texts=args.max_explain_texts,
        max_explain_chars=args.max_explain_chars,
        explain_steps=args.explain_steps,
        loopback_hosts_only=serving.is_loopback(args.host),
    )
    load = {
        "precision": args.precision,
        "batch_size": args.batch_size,
        "threads": args.threads,
        "limits": Limits(max_inputs=args.max_texts, max_chars=args.max_chars),
        "adapt_threads": args.adapt_threads,
    }
    if args.engine != "torch":  # the torch engine is Predictor.load's default
        load["engine"] = args.engine
    predictor = Predictor.load(args.model, **load)
    serving.serve(serving.create_app(predictor, options), args.host, args.port, quiet=args.quiet)
    return 0
