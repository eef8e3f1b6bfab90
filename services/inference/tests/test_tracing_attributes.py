"""The inference service's request span gets GenAI attributes (tracing on): the model asked for, and for a whole
answer the tokens and finish reasons vLLM reported. Run in a process of its own: tracing is set up once per process."""

import json
import subprocess
import sys

PROBE = """
import json, orjson
from llmops_testkit.otlp import OtlpReceiver
from llmops_common import tracing
from llmops_inference.serving import service

answer = {"model": "base", "choices": [{"finish_reason": "length"}], "usage": {"prompt_tokens": 3, "completion_tokens": 5}}
receiver = OtlpReceiver().start()
import os
os.environ.update(receiver.env())
assert tracing.configure_tracing("llmops-inference")
with tracing.span("POST /v1/chat/completions"):
    service._trace_request("chat", "base")
    service._trace_answer(orjson.dumps(answer))
    service._trace_answer(b"not json")  # an answer that is no JSON adds nothing, and raises nothing
tracing.flush()
print(json.dumps(receiver.wait_for(lambda spans: spans)[0].attributes))
"""


def test_a_whole_answer_puts_its_usage_on_the_span(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, timeout=60, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "vllm",
        "gen_ai.request.model": "base",
        "gen_ai.response.model": "base",
        "gen_ai.usage.input_tokens": 3,
        "gen_ai.usage.output_tokens": 5,
        "gen_ai.response.finish_reasons": ["length"],
    }
