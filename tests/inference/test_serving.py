"""The HTTP server: answers equal ``Predictor.predict`` in order however requests were batched, every
limit and malformed body gets its 4xx JSON error, /metrics counts, and every task family is served."""

from __future__ import annotations

import asyncio
import json
import math
import random
import re
from pathlib import Path

import httpx
import pytest
import torch
from conftest import VOCAB, sentence
from fastapi.testclient import TestClient
from inference.live_server import running
from transformers import (
    BertConfig,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertTokenizerFast,
)

from bertkit.cli.app import main
from bertkit.inference.predictor import Predictor
from bertkit.inference.serving import ServeOptions, create_app

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LIMITS = ServeOptions(max_batch=16, max_wait_ms=200, max_request_bytes=4096, max_texts=8, max_chars=400)


def same(got, want, path="") -> None:
    """JSON values equal, numbers to 1e-3: batches pad differently, so the last digits may differ."""
    if isinstance(want, float) or isinstance(got, float):
        assert math.isclose(got, want, abs_tol=1e-3), f"{path}: {got} != {want}"
    elif isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), f"{path}: {got} != {want}"
        for key in want:
            same(got[key], want[key], f"{path}.{key}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), f"{path}: {got} != {want}"
        for i, (g, w) in enumerate(zip(got, want)):
            same(g, w, f"{path}[{i}]")
    else:
        assert got == want, f"{path}: {got!r} != {want!r}"


def expected(predictor: Predictor, inputs: list) -> list[dict]:
    return [r.to_dict() for r in predictor.predict(inputs)]


def metric(text: str, name: str) -> float:
    """The value of one sample line of /metrics (``name`` with its labels, as written)."""
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    assert match, f"{name} not in /metrics"
    return float(match.group(1))


@pytest.fixture(scope="module")
def reference(ner_model) -> Predictor:
    return Predictor.load(ner_model)


@pytest.fixture(scope="module")
def live(ner_model):
    """A real uvicorn serving the NER model with small limits; yields its base URL."""
    with running(create_app(Predictor.load(ner_model), LIMITS)) as url:
        yield url


@pytest.fixture
def client(ner_model):
    with TestClient(create_app(Predictor.load(ner_model), LIMITS)) as c:
        yield c


def test_concurrent_requests_get_predictor_results_in_order_and_share_batches(live, reference):
    rng = random.Random(3)
    requests = [
        [
            sentence(rng, rng.randint(0, 2), rng.randint(0, 2), rng.randint(2, 8))
            for _ in range(rng.randint(1, 3))
        ]
        for _ in range(24)
    ]
    requests[5].append({"text": "alice smith went to paris"})  # the mapping shape too

    async def fire() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=live, timeout=60) as http:
            return await asyncio.gather(
                *(http.post("/predict", json={"inputs": inputs}) for inputs in requests)
            )

    responses = asyncio.run(fire())
    assert [r.status_code for r in responses] == [200] * len(requests)
    for inputs, response in zip(requests, responses):
        same(response.json()["results"], expected(reference, inputs))
    assert any(e["entities"] for r in responses for e in r.json()["results"])  # the model finds entities

    text = httpx.get(f"{live}/metrics").text
    batches = metric(text, "bertkit_batch_requests_count")
    alone = metric(text, 'bertkit_batch_requests_bucket{le="1"}')
    assert batches < len(requests) and batches - alone >= 1  # requests were merged into shared batches
    assert metric(text, "bertkit_inputs_total") >= sum(len(r) for r in requests)


def test_a_long_text_is_windowed_not_cut(live, reference):
    words = ("bob went to lima and then carol met dave in oslo today " * 3).split()
    text = " ".join(words)  # 36 words: several windows of 16 sub-words
    [result] = httpx.post(f"{live}/predict", json={"inputs": [text]}).json()["results"]
    same([result], expected(reference, [text]))
    assert result["entities"] and result["entities"][-1]["end"] > len(text) - 15


def chunks(data: bytes, size: int = 512):
    for i in range(0, len(data), size):
        yield data[i : i + size]


