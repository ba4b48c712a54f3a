"""``POST /explain``: word attributions of the predictions, bounded tighter than /predict."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from inference.saved_models import save_untrained

from bertkit.inference.predictor import Predictor
from bertkit.inference.serving import PATHS, ServeOptions, create_app

pytestmark = pytest.mark.usefixtures("one_torch_thread")

OPTIONS = ServeOptions(max_texts=8, max_chars=400, max_explain_texts=2, max_explain_chars=40, explain_steps=8)


@pytest.fixture(scope="module")
def client(tiny_bert, tmp_path_factory):
    model = save_untrained("classify", tiny_bert, tmp_path_factory.mktemp("serve_explain") / "model")
    with TestClient(create_app(Predictor.load(model), OPTIONS)) as c:
        yield c


def test_explain_answers_words_and_scores_per_input(client):
    inputs = ["alice went to paris", {"text": "bob saw oslo"}]
    response = client.post("/explain", json={"inputs": inputs, "method": "ig"})
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["input"] for r in results] == [0, 1]
    assert [w["text"] for w in results[1]["words"]] == ["bob", "saw", "oslo"]
    for result in results:
        assert len(result["scores"]) == len(result["words"])
        assert result["target"] == f"class {result['prediction']['label']}"
        assert result["completeness_error"] is not None
    assert "/explain" in PATHS
    assert 'path="/explain"' in client.get("/metrics").text


def test_the_method_defaults_to_ig_and_occlusion_is_served(client):
    default = client.post("/explain", json={"inputs": ["bob saw oslo"]}).json()["results"]
    assert default[0]["method"] == "ig"
    occluded = client.post("/explain", json={"inputs": ["bob saw oslo"], "method": "occlusion"})
    assert occluded.status_code == 200 and occluded.json()["results"][0]["method"] == "occlusion"


@pytest.mark.parametrize(
    ("body", "status", "limit"),
    [
        ({"inputs": ["bob", "saw", "oslo"]}, 413, "max_explain_texts"),  # /predict would take 8
        ({"inputs": ["bob went to lima and then to oslo today with dave"]}, 422, "max_explain_chars"),
        ({"inputs": ["bob went to lima " * 30]}, 422, "max_chars"),
    ],
)
def test_requests_over_the_bounds_are_refused_naming_the_limit(client, body, status, limit):
    response = client.post("/explain", json=body)
    assert response.status_code == status
    assert response.json()["limit"] == limit


def test_an_unknown_method_or_a_malformed_body_is_422(client):
    for body in ({"inputs": ["bob"], "method": "lime"}, {"texts": ["bob"]}):
        response = client.post("/explain", json=body)
        assert response.status_code == 422 and "inputs" in response.json()["error"]


def test_explanations_and_predictions_never_use_the_model_at_once(client, monkeypatch):
    # captum hooks the shared model's embeddings while it explains: a prediction run then would read
    # the explained text's embeddings. Both hold the service's model lock.
    import bertkit.inference.explain as explain

    service = client.app.state.service
    seen = []
    real = explain.explain_records

    def spy(*args, **kwargs):
        seen.append(service.model_lock.locked())
        return real(*args, **kwargs)

    monkeypatch.setattr(explain, "explain_records", spy)
    predict_records = service.predictor.predict_records

    def predict_spy(records):
        seen.append(service.model_lock.locked())
        return predict_records(records)

    monkeypatch.setattr(service.predictor, "predict_records", predict_spy)
    assert (
        client.post("/explain", json={"inputs": ["bob saw oslo"], "method": "occlusion"}).status_code == 200
    )
    assert client.post("/predict", json={"inputs": ["bob saw oslo"]}).status_code == 200
    assert seen and all(seen)


def test_an_int8_model_refuses_integrated_gradients_and_explains_by_occlusion(tiny_bert, tmp_path):
    model = save_untrained("classify", tiny_bert, tmp_path / "model")
    with TestClient(create_app(Predictor.load(model, precision="int8"), OPTIONS)) as c:
        refused = c.post("/explain", json={"inputs": ["bob saw oslo"], "method": "ig"})
        assert refused.status_code == 422 and "method occlusion" in refused.json()["error"]
        occluded = c.post("/explain", json={"inputs": ["bob saw oslo"], "method": "occlusion"})
        assert occluded.status_code == 200
        assert [w["text"] for w in occluded.json()["results"][0]["words"]] == ["bob", "saw", "oslo"]
