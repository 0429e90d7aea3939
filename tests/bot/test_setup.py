"""`bot setup`: the manifest flow end to end through the sandbox GitHub, a browser played by an
aiohttp client, and the environment file it writes proven by minting a token with it."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import stat
from html.parser import HTMLParser
from pathlib import Path

import aiohttp
import pytest
import yaml

from bot.clients.github import GitHubClients
from bot.config import ConfigError, Settings
from bot.kit.checkout import UsageError
from bot.ops.setup import (
    MANIFEST_PATH,
    SetupOptions,
    SetupServer,
    load_env_file,
    parse_manifest_yaml,
    register_cli,
    run_setup,
)
from tests.sandbox import SandboxGitHub

PUBLIC = "https://bot.example.org"


@pytest.fixture
async def hub(tmp_path):
    sandbox = SandboxGitHub(tmp_path / "github")
    await sandbox.start()
    yield sandbox
    await sandbox.close()


@pytest.fixture
async def browser():
    async with aiohttp.ClientSession() as session:
        yield session


class _Form(HTMLParser):
    """The form's action and hidden fields, as a browser submits them."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "form":
            self.action = values.get("action")
        elif tag == "input" and values.get("name"):
            self.fields[values["name"] or ""] = values.get("value") or ""


async def _read_form(browser: aiohttp.ClientSession, url: str) -> _Form:
    async with browser.get(f"{url}/") as page:
        assert page.status == 200
        form = _Form()
        form.feed(await page.text())
    assert form.action is not None
    return form


class _Flow:
    """`run_setup` on its own task, with the local page's URL once it listens."""

    def __init__(self, options: SetupOptions, environ: dict[str, str]) -> None:
        self.url: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.task = asyncio.create_task(
            run_setup(options, environ=environ, ready=self.url.set_result)
        )

    async def started(self) -> str:
        done, _ = await asyncio.wait({self.task, self.url}, return_when=asyncio.FIRST_COMPLETED)
        if self.task in done:
            self.task.result()  # raises what refused to start
        return self.url.result()

    async def exit_code(self) -> int:
        return await asyncio.wait_for(self.task, 10)


def _options(tmp_path: Path, **overrides) -> SetupOptions:
    return SetupOptions(env_file=tmp_path / ".env", **overrides)


def _environ(hub: SandboxGitHub) -> dict[str, str]:
    return {"GITHUB_API_URL": hub.url, "BOT_PUBLIC_URL": PUBLIC}


def _secrets(hub: SandboxGitHub) -> list[str]:
    pem_body = hub.private_key_pem.splitlines()[1]  # any line of the key gives it away
    return [hub.manifest_webhook_secret, hub.auth.client_secret, pem_body]


