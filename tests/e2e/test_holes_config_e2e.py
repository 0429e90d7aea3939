"""A `.github/bot.toml` (or owners file) that is not UTF-8 is a configuration error, as invalid
TOML is: the delivery fails once, saying why, and is not retried; no traceback of a decoder."""

from __future__ import annotations

import pytest

REPO = "acme/widgets"


async def _open_pull(harness) -> None:
    harness.github.commit(REPO, "feature", {"src/a.py": "x = 1\n"}, author="outsider")
    number = harness.github.open_pull(REPO, "feature", author="outsider")
    payload = harness.github.pull_request_payload(REPO, number, "opened")
    assert (await harness.deliver("pull_request", payload)).status == 202
    await harness.settle()


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (
            {
                ".github/bot.toml": "# caf\xe9\n".encode("latin-1"),
                ".github/review-owners": "* @m\n",
            },
            f"{REPO}:.github/bot.toml: not UTF-8 text (byte 0xe9 at offset 5)",
        ),
        (
            {".github/review-owners": b"* @m\xffaint\n"},
            f"{REPO}:.github/review-owners: not UTF-8 text (byte 0xff at offset 4)",
        ),
    ],
    ids=["bot.toml", "owners"],
)
async def test_a_file_that_is_not_utf8_fails_the_delivery_once_with_the_reason(
    harness, files, message
):
    harness.github.create_repo(
        REPO, files={"README.md": "x\n", **files}, collaborators={"m": "write"}
    )
    await _open_pull(harness)
    (delivery,) = await harness.deliveries()
    assert delivery.status == "failed"
    assert delivery.attempts == 1  # a retry cannot fix a config error
    assert message in delivery.error
    assert "UnicodeDecodeError" not in delivery.error
