from __future__ import annotations

import http.client
import json
import threading
import urllib.error
import urllib.request
from typing import Any

import jsonschema
import pytest

import stratum_core.testing
from stratum_core.testing import FakeLLM, Fault, Reply, minimal_instance
from stratum_core.testing._fake_llm import BROKEN_JSON


def post(fake: FakeLLM, body: dict[str, Any], *, timeout: float = 10.0) -> tuple[int, dict[str, str], Any]:
    request = urllib.request.Request(
        f"{fake.url}/chat/completions",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), json.loads(e.read())


def chat(text: str = "hello", **extra: Any) -> dict[str, Any]:
    return {"model": "fake-llm", "messages": [{"role": "user", "content": text}], **extra}


def with_schema(schema: dict[str, Any], text: str = "hello") -> dict[str, Any]:
    return chat(text, response_format={"type": "json_schema", "json_schema": {"name": "out", "schema": schema}})


def content_of(payload: Any) -> str:
    content = payload["choices"][0]["message"]["content"]
    assert isinstance(content, str)
    return content


def test_public_names_are_pinned() -> None:
    assert stratum_core.testing.__all__ == ["Answer", "FakeAnthropic", "FakeLLM", "Fault", "Reply", "minimal_instance"]


def test_queued_answers_are_served_in_order_before_rules(fake_llm: FakeLLM) -> None:
    fake_llm.add_rule("hello", "from rule")
    fake_llm.enqueue("first", {"second": 2}, Reply(content="third"))

    contents = [content_of(post(fake_llm, chat())[2]) for _ in range(4)]

    assert contents == ["first", '{"second": 2}', "third", "from rule"]


def test_reply_json_is_serialised_as_the_content(fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply(json={"label": "pos", "score": 0.9}))

    assert json.loads(content_of(post(fake_llm, chat())[2])) == {"label": "pos", "score": 0.9}


def test_substring_rule_answers_matching_requests_and_expires_after_its_times(fake_llm: FakeLLM) -> None:
    fake_llm.add_rule("classify", {"label": "neg"}, times=1)
    fake_llm.add_rule("classify", {"label": "pos"})

    first = content_of(post(fake_llm, chat("please classify this"))[2])
    second = content_of(post(fake_llm, chat("please classify that"))[2])
    unmatched = content_of(post(fake_llm, chat("summarise"))[2])

    assert (json.loads(first), json.loads(second), unmatched) == ({"label": "neg"}, {"label": "pos"}, "{}")


def test_rule_may_match_system_text_and_multi_part_content(fake_llm: FakeLLM) -> None:
    fake_llm.add_rule("needle", "found")
    body = {
        "model": "fake-llm",
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": [{"type": "text", "text": "a needle here"}]},
        ],
    }

    assert content_of(post(fake_llm, body)[2]) == "found"


def test_predicate_rule_with_factory_builds_the_answer_from_the_request(fake_llm: FakeLLM) -> None:
    fake_llm.add_rule(
        lambda body: body.get("temperature") == 0,
        lambda body: {"echo": body["messages"][-1]["content"]},
    )

    status, _, payload = post(fake_llm, chat("ping", temperature=0))

    assert status == 200
    assert json.loads(content_of(payload)) == {"echo": "ping"}


def test_a_failing_answer_factory_is_reported_in_a_500_answer(fake_llm: FakeLLM) -> None:
    fake_llm.add_rule("hello", lambda body: body["no such key"])

    status, _, payload = post(fake_llm, chat())

    assert status == 500
    assert payload["error"]["message"] == "FakeLLM rule failed: KeyError: 'no such key'"


def test_rule_times_must_be_positive(fake_llm: FakeLLM) -> None:
    with pytest.raises(ValueError, match="times"):
        fake_llm.add_rule("x", "y", times=0)