async def test_manifest_flow_writes_an_env_file_the_bot_authenticates_with(
    hub, browser, tmp_path, capsys, caplog
):
    caplog.set_level(logging.DEBUG)
    flow = _Flow(_options(tmp_path), _environ(hub))
    url = await flow.started()
    form = await _read_form(browser, url)

    assert form.action.startswith(f"{hub.url}/settings/apps/new?state=")
    manifest = json.loads(form.fields["manifest"])
    assert manifest["name"] == "maintainer-bot"
    assert manifest["url"] == "https://github.com/"
    assert manifest["hook_attributes"] == {"url": f"{PUBLIC}/webhook", "active": True}
    assert manifest["redirect_url"] == f"{url}/callback"
    assert manifest["callback_urls"] == [f"{PUBLIC}/login/callback"]
    assert manifest["public"] is False
    assert manifest["default_permissions"]["checks"] == "write"
    assert "issue_comment" in manifest["default_events"]

    # The sandbox goes straight on where GitHub asks for a confirmation; the browser follows.
    async with browser.post(form.action, data=form.fields) as done:
        page = await done.text()
        assert done.status == 200, page
        assert str(done.url).startswith(f"{url}/callback?code=")
    assert "make run" in page
    assert await flow.exit_code() == 0

    env_file = tmp_path / ".env"
    key_file = tmp_path / "maintainer-bot.private-key.pem"
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text() == hub.private_key_pem
    values = load_env_file(env_file)
    assert values == {
        "GITHUB_APP_ID": str(hub.app_id),
        "GITHUB_PRIVATE_KEY_PATH": str(key_file),
        "GITHUB_WEBHOOK_SECRET": hub.manifest_webhook_secret,
        "GITHUB_CLIENT_ID": hub.auth.client_id,
        "GITHUB_CLIENT_SECRET": hub.auth.client_secret,
        "GITHUB_API_URL": hub.url,
        "BOT_PUBLIC_URL": PUBLIC,
    }
    # The new App's webhooks go where the manifest said, signed with its secret.
    assert (hub.webhook_url, hub.webhook_secret) == (
        f"{PUBLIC}/webhook",
        values["GITHUB_WEBHOOK_SECRET"],
    )

    out, err = capsys.readouterr()
    assert "https://github.com/apps/maintainer-bot/installations/new" in out
    for secret in _secrets(hub):
        assert secret not in out + err + caplog.text

    settings = Settings.from_env(values)
    async with aiohttp.ClientSession() as session:
        token = await GitHubClients(session, settings).installation_token(hub.installation_id)
    assert token.startswith("ghs_")


async def test_an_organisation_owns_the_app_made_on_its_settings_page(hub, browser, tmp_path):
    flow = _Flow(_options(tmp_path, org=hub.app_owner), _environ(hub))
    form = await _read_form(browser, await flow.started())
    assert form.action.startswith(f"{hub.url}/organizations/{hub.app_owner}/settings/apps/new?")
    async with browser.post(form.action, data=form.fields) as done:
        assert done.status == 200
    assert await flow.exit_code() == 0
    assert load_env_file(tmp_path / ".env")["GITHUB_APP_ID"] == str(hub.app_id)


async def test_an_existing_env_file_is_refused_before_anything_is_served(hub, tmp_path, capsys):
    env_file = tmp_path / ".env"
    env_file.write_text("GITHUB_APP_ID=7\n")
    with pytest.raises(UsageError, match="--force"):
        await run_setup(_options(tmp_path), environ=_environ(hub))
    assert "Open" not in capsys.readouterr().out
    assert env_file.read_text() == "GITHUB_APP_ID=7\n"
    assert hub.requests == []


async def test_force_replaces_an_existing_env_file(hub, browser, tmp_path):
    env_file = tmp_path / ".env"
    env_file.write_text("GITHUB_APP_ID=7\n")
    env_file.chmod(0o644)
    flow = _Flow(_options(tmp_path, force=True), _environ(hub))
    form = await _read_form(browser, await flow.started())
    async with browser.post(form.action, data=form.fields) as done:
        assert done.status == 200
    assert await flow.exit_code() == 0
    assert load_env_file(env_file)["GITHUB_APP_ID"] == str(hub.app_id)
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600


async def test_a_callback_with_another_state_is_refused_and_the_flow_goes_on(
    hub, browser, tmp_path
):
    flow = _Flow(_options(tmp_path), _environ(hub))
    url = await flow.started()
    async with browser.get(f"{url}/callback", params={"code": "abc", "state": "forged"}) as page:
        assert page.status == 400
    async with browser.get(f"{url}/callback", params={"code": "abc"}) as page:
        assert page.status == 400
    assert not flow.task.done()
    assert not (tmp_path / ".env").exists()
    assert not any("conversions" in r.path for r in hub.requests)

    form = await _read_form(browser, url)  # the right browser still finishes
    async with browser.post(form.action, data=form.fields) as done:
        assert done.status == 200
    assert await flow.exit_code() == 0


