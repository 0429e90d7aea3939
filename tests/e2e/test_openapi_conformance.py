"""The sandbox speaks GitHub's API as GitHub publishes it.

Every test of the bot talks to the sandbox GitHub; if its answers and payloads are not shaped as
GitHub's, a handler can pass every test and still fail against GitHub (a field the sandbox never
sends, a URL where GitHub sends another kind). So the traffic of representative end-to-end
flows (the `make run` demo, run-slow, /style, check runs, Actions) is validated against GitHub's
own OpenAPI description, pinned by the Makefile (`make openapi`): every sandbox answer, every
webhook payload, and every request body of the bot, and every bot request must pin the API
version.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from jsonschema import Draft4Validator, Draft202012Validator, FormatChecker
from jsonschema.exceptions import best_match
from referencing import Registry
from referencing.jsonschema import DRAFT4, DRAFT202012

from bot.clients.github import API_VERSION, MEDIA_TYPE
from bot.config import Settings
from tests.sandbox.github_server import SandboxGitHub
from tests.sandbox.harness import Harness
from tests.sandbox.scenario import REPO, scenario
from tests.support.slow_ci import REPO as SLOW_REPO
from tests.support.slow_ci import open_slow_pull

ROOT = Path(__file__).resolve().parents[2]
OCTOKIT = ROOT / "var" / "openapi" / "node_modules" / "@octokit"
REST_FILE = OCTOKIT / "openapi" / "generated" / "api.github.com.json"
HOOKS_FILE = OCTOKIT / "openapi-webhooks" / "generated" / "api.github.com.json"
REST_URI = "urn:github:rest"
HOOKS_URI = "urn:github:webhooks"
#: The versions `make openapi` installs: the description the sandbox is held to.
PINNED = {"openapi": "23.0.2", "openapi-webhooks": "12.1.0"}

#: Where GitHub's description is stricter than GitHub: (where, JSON path of the instance, why).
#: `where` is `METHOD /path/template` or `event.action`; each entry names the evidence, GitHub's
#: own example in the same description, which the schema refuses too.
STRICTER_THAN_GITHUB: tuple[tuple[str, str, str], ...] = ()


def _allow_null(schema: dict[str, Any]) -> dict[str, Any]:
    """OpenAPI 3.0's `nullable` as JSON Schema says it (draft 4 has no such keyword)."""
    if "$ref" in schema or "type" not in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
    out = {**schema, "type": [*types, "null"]}
    if "enum" in out and None not in out["enum"]:
        out["enum"] = [*out["enum"], None]
    return out


def _nullable_to_json_schema(node: Any) -> Any:
    if isinstance(node, list):
        return [_nullable_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _nullable_to_json_schema(value) for key, value in node.items()}
    if out.pop("nullable", False) is True:
        return _allow_null(out)
    return out


def _check_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return "T" in value


