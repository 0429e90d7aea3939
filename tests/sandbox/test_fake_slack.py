"""The sandbox Slack through the real slack_sdk clients."""

from __future__ import annotations

import pytest
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient


async def test_post_message_is_recorded(slack):
    client = AsyncWebClient(token=slack.token, base_url=slack.api_url)
    answer = await client.chat_postMessage(channel="#models", text="hi", blocks=[])
    assert answer["ok"]
    assert slack.messages == [{"channel": "models", "text": "hi", "blocks": [], "via": "api"}]


async def test_bad_token_and_scripted_failures(slack):
    with pytest.raises(SlackApiError) as caught:
        await AsyncWebClient(token="xoxb-wrong", base_url=slack.api_url).chat_postMessage(
            channel="c", text="x"
        )
    assert caught.value.response["error"] == "invalid_auth"
    slack.fail_next(429, headers={"Retry-After": "3"})
    client = AsyncWebClient(token=slack.token, base_url=slack.api_url)
    with pytest.raises(SlackApiError) as caught:
        await client.chat_postMessage(channel="c", text="x")
    assert caught.value.response.status_code == 429
    assert caught.value.response.headers["Retry-After"] in ("3", ["3"])
    assert (await client.chat_postMessage(channel="c", text="x"))["ok"]
    assert slack.attempts == 3


async def test_incoming_webhook(slack):
    hook = AsyncWebhookClient(slack.webhook_url)
    assert (await hook.send(text="hello")).status_code == 200
    assert (await hook.send(text="")).status_code == 400
    slack.fail_next(500)
    assert (await hook.send(text="again")).status_code == 500
    assert [m["text"] for m in slack.messages] == ["hello"]
