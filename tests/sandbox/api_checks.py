"""Check-run endpoints (Checks API): create, update, read, annotations, a commit's check runs.

GitHub's rules are kept where a bot meets them: `name` and a `head_sha` of the repository are
required; a conclusion comes with `completed` and only from GitHub's list; an output needs its
title and summary, each text within 65,535 characters, at most 50 annotations a request (they
add up over requests, as on GitHub), each with its path, lines, level and message; at most three
buttons with a label of 20 characters, a description of 40 and an identifier of 20. Writes need
a credential GitHub lets write checks: an installation token of an App granted `checks: write`,
or the static token unless the sandbox is told it is a personal access token
(`SandboxGitHub.personal_token`), which GitHub answers 403.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tests.sandbox.api import Call, Endpoints, GitHubError, Reply, invalid, not_found, routes
from tests.sandbox.pagination import paginate
from tests.sandbox.shapes import node_id
from tests.sandbox.state import CheckRun, Pull, SandboxRepo, now_iso, stable_id

if TYPE_CHECKING:
    from tests.sandbox.github_server import SandboxGitHub

CHECK_STATUSES = ("queued", "in_progress", "completed")
#: What an App may conclude; `stale` is GitHub's own.
CONCLUSIONS = (
    "action_required",
    "cancelled",
    "failure",
    "neutral",
    "success",
    "skipped",
    "timed_out",
)
ANNOTATION_LEVELS = ("notice", "warning", "failure")
ANNOTATIONS_PER_REQUEST = 50
OUTPUT_TEXT_MAX = 65535
ANNOTATION_TEXT_MAX = 65535
ANNOTATION_TITLE_MAX = 255
ACTIONS_MAX = 3
ACTION_LIMITS = {"label": 20, "description": 40, "identifier": 20}
PERSONAL_TOKEN_REFUSAL = "Resource not accessible by personal access token"
INTEGRATION_REFUSAL = "Resource not accessible by integration"


def check_run_shape(hub: SandboxGitHub, repo: SandboxRepo, run: CheckRun) -> dict[str, Any]:
    """A check run as the REST API and the `check_run` webhook show it."""
    api = f"{hub.shapes.repo_api(repo)}/check-runs/{run.id}"
    suite = stable_id("check_suite", repo.full_name, run.head_sha, str(run.app_id))
    return {
        "id": run.id,
        "node_id": node_id("CheckRun", run.id),
        "name": run.name,
        "head_sha": run.head_sha,
        "external_id": run.external_id,
        "url": api,
        "html_url": f"{hub.shapes.html}/{repo.full_name}/runs/{run.id}",
        # Without one of its own, GitHub gives the App's homepage.
        "details_url": run.details_url or hub.shapes.app()["external_url"],
        "status": run.status,
        "conclusion": run.conclusion,
        "started_at": run.started_at,
        "completed_at": run.completed_at,
        "output": {
            "title": run.title,
            "summary": run.summary,
            "text": run.text,
            "annotations_count": len(run.annotations),
            "annotations_url": f"{api}/annotations",
        },
        "check_suite": {"id": suite, "node_id": node_id("CheckSuite", suite)},
        "app": hub.shapes.app(),
        "pull_requests": _pulls_of(hub, repo, run.head_sha),
        "actions": [dict(action) for action in run.actions],
    }


def _pulls_of(hub: SandboxGitHub, repo: SandboxRepo, sha: str) -> list[dict[str, Any]]:
    """Open pull requests whose head is `sha`; GitHub lists none from a fork."""
    found = []
    for issue in repo.issues.values():
        if not isinstance(issue, Pull) or issue.state != "open":
            continue
        if issue.head_repo.lower() != repo.full_name.lower():
            continue
        head, base = hub.pull_heads(repo, issue)
        if head != sha:
            continue
        mini = {"id": repo.id, "url": hub.shapes.repo_api(repo), "name": repo.name}
        found.append(
            {
                "url": f"{hub.shapes.repo_api(repo)}/pulls/{issue.number}",
                "id": stable_id("pull", repo.full_name, str(issue.number)),
                "number": issue.number,
                "head": {"ref": issue.head_ref, "sha": head, "repo": mini},
                "base": {"ref": issue.base_ref, "sha": base, "repo": mini},
            }
        )
    return found


class CheckEndpoints(Endpoints):
    REPO_ROUTES = routes(
        ("POST", r"/check-runs", "create_check_run"),
        ("GET", r"/check-runs/(\d+)", "get_check_run"),
        ("PATCH", r"/check-runs/(\d+)", "update_check_run"),
        ("GET", r"/check-runs/(\d+)/annotations", "list_annotations"),
        ("GET", r"/commits/(.+)/check-runs", "commit_check_runs"),
    )

    def _may_write(self, call: Call) -> None:
        credential = call.credential
        if credential is None:
            raise GitHubError(401, "Requires authentication")
        if credential.kind == "token" and self.hub.personal_token:
            raise GitHubError(403, PERSONAL_TOKEN_REFUSAL)
        granted = self.hub.auth.permissions.get("checks") == "write"
        if credential.kind in ("installation", "user") and not granted:
            raise GitHubError(403, INTEGRATION_REFUSAL)

    def _find(self, call: Call) -> CheckRun:
        run = call.here.check_runs.get(call.number())
        if run is None:
            raise not_found()
        return run

    def create_check_run(self, call: Call) -> Reply:
        self._may_write(call)
        repo = call.here
        name = call.text_field("name")
        head_sha = call.text_field("head_sha")
        assert name is not None and head_sha is not None
        if not name.strip():
            raise invalid("CheckRun", "name", "name can't be blank", "missing_field")
        if repo.git.resolve(head_sha) != head_sha:
            raise GitHubError(422, f"No commit found for SHA: {head_sha}")
        fields = _fields(call)
        stamp = now_iso()
        run = CheckRun(
            id=self.hub.next_id(),
            name=name,
            head_sha=head_sha,
            app_id=self.hub.app_id,
            external_id=fields.get("external_id"),
            details_url=fields.get("details_url"),
            status="queued",
            conclusion=None,
            started_at=stamp,
            completed_at=None,
        )
        _apply(run, fields, stamp)
        repo.check_runs[run.id] = run
        return Reply(201, check_run_shape(self.hub, repo, run))

    def update_check_run(self, call: Call) -> Reply:
        self._may_write(call)
        repo, run = call.here, self._find(call)
        fields = _fields(call)
        if "name" in call.object():
            name = call.text_field("name")
            if not name or not name.strip():
                raise invalid("CheckRun", "name", "name can't be blank", "missing_field")
            run.name = name
        for key in ("external_id", "details_url"):
            if key in fields:
                setattr(run, key, fields[key])
        _apply(run, fields, now_iso())
        return Reply(200, check_run_shape(self.hub, repo, run))

    def get_check_run(self, call: Call) -> Reply:
        return Reply(200, check_run_shape(self.hub, call.here, self._find(call)))

    def list_annotations(self, call: Call) -> Reply:
        run = self._find(call)
        blob = f"{self.shapes.html}/{call.here.full_name}/blob/{run.head_sha}"
        listed = [{**a, "blob_href": f"{blob}/{a['path']}"} for a in run.annotations]
        return self.page(call, listed, max_per_page=100)

    def commit_check_runs(self, call: Call) -> Reply:
        repo = call.here
        sha = self.find_commit(call, call.args[0], status=404)
        name = call.query.get("check_name")
        status = call.query.get("status")
        which = call.query.get("filter", "latest")
        if which not in ("latest", "all"):
            raise invalid("CheckRun", "filter", "filter is not included in the list")
        if status is not None and status not in CHECK_STATUSES:
            raise invalid("CheckRun", "status", "status is not included in the list")
        app_id = call.query.get("app_id")
        runs = [
            r
            for r in repo.check_runs.values()
            if r.head_sha == sha
            and (name is None or r.name == name)
            and (status is None or r.status == status)
            and (app_id is None or str(r.app_id) == app_id)
        ]
        runs.sort(key=lambda r: r.id, reverse=True)  # newest first, as GitHub lists them
        if which == "latest":
            newest: dict[tuple[str, int], CheckRun] = {}
            for r in runs:
                newest.setdefault((r.name, r.app_id), r)
            runs = list(newest.values())
        page = paginate(call.url, call.query, runs)
        body = {
            "total_count": len(runs),
            "check_runs": [check_run_shape(self.hub, repo, r) for r in page.items],
        }
        return Reply(200, body, {"Link": page.links} if page.links else {})


# --------------------------------------------------------------------------- validation


def _fields(call: Call) -> dict[str, Any]:
    """Everything but `name` and `head_sha`, checked whole before anything changes."""
    body = call.object()
    fields: dict[str, Any] = {}
    for key in ("external_id", "details_url", "started_at", "completed_at"):
        if key in body:
            value = call.text_field(key, required=False)
            fields[key] = value
    if fields.get("details_url") and not str(fields["details_url"]).startswith(
        ("http://", "https://")
    ):
        raise invalid("CheckRun", "details_url", "details_url must be an http(s) URL")
    status = body.get("status")
    if status is not None:
        if status not in CHECK_STATUSES:
            raise invalid("CheckRun", "status", "status is not included in the list")
        fields["status"] = status
    conclusion = body.get("conclusion")
    if conclusion is not None:
        if conclusion not in CONCLUSIONS:
            raise invalid("CheckRun", "conclusion", "conclusion is not included in the list")
        fields["conclusion"] = conclusion
    completing = status == "completed" or fields.get("completed_at")
    if completing and conclusion is None:
        raise invalid("CheckRun", "conclusion", "conclusion can't be blank", "missing_field")
    if "output" in body:
        fields["output"] = _output(body["output"])
    if "actions" in body:
        fields["actions"] = _actions(body["actions"])
    return fields


def _output(output: Any) -> dict[str, Any]:
    if not isinstance(output, dict):
        raise invalid("CheckRun", "output", "output must be an object")
    checked: dict[str, Any] = {}
    for key in ("title", "summary"):
        if not isinstance(output.get(key), str) or not output[key]:
            raise invalid("CheckRun", f"output.{key}", f"{key} can't be blank", "missing_field")
    for key in ("title", "summary", "text"):
        value = output.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            raise invalid("CheckRun", f"output.{key}", f"{key} must be a string")
        if len(value) > OUTPUT_TEXT_MAX:
            raise invalid(
                "CheckRun",
                f"output.{key}",
                f"{key} is too long (maximum is {OUTPUT_TEXT_MAX} characters)",
            )
        checked[key] = value
    annotations = output.get("annotations") or []
    if not isinstance(annotations, list):
        raise invalid("CheckRun", "output.annotations", "annotations must be an array")
    if len(annotations) > ANNOTATIONS_PER_REQUEST:
        raise invalid(
            "CheckRun",
            "output.annotations",
            f"Only {ANNOTATIONS_PER_REQUEST} annotations may be sent in one request",
        )
    checked["annotations"] = [_annotation(a) for a in annotations]
    return checked


def _annotation(annotation: Any) -> dict[str, Any]:
    if not isinstance(annotation, dict):
        raise invalid("CheckAnnotation", "annotations", "an annotation must be an object")
    for key in ("path", "message"):
        if not isinstance(annotation.get(key), str) or not annotation[key]:
            raise invalid("CheckAnnotation", key, f"{key} can't be blank", "missing_field")
    lines = []
    for key in ("start_line", "end_line"):
        value = annotation.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise invalid("CheckAnnotation", key, f"{key} must be a line number, from 1")
        lines.append(value)
    if lines[1] < lines[0]:
        raise invalid("CheckAnnotation", "end_line", "end_line must not be before start_line")
    columns = [annotation.get(k) for k in ("start_column", "end_column")]
    if any(c is not None for c in columns) and lines[0] != lines[1]:
        raise invalid(
            "CheckAnnotation", "start_column", "columns are only allowed on a single line"
        )
    level = annotation.get("annotation_level")
    if level not in ANNOTATION_LEVELS:
        raise invalid(
            "CheckAnnotation", "annotation_level", "annotation_level is not included in the list"
        )
    if len(annotation["message"]) > ANNOTATION_TEXT_MAX:
        raise invalid("CheckAnnotation", "message", "message is too long")
    title = annotation.get("title")
    if title is not None and (not isinstance(title, str) or len(title) > ANNOTATION_TITLE_MAX):
        raise invalid(
            "CheckAnnotation", "title", f"title is at most {ANNOTATION_TITLE_MAX} characters"
        )
    details = annotation.get("raw_details")
    if details is not None and (not isinstance(details, str) or len(details) > ANNOTATION_TEXT_MAX):
        raise invalid("CheckAnnotation", "raw_details", "raw_details is too long")
    return {
        "path": annotation["path"],
        "start_line": lines[0],
        "end_line": lines[1],
        "start_column": columns[0],
        "end_column": columns[1],
        "annotation_level": level,
        "title": title,
        "message": annotation["message"],
        "raw_details": details,
    }


def _actions(actions: Any) -> list[dict[str, str]]:
    if not isinstance(actions, list):
        raise invalid("CheckRun", "actions", "actions must be an array")
    if len(actions) > ACTIONS_MAX:
        raise invalid("CheckRun", "actions", f"at most {ACTIONS_MAX} actions are allowed")
    checked = []
    for action in actions:
        if not isinstance(action, dict):
            raise invalid("CheckRunAction", "actions", "an action must be an object")
        for key, limit in ACTION_LIMITS.items():
            value = action.get(key)
            if not isinstance(value, str) or not value:
                raise invalid("CheckRunAction", key, f"{key} can't be blank", "missing_field")
            if len(value) > limit:
                raise invalid(
                    "CheckRunAction", key, f"{key} is too long (maximum is {limit} characters)"
                )
        checked.append({key: action[key] for key in ACTION_LIMITS})
    return checked


def _apply(run: CheckRun, fields: dict[str, Any], stamp: str) -> None:
    """A conclusion completes the check run, as on GitHub; annotations add up, buttons replace."""
    if fields.get("started_at"):
        run.started_at = fields["started_at"]
    if "status" in fields:
        run.status = fields["status"]
    if "conclusion" in fields:
        run.status, run.conclusion = "completed", fields["conclusion"]
    if run.status == "completed":
        run.completed_at = fields.get("completed_at") or run.completed_at or stamp
    else:
        run.conclusion = run.completed_at = None
    output = fields.get("output")
    if output is not None:
        run.title, run.summary = output["title"], output["summary"]
        if "text" in output:
            run.text = output["text"]
        run.annotations.extend(output["annotations"])
    if "actions" in fields:
        run.actions = fields["actions"]