SCHEMAS: dict[str, dict[str, Any]] = {
    "flat": {
        "type": "object",
        "properties": {
            "label": {"type": "string", "enum": ["pos", "neg"]},
            "confidence": {"type": "number", "minimum": 0.5, "maximum": 1},
            "count": {"type": "integer", "exclusiveMinimum": 3},
            "name": {"type": "string", "minLength": 4, "maxLength": 8},
            "kind": {"const": "review"},
            "flag": {"type": "boolean"},
            "note": {"type": ["string", "null"]},
        },
        "required": ["label", "confidence", "count", "name", "kind", "flag", "note"],
        "additionalProperties": False,
    },
    "nested": {
        "type": "object",
        "properties": {
            "items": {
                "type": "array",
                "minItems": 3,
                "uniqueItems": True,
                "items": {"$ref": "#/$defs/item"},
            },
            "tags": {"type": "array", "minItems": 2, "uniqueItems": True, "items": {"type": "string"}},
            "scores": {
                "type": "array",
                "minItems": 2,
                "uniqueItems": True,
                "items": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
            },
            "meta": {
                "type": "object",
                "properties": {"when": {"type": "string", "format": "date-time"}, "optional": {"type": "string"}},
                "required": ["when"],
            },
            "choice": {"anyOf": [{"type": "null"}, {"type": "integer", "maximum": -5}]},
            "merged": {
                "allOf": [
                    {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
                    {"properties": {"b": {"type": "string", "minLength": 2}}, "required": ["b"]},
                ]
            },
        },
        "required": ["items", "tags", "scores", "meta", "choice", "merged"],
        "$defs": {
            "item": {
                "type": "object",
                "properties": {"id": {"type": "integer", "minimum": 1}, "title": {"type": "string"}},
                "required": ["id", "title"],
            }
        },
    },
}


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_auto_answer_is_a_valid_instance_of_the_requested_schema(fake_llm: FakeLLM, name: str) -> None:
    schema = SCHEMAS[name]

    answer = json.loads(content_of(post(fake_llm, with_schema(schema))[2]))

    jsonschema.Draft202012Validator(schema).validate(answer)


def test_auto_answer_takes_the_first_enum_value_and_only_required_properties() -> None:
    schema = {
        "type": "object",
        "properties": {"label": {"enum": ["pos", "neg"]}, "extra": {"type": "string"}},
        "required": ["label"],
    }

    assert minimal_instance(schema) == {"label": "pos"}


def test_auto_answer_reads_a_llama_cpp_style_json_object_schema(fake_llm: FakeLLM) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 7}}, "required": ["n"]}

    payload = post(fake_llm, chat(response_format={"type": "json_object", "schema": schema}))[2]

    assert json.loads(content_of(payload)) == {"n": 7}


def test_auto_answer_without_a_schema_is_an_empty_object(fake_llm: FakeLLM) -> None:
    assert content_of(post(fake_llm, chat(response_format={"type": "json_object"}))[2]) == "{}"


def test_reply_without_content_is_generated_from_the_schema_but_keeps_its_usage(fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Reply(prompt_tokens=11, completion_tokens=22))
    schema = {"type": "object", "properties": {"ok": {"const": True}}, "required": ["ok"]}

    payload = post(fake_llm, with_schema(schema))[2]

    assert json.loads(content_of(payload)) == {"ok": True}
    assert payload["usage"] == {"prompt_tokens": 11, "completion_tokens": 22, "total_tokens": 33}


def test_completion_has_the_openai_chat_completion_shape(fake_llm: FakeLLM) -> None:
    fake_llm.enqueue("answer")

    status, headers, payload = post(fake_llm, chat())

    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert payload["id"].startswith("chatcmpl-")
    assert payload["object"] == "chat.completion"
    assert isinstance(payload["created"], int)
    assert payload["model"] == "fake-llm"
    assert payload["choices"] == [
        {"index": 0, "message": {"role": "assistant", "content": "answer"}, "logprobs": None, "finish_reason": "stop"}
    ]


def test_default_usage_is_a_deterministic_estimate_from_the_text(fake_llm: FakeLLM) -> None:
    short = post(fake_llm, chat("x" * 40))[2]["usage"]
    again = post(fake_llm, chat("x" * 40))[2]["usage"]
    long = post(fake_llm, chat("x" * 400))[2]["usage"]

    assert short == again
    assert short["total_tokens"] == short["prompt_tokens"] + short["completion_tokens"]
    assert short["completion_tokens"] == 1  # "{}"
    assert long["prompt_tokens"] > short["prompt_tokens"]


