"""RAG end to end on real parts only: the gateway, the retriever (Qdrant Edge, MiniLM embeddings) and the
inference service's vLLM (CPU) serving the bundled SmolLM2-135M-Instruct. The fact is invented, so the model
can only answer from the retrieved context."""

import uuid

import httpx
import pytest


@pytest.fixture(scope="module")
def rag_to_vllm(make_gateway, edge_retriever, inference_service, llmops_state_dir, corpus):
    collection = f"vllm-kb-{uuid.uuid4().hex[:6]}"
    edge_retriever.create_collection(collection)
    documents = [{"id": corpus.FACT_ID, "text": corpus.FACT}]
    documents += [{"id": d, "text": t} for d, t in corpus.DISTRACTORS.items()]
    edge_retriever.ingest(collection, documents)
    gateway = make_gateway(
        sql_url=f"sqlite+aiosqlite:///{llmops_state_dir / 'rag-vllm.db'}",
        GATEWAY_UPSTREAM_READ_TIMEOUT_S="120",  # CPU generation
        **edge_retriever.gateway_env(),
    )
    route = gateway.put_route(
        variants=[{"name": "vllm", "upstream": f"{inference_service.url}/v1", "model": inference_service.base_model}],
        rag={"collection": collection, "top_k": 2},
    )
    return gateway, gateway.create_key()[1], route


@pytest.mark.parametrize("template", ["grounded-v1", "context-first-v1"])
def test_the_answer_uses_the_retrieved_fact(rag_to_vllm, corpus, template):
    gateway, key, route = rag_to_vllm
    with gateway.admin() as admin:
        spec = admin.get(f"/admin/routes/{route}").raise_for_status().json()
    gateway.put_route(route, variants=spec["variants"], rag={**spec["rag"], "template": template})
    auth = {"authorization": f"Bearer {key}"}
    with httpx.Client(base_url=gateway.url, headers=auth, timeout=180) as client:  # CPU generation
        response = client.post(
            "/v1/chat/completions",
            json={
                "model": route,
                "messages": [{"role": "user", "content": corpus.FACT_QUESTION}],
                "temperature": 0,
                "max_tokens": 32,
            },
        )
    assert response.status_code == 200, response.text
    body = response.json()
    answer = body["choices"][0]["message"]["content"]
    assert body["sources"][0]["document_id"] == corpus.FACT_ID
    assert "Quenterby" in answer or "Odalys" in answer, answer