def _check_uri(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parts = urlsplit(value)
    return bool(parts.scheme) and (parts.scheme in ("mailto", "urn") or bool(parts.netloc))


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    pattern: re.Pattern[str]
    literal: int  # characters of the template outside parameters: the more, the better a match
    pointer: str


def _escape(segment: str) -> str:
    return segment.replace("~", "~0").replace("/", "~1")


class Description:
    """GitHub's REST and webhooks descriptions, compiled for checking instances against them."""

    def __init__(self, rest_file: Path, hooks_file: Path) -> None:
        self.rest = _nullable_to_json_schema(json.loads(rest_file.read_text()))
        self.hooks = json.loads(hooks_file.read_text())
        self._registry = Registry().with_resources(
            [
                (REST_URI, DRAFT4.create_resource(self.rest)),
                (HOOKS_URI, DRAFT202012.create_resource(self.hooks)),
            ]
        )
        checker = FormatChecker(())
        checker.checks("date-time")(_check_date_time)
        checker.checks("uri")(_check_uri)
        self._checker = checker
        self._validators: dict[str, Any] = {}
        self.operations: list[Operation] = []
        for template, item in self.rest["paths"].items():
            regex = re.sub(
                r"\\\{(\w+)\\\}",
                lambda m: "(?:.+)" if m.group(1) in ("path", "ref", "basehead") else "[^/]+",
                re.escape(template),
            )
            literal = len(re.sub(r"\{\w+\}", "", template))
            for method in item:
                if method in ("get", "post", "put", "patch", "delete"):
                    self.operations.append(
                        Operation(
                            method.upper(),
                            template,
                            re.compile(regex),
                            literal,
                            f"/paths/{_escape(template)}/{method}",
                        )
                    )
        self.hook_schemas: dict[tuple[str, str | None], str] = {}
        for item in self.hooks["webhooks"].values():
            post = item["post"]
            event = post["x-github"]["subcategory"]
            ref = post["requestBody"]["content"]["application/json"]["schema"]["$ref"]
            schema = self._follow(self.hooks, ref)
            action = schema.get("properties", {}).get("action", {}).get("enum", [None])[0]
            self.hook_schemas.setdefault((event, action), ref)

    @staticmethod
    def _follow(document: dict[str, Any], ref: str) -> dict[str, Any]:
        node: Any = document
        for segment in ref.removeprefix("#/").split("/"):
            node = node[segment.replace("~1", "/").replace("~0", "~")]
        return node

    def _validator(self, uri: str, *, hooks: bool = False) -> Any:
        found = self._validators.get(uri)
        if found is None:
            kind = Draft202012Validator if hooks else Draft4Validator
            found = kind({"$ref": uri}, registry=self._registry, format_checker=self._checker)
            self._validators[uri] = found
        return found

    def operation(self, method: str, path: str) -> Operation | None:
        matches = [
            op for op in self.operations if op.method == method and op.pattern.fullmatch(path)
        ]
        return max(matches, key=lambda op: op.literal, default=None)

    def _schema_pointer(self, pointer: str, node: dict[str, Any]) -> str | None:
        """The pointer of a request or response object's JSON schema, following `$ref`s."""
        while "$ref" in node:
            pointer = node["$ref"].removeprefix("#")
            node = self._follow(self.rest, node["$ref"])
        content = node.get("content", {})
        for media in ("application/json", "application/scim+json"):
            if media in content and "schema" in content[media]:
                return f"{pointer}/content/{_escape(media)}/schema"
        return None

    def answer_errors(self, method: str, path: str, status: int, body: Any) -> list[str] | None:
        """Why an answer does not conform (empty: it does); None when GitHub describes no
        JSON body for it (a redirect, a raw file, an operation GitHub does not publish)."""
        op = self.operation(method, path)
        if op is None:
            return None
        responses = self._follow(self.rest, f"#{op.pointer}/responses")
        key = str(status) if str(status) in responses else "default"
        if key not in responses:
            return None
        pointer = self._schema_pointer(f"{op.pointer}/responses/{key}", responses[key])
        if pointer is None:
            return None
        return self._errors(f"{REST_URI}#{pointer}", body)

    def request_errors(self, method: str, path: str, body: Any) -> list[str] | None:
        op = self.operation(method, path)
        if op is None:
            return None
        node = self._follow(self.rest, f"#{op.pointer}")
        if "requestBody" not in node:
            return None
        pointer = self._schema_pointer(f"{op.pointer}/requestBody", node["requestBody"])
        return None if pointer is None else self._errors(f"{REST_URI}#{pointer}", body)

    def payload_errors(self, event: str, payload: dict[str, Any]) -> list[str] | None:
        ref = self.hook_schemas.get((event, payload.get("action")))
        if ref is None:
            return None
        return self._errors(f"{HOOKS_URI}{ref}", payload, hooks=True)

    def _errors(self, uri: str, instance: Any, *, hooks: bool = False) -> list[str]:
        found = []
        for error in self._validator(uri, hooks=hooks).iter_errors(instance):
            if error.context:  # oneOf / anyOf: the branch that came closest says why
                error = best_match(error.context)
            found.append(f"{error.json_path}: {error.message[:300]}")
        return found


@cache
def description() -> Description:
    return Description(REST_FILE, HOOKS_FILE)


def _excused(where: str, error: str) -> bool:
    return any(
        place == where and re.match(path, error.split(":", 1)[0])
        for place, path, _ in STRICTER_THAN_GITHUB
    )


@dataclass
class Findings:
    """What a flow's traffic was checked against, and what did not conform."""

    answers: int = 0
    requests: int = 0
    payloads: int = 0
    events: set[str] = field(default_factory=set)
    failures: dict[str, int] = field(default_factory=dict)

    def fail(self, where: str, errors: list[str]) -> None:
        for error in errors:
            if not _excused(where, error):
                key = f"{where} {error}"
                self.failures[key] = self.failures.get(key, 0) + 1

    def report(self) -> str:
        worst = sorted(self.failures.items(), key=lambda item: -item[1])[:40]
        return "\n".join(f"{count:4d}x {failure}" for failure, count in worst)


def _walk(node: Any) -> Iterator[tuple[str, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from _walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item)


def check_traffic(github: SandboxGitHub) -> Findings:
    """Checks everything `github` recorded: its answers, the bot's requests, the payloads."""
    spec = description()
    found = Findings()
    clone_url = re.compile(re.escape(github.url) + r"/[A-Za-z0-9-]+/[A-Za-z0-9_.-]+\.git")
    for request in github.requests:
        op = spec.operation(request.method, request.path)
        where = f"{request.method} {op.template if op else request.path}"
        if request.json is not None and request.method in ("POST", "PATCH", "PUT", "DELETE"):
            errors = spec.request_errors(request.method, request.path, request.json)
            if errors is not None:
                found.requests += 1
                found.fail(f"request {where}", errors)
        if request.answer is None:
            continue
        errors = spec.answer_errors(request.method, request.path, request.status, request.answer)
        if errors is not None:
            found.answers += 1
            found.fail(f"{where} {request.status}", errors)
        for key, value in _walk(request.answer):
            if key == "clone_url" and not clone_url.fullmatch(str(value)):
                found.fail(where, [f"clone_url: {value!r} is not the sandbox's git URL"])
    for event, payload in github.built_payloads:
        kind = f"{event}.{payload.get('action')}" if "action" in payload else event
        errors = spec.payload_errors(event, payload)
        if errors is None:
            found.fail(kind, ["GitHub's description has no such webhook"])
            continue
        found.payloads += 1
        found.events.add(kind)
        found.fail(kind, errors)
        for key, value in _walk(payload):
            if key == "clone_url" and not clone_url.fullmatch(str(value)):
                found.fail(kind, [f"clone_url: {value!r} is not the sandbox's git URL"])
    return found


def assert_pinned(github: SandboxGitHub) -> None:
    """Every request the bot sent asked for the pinned API version and media type."""
    unpinned = sorted(
        {
            f"{r.method} {r.path}: {r.headers.get('accept')}"
            f" {r.headers.get('x-github-api-version')}"
            for r in github.requests
            if r.headers.get("x-github-api-version") != API_VERSION
            or r.headers.get("accept") != MEDIA_TYPE
        }
    )
    assert not unpinned, "\n".join(unpinned[:20])
    assert {r.headers.get("user-agent") for r in github.requests} == {"maintainer-bot"}


requires_description = pytest.mark.skipif(
    not (REST_FILE.is_file() and HOOKS_FILE.is_file()),
    reason="GitHub's OpenAPI description is not installed in var/openapi: run `make openapi`"
    " (npm installs @octokit/openapi@23.0.2 and @octokit/openapi-webhooks@12.1.0)",
)


@pytest.fixture
async def recording(tmp_path):
    settings = Settings(database=str(tmp_path / "bot.sqlite3"), retry_base_seconds=0.05)
    opened = Harness(tmp_path, settings=settings)
    opened.github.record_answers = True
    await opened.start()
    yield opened
    await opened.close()


@requires_description
async def test_the_demo_scenario_speaks_githubs_api(recording, capsys):
    """The `make run` demo: reviewers, /help, run-slow on this machine and on Actions, a merge
    announced on Slack, /style pushing its fix over smart HTTP."""
    await scenario(recording, ROOT)
    capsys.readouterr()
    github = recording.github
    found = check_traffic(github)
    assert not found.failures, found.report()
    assert found.answers >= 40 and found.requests >= 15, found
    assert {
        "pull_request.opened",
        "issue_comment.created",
        "push",
        "workflow_run.completed",
        "workflow_job.completed",
    } <= found.events, found.events
    assert_pinned(github)
    # The runners fetched over HTTP with the bot's token, and /style pushed the same way.
    git = {(r.full_name, r.service, r.status) for r in github.git_http.requests if r.credential}
    assert (REPO, "git-upload-pack", 200) in git
    assert (REPO, "git-receive-pack", 200) in git


FILES = {
    "README.md": "toy\n",
    "tests/models/toy/test_toy.py": "def test_one():\n    assert 1 + 1 == 2\n",
    "tests/models/broken/test_broken.py": "def test_sums():\n    assert 6 == 7, 'off by one'\n",
}


@requires_description
async def test_checks_labels_and_pushes_speak_githubs_api(recording):
    """run-slow from a comment and from a label, a failing check run with annotations and its
    Re-run failed button, a push to the pull request, a closed one."""
    harness, github = recording, recording.github
    number = open_slow_pull(harness, FILES)
    ask = github.issue_comment_payload(SLOW_REPO, number, "run-slow: toy, broken", "maint")
    await harness.deliver("issue_comment", ask)
    await harness.settle_runs()
    (check,) = github.check_runs(SLOW_REPO)
    assert check["conclusion"] == "failure"
    click = github.check_run_action_payload(SLOW_REPO, check["id"], "rerun_failed", "maint")
    await harness.deliver("check_run", click)
    await harness.settle_runs()
    before = github.pull(SLOW_REPO, number).head_sha
    assert before is not None
    github.commit(SLOW_REPO, "feature", {"src.py": "x = 2\n"}, author="carol")
    synced = github.pull_request_payload(SLOW_REPO, number, "synchronize", before=before)
    await harness.deliver("pull_request", synced)
    github.add_label(SLOW_REPO, number, "run-slow")
    labeled = github.pull_request_payload(
        SLOW_REPO, number, "labeled", label="run-slow", sender="maint"
    )
    await harness.deliver("pull_request", labeled)
    await harness.settle_runs()
    github.close_issue(SLOW_REPO, number)
    await harness.deliver("pull_request", github.pull_request_payload(SLOW_REPO, number, "closed"))
    await harness.settle()
    found = check_traffic(github)
    assert not found.failures, found.report()
    assert {
        "pull_request.synchronize",
        "pull_request.labeled",
        "pull_request.closed",
        "issue_comment.created",
        "check_run.requested_action",
    } <= found.events, found.events
    assert_pinned(github)
    assert len(github.check_runs(SLOW_REPO)) >= 2


@requires_description
def test_the_description_is_the_one_the_makefile_pins():
    for package, version in PINNED.items():
        installed = json.loads((OCTOKIT / package / "package.json").read_text())["version"]
        assert installed == version, f"@octokit/{package} {installed}: run `make openapi`"


@requires_description
def test_the_description_refuses_what_github_would_not_send():
    """The check has teeth: a webhook without its repository, an answer with a number where
    GitHub sends a string, are refused."""
    spec = description()
    assert spec.payload_errors("push", {"ref": "refs/heads/main"})
    assert spec.answer_errors("GET", "/repos/a/b/pulls/1", 200, {"number": "1"})
    assert spec.request_errors("POST", "/repos/a/b/issues/1/comments", {"body": 1})
    assert spec.operation("GET", "/repos/a/b/contents/x/y.py").template.endswith("{path}")
