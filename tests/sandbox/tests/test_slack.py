"""The sandbox Slack through the real slack_sdk clients."""

from __future__ import annotations

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

BLOCKS = [{"type": "header", "text": {"type": "plain_text", "text": "New model!"}}]


async def test_a_posted_message_is_recorded(slack):
    client = AsyncWebClient(token=slack.token, base_url=slack.api_url)
    answer = await client.chat_postMessage(channel="#models", text="hi", blocks=BLOCKS)
    assert answer["ok"] and answer["channel"] == slack.channels["models"]
    (message,) = slack.messages
    assert (message["channel"], message["text"], message["blocks"], message["via"]) == (
        "models",
        "hi",
        BLOCKS,
        "api",
    )
    assert message["ts"] == answer["ts"]
    by_id = await client.chat_postMessage(channel=slack.channels["models"], text="again")
    assert by_id["ok"] and slack.messages[-1]["channel"] == "models"
    assert (await client.auth_test())["team"] == "sandbox"


@pytest.mark.filterwarnings("ignore:The top-level `text` argument is missing:UserWarning")
@pytest.mark.parametrize(
    ("token", "kwargs", "error"),
    [
        ("xoxb-wrong", {"channel": "c", "text": "x"}, "invalid_auth"),
        (None, {"channel": "c"}, "no_text"),
        (None, {"channel": "c", "text": ""}, "no_text"),
        (None, {"channel": "c", "blocks": [{"text": "no type"}]}, "invalid_blocks"),
        (None, {"channel": "c", "text": "x" * 40_001}, "msg_too_long"),
        (None, {"channel": "", "text": "x"}, "channel_not_found"),
    ],
)
async def test_messages_slack_refuses(slack, token, kwargs, error):
    client = AsyncWebClient(token=token or slack.token, base_url=slack.api_url)
    with pytest.raises(SlackApiError) as caught:
        await client.chat_postMessage(**kwargs)
    assert caught.value.response["error"] == error
    assert slack.messages == []


async def test_channels_must_exist_without_auto_create():
    from tests.sandbox import SandboxSlack

    slack = SandboxSlack(auto_create=False)
    await slack.start()
    try:
        client = AsyncWebClient(token=slack.token, base_url=slack.api_url)
        with pytest.raises(SlackApiError) as caught:
            await client.chat_postMessage(channel="models", text="x")
        assert caught.value.response["error"] == "channel_not_found"
        slack.create_channel("models")
        assert (await client.chat_postMessage(channel="models", text="x"))["ok"]
    finally:
        await slack.close()


async def test_programmed_server_errors_and_rate_limits(slack):
    client = AsyncWebClient(token=slack.token, base_url=slack.api_url)
    slack.fail_next(500)
    slack.fail_next(429, headers={"Retry-After": "3"})
    with pytest.raises(SlackApiError) as caught:
        await client.chat_postMessage(channel="c", text="x")
    assert caught.value.response.status_code == 500
    with pytest.raises(SlackApiError) as caught:
        await client.chat_postMessage(channel="c", text="x")
    assert caught.value.response.status_code == 429
    assert caught.value.response["error"] == "ratelimited"
    assert caught.value.response.headers["Retry-After"] in ("3", ["3"])
    assert (await client.chat_postMessage(channel="c", text="x"))["ok"]
    assert (slack.attempts, len(slack.messages)) == (3, 1)


async def test_the_incoming_webhook(slack):
    hook = AsyncWebhookClient(slack.webhook_url)
    assert (await hook.send(text="hello")).status_code == 200
    assert (await hook.send(blocks=BLOCKS)).body == "ok"
    empty = await hook.send(text="")
    assert (empty.status_code, empty.body) == (400, "no_text")
    slack.fail_next(500, endpoint="webhook")
    assert (await hook.send(text="again")).status_code == 500
    wrong = await AsyncWebhookClient(slack.webhook_url + "x").send(text="lost")
    assert (wrong.status_code, wrong.body) == (404, "no_service")
    assert [(m["text"], m["via"], m["channel"]) for m in slack.messages] == [
        ("hello", "webhook", "general"),
        (None, "webhook", "general"),
    ]


async def test_a_failure_for_one_endpoint_leaves_the_other_alone(slack):
    slack.fail_next(503, endpoint="webhook")
    client = AsyncWebClient(token=slack.token, base_url=slack.api_url)
    assert (await client.chat_postMessage(channel="c", text="x"))["ok"]
    assert (await AsyncWebhookClient(slack.webhook_url).send(text="y")).status_code == 503
    with pytest.raises(ValueError, match="endpoint"):
        slack.fail_next(500, endpoint="chat.delete")