def test_rate_limit_fault_answers_429_with_retry_after(fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Fault("rate_limit", retry_after=2), Fault("rate_limit", retry_after=0.25), Fault("rate_limit"))

    answers = [post(fake_llm, chat()) for _ in range(3)]

    assert [status for status, _, _ in answers] == [429, 429, 429]
    assert [headers.get("Retry-After") for _, headers, _ in answers] == ["2", "0.25", None]
    assert answers[0][2]["error"]["type"] == "rate_limit_exceeded"


@pytest.mark.parametrize(
    ("kind", "status", "error_type"),
    [("server_error", 500, "server_error"), ("bad_request", 400, "invalid_request_error")],
)
def test_error_faults_answer_their_status_with_an_openai_error_body(
    fake_llm: FakeLLM, kind: Any, status: int, error_type: str
) -> None:
    fake_llm.enqueue(Fault(kind))

    got_status, _, payload = post(fake_llm, chat())

    assert got_status == status
    assert payload["error"]["type"] == error_type
    assert "scripted" in payload["error"]["message"]


def test_broken_json_fault_answers_200_with_truncated_json(fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Fault("broken_json"))

    status, _, payload = post(fake_llm, chat())

    assert status == 200
    assert content_of(payload) == BROKEN_JSON
    with pytest.raises(json.JSONDecodeError):
        json.loads(content_of(payload))


def test_disconnect_fault_closes_the_connection_without_an_answer(fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Fault("disconnect"))

    with pytest.raises((http.client.RemoteDisconnected, ConnectionError, urllib.error.URLError)):
        post(fake_llm, chat())
    assert len(fake_llm.requests) == 1


def _request_in_thread(fake: FakeLLM) -> tuple[threading.Thread, list[BaseException | int]]:
    outcome: list[BaseException | int] = []

    def run() -> None:
        try:
            outcome.append(post(fake, chat(), timeout=30)[0])
        except Exception as e:
            outcome.append(e)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, outcome


@pytest.mark.parametrize("script", ["hang", "latency"])
def test_stop_interrupts_a_waiting_request_promptly_without_answering(script: str) -> None:
    fake = FakeLLM().start()
    if script == "hang":
        fake.enqueue(Fault("hang"))
    else:
        fake.latency = 30.0
    thread, outcome = _request_in_thread(fake)
    assert fake.wait_for_requests(1)
    assert fake.in_flight == 1

    fake.stop()
    thread.join(timeout=5)

    assert not thread.is_alive()  # the hang (60 s) and the latency (30 s) were both cut short
    assert len(outcome) == 1 and isinstance(outcome[0], Exception)
    assert fake.wait_for_idle()


def test_a_hang_ends_when_the_client_goes_away(fake_llm: FakeLLM) -> None:
    fake_llm.enqueue(Fault("hang"))
    with pytest.raises(TimeoutError):
        post(fake_llm, chat(), timeout=0.2)

    assert fake_llm.wait_for_idle()  # well before the hang's own 60 s limit


def test_request_log_records_every_body_and_reset_clears_everything(fake_llm: FakeLLM) -> None:
    fake_llm.add_rule("a", "rule")
    fake_llm.enqueue("queued", "queued again")
    post(fake_llm, chat("a", temperature=0.5))
    post(fake_llm, chat("b"))

    logged = [(r["messages"][0]["content"], r.get("temperature")) for r in fake_llm.requests]
    fake_llm.reset()

    assert logged == [("a", 0.5), ("b", None)]
    assert fake_llm.requests == []
    assert content_of(post(fake_llm, chat("a"))[2]) == "{}"  # neither the queue nor the rule survived


def test_models_endpoint_lists_the_fake_model(fake_llm: FakeLLM) -> None:
    with urllib.request.urlopen(f"{fake_llm.url}/models", timeout=10) as response:
        payload = json.loads(response.read())

    assert [m["id"] for m in payload["data"]] == ["fake-llm"]
    assert fake_llm.model == "openai/fake-llm"


def test_invalid_json_body_is_answered_400(fake_llm: FakeLLM) -> None:
    request = urllib.request.Request(f"{fake_llm.url}/chat/completions", data=b"{not json", method="POST")

    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=10)
    caught.value.close()

    assert caught.value.code == 400


def test_streaming_requests_are_refused_with_400(fake_llm: FakeLLM) -> None:
    status, _, payload = post(fake_llm, chat(stream=True))

    assert status == 400
    assert "does not stream" in payload["error"]["message"]


def test_url_before_start_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="not started"):
        _ = FakeLLM().url