def test_body_over_the_limit_is_refused_by_its_length_and_by_its_bytes(live):
    big = json.dumps({"inputs": ["bob " * 1500]}).encode()
    declared = httpx.post(f"{live}/predict", content=big, headers={"content-type": "application/json"})
    chunked = httpx.post(f"{live}/predict", content=chunks(big))  # no Content-Length: counted as read
    for response in (declared, chunked):
        assert response.status_code == 413
        assert response.json()["limit"] == "max_request_bytes" and "4096" in response.json()["error"]
    assert "content-length" not in chunked.request.headers


@pytest.mark.parametrize(
    ("body", "status", "limit"),
    [
        ({"inputs": ["bob"] * 9}, 413, "max_texts"),
        ({"inputs": ["bob went to lima " * 30]}, 422, "max_chars"),
    ],
)
def test_limits_on_inputs_are_named(client, body, status, limit):
    response = client.post("/predict", json=body)
    assert response.status_code == status
    assert response.json()["limit"] == limit
    assert str({"max_texts": 8, "max_chars": 400}[limit]) in response.json()["error"]


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b'["bob"]', "must be a JSON object"),
        (b'{"texts": ["bob"]}', "must be a JSON object"),
        (b'{"inputs": "bob"}', "must be a JSON object"),
        (b'{"inputs": ["bob"], "extra": 1}', "must be a JSON object"),
        (b'{"inputs": [null]}', "input 0 is null"),
        (b'{"inputs": ["bob", 7]}', "input 1"),
        (b'{"inputs": [{"tokens": [1, 2]}]}', "input 0"),
        (b'{"inputs": ["bob \\udc00"]}', "input 0 holds an unpaired surrogate (U+DC00)"),
        (b'{"inputs": [["bob", "\\ud800"]]}', "input 0 holds an unpaired surrogate (U+D800)"),
    ],
)
def test_malformed_bodies_get_422_with_a_json_error(client, content, says):
    response = client.post("/predict", content=content, headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert says in response.json()["error"]
    assert "Traceback" not in response.text


@pytest.mark.parametrize(
    ("headers", "says"),
    [
        ({"content-type": "text/plain"}, "got 'text/plain'"),  # what a page of another site may post
        ({"content-type": "application/x-www-form-urlencoded"}, "Content-Type: application/json"),
        ({"content-type": "application/json", "content-encoding": "gzip"}, "Content-Encoding 'gzip'"),
    ],
)
def test_a_body_that_is_not_plain_json_is_415(client, headers, says):
    response = client.post("/predict", content=b'{"inputs": ["bob"]}', headers=headers)
    assert response.status_code == 415 and says in response.json()["error"]
    # a charset is fine; no Content-Type at all is read as JSON, as FastAPI does (scripts omit it)
    for fine in ({"content-type": "application/json; charset=utf-8"}, {}):
        assert client.post("/predict", content=b'{"inputs": ["bob"]}', headers=fine).status_code == 200


def test_bound_to_loopback_it_answers_only_requests_addressed_to_localhost(ner_model):
    options = ServeOptions(max_texts=8, max_chars=400, loopback_hosts_only=True)
    with TestClient(create_app(Predictor.load(ner_model), options), base_url="http://localhost:8000") as c:
        assert c.post("/predict", json={"inputs": ["bob"]}).status_code == 200
        for host in ("127.0.0.1:8000", "[::1]:8000", "localhost"):
            assert c.get("/health", headers={"host": host}).status_code == 200, host
        # DNS rebinding: a page at evil.example whose name now resolves to 127.0.0.1
        refused = c.post("/predict", json={"inputs": ["bob"]}, headers={"host": "evil.example:8000"})
        assert refused.status_code == 421 and "localhost only" in refused.json()["error"]


def test_an_unexpected_failure_is_a_generic_500_logged_and_counted(ner_model, caplog):
    predictor = Predictor.load(ner_model)

    def broken(records, desc=None):
        raise RuntimeError("secret internals")

    predictor.predict_records = broken
    with TestClient(create_app(predictor, LIMITS)) as c:
        response = c.post("/predict", json={"inputs": ["bob"]})
        assert response.status_code == 500
        assert response.json() == {"error": "internal server error"}
        assert metric(c.get("/metrics").text, "bertkit_server_errors_total") == 1
    assert "secret internals" in caplog.text


def test_metrics_count_requests_statuses_latency_and_batches(client):
    for inputs in (["bob went to lima"], ["carol", "dave met erin"], [None]):
        client.post("/predict", json={"inputs": inputs})
    client.get("/health")
    text = client.get("/metrics").text
    assert metric(text, 'bertkit_requests_total{path="/predict",code="200"}') == 2
    assert metric(text, 'bertkit_requests_total{path="/predict",code="422"}') == 1
    assert metric(text, 'bertkit_requests_total{path="/health",code="200"}') == 1
    assert metric(text, "bertkit_request_duration_seconds_count") == 3
    assert metric(text, 'bertkit_request_duration_seconds_bucket{le="+Inf"}') == 3
    assert metric(text, "bertkit_inputs_total") == 3
    assert metric(text, "bertkit_batch_inputs_sum") == 3
    assert metric(text, "bertkit_server_errors_total") == 0
    assert "# TYPE bertkit_request_duration_seconds histogram" in text


def test_health_and_info_describe_the_model(client, reference):
    assert client.get("/health").json() == {"status": "ok", "task": "ner"}
    info = client.get("/info").json()
    assert info["task"] == "ner" and info["labels"] == reference.task.labels
    assert info["limits"] == {"max_request_bytes": 4096, "max_texts": 8, "max_chars": 400}
    assert "text" in info["record_fields"] and info["inputs"]


def test_the_page_and_the_docs_are_served_without_outside_urls(client):
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<script>" in page.text and 'id="submit"' in page.text
    assert not re.search(r"https?://", page.text)  # nothing to fetch from elsewhere
    assert client.get("/docs").status_code == 200
    assert "/predict" in client.get("/openapi.json").json()["paths"]


def save_head_model(out: Path, model_class, **config) -> Path:
    """A random tiny BERT with a task head, saved as a plain Hugging Face directory."""
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(VOCAB)}, do_lower_case=True)
    tokenizer.save_pretrained(out)
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=len(VOCAB),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        **config,
    )
    model_class(cfg).save_pretrained(out)
    return out