async def test_an_unknown_or_used_code_is_an_error_and_nothing_is_written(
    hub, browser, tmp_path, capsys
):
    flow = _Flow(_options(tmp_path), _environ(hub))
    url = await flow.started()
    form = await _read_form(browser, url)
    state = form.action.split("state=", 1)[1]
    async with browser.get(f"{url}/callback", params={"code": "0ld", "state": state}) as page:
        assert page.status == 502
        assert "over an hour old" in await page.text()
    assert await flow.exit_code() == 1
    assert list(tmp_path.iterdir()) == [tmp_path / "github"]
    assert "used already or is over an hour old (404" in capsys.readouterr().err


async def test_a_manifest_code_is_good_once(hub, browser, tmp_path):
    redirect = "http://127.0.0.1:9/callback"
    manifest = {"name": "x", "url": "https://x", "hook_attributes": {"url": "https://x/h"}}
    async with browser.post(
        f"{hub.url}/settings/apps/new?state=s1",
        data={"manifest": json.dumps({**manifest, "redirect_url": redirect})},
        allow_redirects=False,
    ) as answer:
        assert answer.status == 302
        location = answer.headers["Location"]
    assert location.startswith(f"{redirect}?code=") and location.endswith("&state=s1")
    code = location.split("code=", 1)[1].split("&", 1)[0]
    conversion = f"{hub.url}/app-manifests/{code}/conversions"
    async with browser.post(conversion) as first:
        assert first.status == 201
        assert (await first.json())["id"] == hub.app_id
    async with browser.post(conversion) as again:
        assert again.status == 404

    async with browser.post(
        f"{hub.url}/settings/apps/new", data={"manifest": json.dumps(manifest)}
    ) as bad:
        assert bad.status == 422
        assert "redirect_url" in await bad.text()


def test_no_webhook_url_is_refused(tmp_path):
    with pytest.raises(UsageError, match="--webhook-url"):
        SetupServer(_options(tmp_path), environ={})
    server = SetupServer(_options(tmp_path, webhook_url="https://h.example/webhook"), environ={})
    assert server.webhook_url == "https://h.example/webhook"
    assert server.form_action.startswith("https://github.com/settings/apps/new?state=")


def test_the_manifest_reader_reads_app_yml_as_yaml_does():
    text = MANIFEST_PATH.read_text()
    assert parse_manifest_yaml(text) == yaml.safe_load(text)


@pytest.mark.parametrize(
    "text",
    [
        'a: 1\nb:\n  - x   # note\n  - \'y # z\'\nc:\n  d: "q\\"r"\n  e: off\n',
        "name: n\nlist:\n- a\n- b\nempty:\nurl: https://x.org/#frag\n",
    ],
)
def test_the_manifest_reader_agrees_with_yaml_on_its_subset(text):
    assert parse_manifest_yaml(text) == yaml.safe_load(text)


@pytest.mark.parametrize("text", ["a: [1, 2]\n", "a: |\n  x\n", "a:\n  - b: c\n", "a: b: c\n"])
def test_the_manifest_reader_refuses_what_it_does_not_read(text):
    with pytest.raises(ConfigError, match=r"app\.yml:"):
        parse_manifest_yaml(text)


def test_env_files_read_comments_quotes_and_export(tmp_path):
    path = tmp_path / ".env"
    path.write_text(
        "# comment\n\nA=1\nexport B = two words # note\nC='x # y'\n"
        'D="a\\"b\\\\c\\nd"\nE=\nF=tail#kept\n'
    )
    assert load_env_file(path) == {
        "A": "1",
        "B": "two words",
        "C": "x # y",
        "D": 'a"b\\c\nd',
        "E": "",
        "F": "tail#kept",
    }
    assert load_env_file(tmp_path / "missing") == {}
    path.write_text("A=1\nnot a line\n")
    with pytest.raises(ConfigError, match=r"\.env:2"):
        load_env_file(path)


def test_setup_is_a_subcommand_with_its_options():
    parser = argparse.ArgumentParser()
    register_cli(parser.add_subparsers())
    args = parser.parse_args(["setup", "--org", "acme", "--no-open", "--force"])
    assert (args.org, args.open, args.force, args.env_file, args.port) == (
        "acme",
        False,
        True,
        ".env",
        0,
    )