CLASSIFY = {"id2label": {0: "neg", 1: "neu", 2: "pos"}, "label2id": {"neg": 0, "neu": 1, "pos": 2}}


def relation_model(folder: Path, tiny_bert: Path) -> Path:
    """Two steps of `bertkit finetune re`: enough for a model directory with its marker tokens."""
    rows = [
        {"text": "bob went to lima", "head": {"start": 0, "end": 3}, "tail": {"start": 12, "end": 16},
         "label": "lives_in"},
        {"text": "carol met dave", "head": {"start": 0, "end": 5}, "tail": {"start": 10, "end": 14},
         "label": "knows"},
    ]  # fmt: skip
    data = folder / "re.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows * 4), encoding="utf-8")
    out = folder / "re"
    argv = ["-q", "finetune", "re", "--model", str(tiny_bert), "--train", str(data), "--dev", str(data)]
    assert main([*argv, "--out", str(out), "--max-length", "32", "--train.max_steps", "2"]) == 0
    return out


FAMILIES = {
    "classify": ["bob went home", {"text": "the old cat"}, "a"],
    "qa": [{"question": "who went to lima", "context": "bob went to lima with carol"}] * 2,
    "re": ["<e1>bob</e1> went to <e2>lima</e2>", {"text": "carol met dave", "head": {"start": 0, "end": 5},
                                                  "tail": {"start": 10, "end": 14}}],
}  # fmt: skip


@pytest.mark.parametrize("family", list(FAMILIES))
def test_other_task_families_are_served_unchanged(tmp_path, tiny_bert, family):
    if family == "re":
        model = relation_model(tmp_path, tiny_bert)
    else:
        head = BertForSequenceClassification if family == "classify" else BertForQuestionAnswering
        model = save_head_model(tmp_path / "model", head, **(CLASSIFY if family == "classify" else {}))
    inputs = FAMILIES[family]
    with TestClient(create_app(Predictor.load(model), LIMITS)) as c:
        response = c.post("/predict", json={"inputs": inputs})
        info = c.get("/info").json()
    assert response.status_code == 200, response.text
    same(response.json()["results"], expected(Predictor.load(model), inputs))
    assert info["task"] == family
