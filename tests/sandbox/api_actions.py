"""GitHub Actions endpoints: dispatch a workflow, follow its runs and jobs, fetch artifacts and
logs, cancel a run.

A workflow exists where GitHub would find it: the file `.github/workflows/<name>` on the
dispatched ref, and its `on.workflow_dispatch.inputs` decide what a dispatch may send, with
GitHub's answers: 404 for a file that is not there, 422 for an unknown ref, a workflow without
`workflow_dispatch`, an input it does not declare, a required input left out or a choice outside
its options. `return_run_details` answers 200 with the new run's id, or, where the sandbox plays
an older GitHub Enterprise Server (`SandboxGitHub.actions_run_details = False`), 422 as a key that
is not permitted. Downloads answer 302 to a short-lived URL on the sandbox's blob storage (another
origin, as GitHub's is, so a client following the redirect drops its token). Reads need
`actions: read` of an App, writes `actions: write`; the executor in `actions.py` runs what is
dispatched.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from tests.sandbox.api import Call, Endpoints, GitHubError, Reply, not_found, routes
from tests.sandbox.pagination import paginate
from tests.sandbox.shapes import workflow_id_of
from tests.sandbox.state import (
    Artifact,
    SandboxRepo,
    WorkflowJob,
    WorkflowRun,
    now_iso,
)

WORKFLOWS_DIR = ".github/workflows"
INTEGRATION_REFUSAL = "Resource not accessible by integration"
_WORKFLOW_FILE = re.compile(r"^[A-Za-z0-9_.-]+\.ya?ml$")
_EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
_FROM_JSON = re.compile(r"^fromjson\(\s*(?:github\.event\.)?inputs\.([A-Za-z0-9_-]+)\s*\)$", re.I)
_INPUT = re.compile(r"^(?:github\.event\.)?inputs\.([A-Za-z0-9_-]+)$")


@dataclass(frozen=True)
class WorkflowInput:
    required: bool = False
    default: str | None = None
    kind: str = "string"  # string | choice | boolean | number | environment
    options: tuple[str, ...] = ()


@dataclass(frozen=True)
class Workflow:
    """What a dispatch needs from a workflow file; the executor runs the spec's test step."""

    path: str
    name: str
    dispatchable: bool
    run_name: str | None = None
    inputs: dict[str, WorkflowInput] = field(default_factory=dict)
    job_name: str = "build"
    runs_on: Any = None


def parse_workflow(path: str, text: str) -> Workflow:
    """The parts of a workflow file GitHub reads at dispatch; a file YAML cannot read, or one
    without the `workflow_dispatch` trigger, is not dispatchable."""
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        return Workflow(path, path, dispatchable=False)
    if not isinstance(document, dict):
        return Workflow(path, path, dispatchable=False)
    name = document.get("name")
    name = name if isinstance(name, str) and name.strip() else path
    triggers = document.get("on", document.get(True))  # YAML 1.1 reads a bare `on` as true
    if isinstance(triggers, str):
        triggers = {triggers: None}
    elif isinstance(triggers, list):
        triggers = {t: None for t in triggers if isinstance(t, str)}
    if not isinstance(triggers, dict) or "workflow_dispatch" not in triggers:
        return Workflow(path, name, dispatchable=False)
    dispatch = triggers.get("workflow_dispatch") or {}
    declared = dispatch.get("inputs") if isinstance(dispatch, dict) else None
    inputs = {}
    for input_name, spec in (declared or {}).items():
        spec = spec if isinstance(spec, dict) else {}
        default = spec.get("default")
        inputs[str(input_name)] = WorkflowInput(
            required=spec.get("required") is True,
            default=None if default is None else _text(default),
            kind=str(spec.get("type") or "string"),
            options=tuple(_text(o) for o in spec.get("options") or ()),
        )
    jobs = document.get("jobs")
    job_name, runs_on = "build", None
    if isinstance(jobs, dict) and jobs:
        key, job = next(iter(jobs.items()))
        job = job if isinstance(job, dict) else {}
        named = job.get("name")
        job_name = named if isinstance(named, str) and "${{" not in named else str(key)
        runs_on = job.get("runs-on")
    run_name = document.get("run-name")
    return Workflow(
        path,
        name,
        dispatchable=True,
        run_name=run_name if isinstance(run_name, str) else None,
        inputs=inputs,
        job_name=job_name,
        runs_on=runs_on,
    )


def _text(value: Any) -> str:
    """An input value as a workflow sees it: booleans as `true`/`false`, as in the YAML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def render(template: str, context: dict[str, str]) -> str:
    """A `${{ ... }}` template with the plain lookups a run name uses; anything else is empty,
    as an expression GitHub cannot resolve evaluates to nothing."""
    return _EXPRESSION.sub(lambda m: context.get(m.group(1), ""), template)


def runner_labels(runs_on: Any, inputs: dict[str, str]) -> list[str]:
    """The labels the job asks a runner for; ValueError when `runs-on` does not evaluate (a
    `fromJSON` of an input that is not JSON), which fails the job before any runner takes it."""
    if isinstance(runs_on, list):
        return [str(label) for label in runs_on]
    if not isinstance(runs_on, str):
        return ["ubuntu-latest"]
    whole = _EXPRESSION.fullmatch(runs_on.strip())
    if whole is None:
        return [runs_on]
    expression = whole.group(1)
    if found := _FROM_JSON.match(expression):
        raw = inputs.get(found.group(1), "")
        try:
            value = json.loads(raw)
        except ValueError:
            raise ValueError(
                f"Error when evaluating 'runs-on': fromJSON: {raw!r} is not JSON"
            ) from None
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            return value
        raise ValueError(f"Error when evaluating 'runs-on': {raw!r} names no runner labels")
    if found := _INPUT.match(expression):
        return [inputs.get(found.group(1), "")]
    raise ValueError(f"Error when evaluating 'runs-on': the sandbox cannot evaluate {runs_on!r}")


class ActionEndpoints(Endpoints):
    REPO_ROUTES = routes(
        ("POST", r"/actions/workflows/([^/]+)/dispatches", "dispatch"),
        ("GET", r"/actions/workflows/([^/]+)/runs", "workflow_runs"),
        ("GET", r"/actions/runs", "repo_runs"),
        ("GET", r"/actions/runs/(\d+)", "get_run"),
        ("GET", r"/actions/runs/(\d+)/jobs", "run_jobs"),
        ("GET", r"/actions/runs/(\d+)/artifacts", "run_artifacts"),
        ("POST", r"/actions/runs/(\d+)/cancel", "cancel_run"),
        ("GET", r"/actions/jobs/(\d+)", "get_job"),
        ("GET", r"/actions/jobs/(\d+)/logs", "job_logs"),
        ("GET", r"/actions/artifacts/(\d+)", "get_artifact"),
        ("GET", r"/actions/artifacts/(\d+)/zip", "download_artifact"),
    )

    # ------------------------------------------------------------------ lookups

    def _may(self, call: Call, level: str) -> None:
        """An App's token (or a person's, through the App) acts within the App's permission."""
        credential = call.credential
        if credential is None:
            raise GitHubError(401, "Requires authentication")
        granted = self.hub.auth.permissions.get("actions")
        enough = granted == "write" or (level == "read" and granted == "read")
        if credential.kind in ("installation", "user") and not enough:
            raise GitHubError(403, INTEGRATION_REFUSAL)

    def _run(self, call: Call) -> WorkflowRun:
        self._may(call, "read")
        run = call.here.workflow_runs.get(call.number())
        if run is None:
            raise not_found()
        return run

    def _artifact(self, call: Call) -> Artifact:
        self._may(call, "read")
        artifact = call.here.artifacts.get(call.number())
        if artifact is None:
            raise not_found()
        return artifact

    def _job_run(self, call: Call) -> WorkflowRun:
        self._may(call, "read")
        job_id = call.number()
        run = next((r for r in call.here.workflow_runs.values() if r.job.id == job_id), None)
        if run is None:
            raise not_found()
        return run

    def _workflow_path(self, repo: SandboxRepo, ref: str, workflow_id: str) -> str | None:
        """`.github/workflows/<file>` of a file name or a workflow id, when it is there at `ref`."""
        if workflow_id.isdigit():
            entries = repo.git.list_tree(ref, WORKFLOWS_DIR) or []
            for entry in entries:
                if entry.kind == "blob" and workflow_id_of(repo, entry.path) == int(workflow_id):
                    return entry.path
            for run in repo.workflow_runs.values():
                if workflow_id_of(repo, run.workflow_path) == int(workflow_id):
                    return run.workflow_path
            return None
        if not _WORKFLOW_FILE.match(workflow_id):
            return None
        return f"{WORKFLOWS_DIR}/{workflow_id}"

    # ------------------------------------------------------------------ dispatch

    def dispatch(self, call: Call) -> Reply:
        hub, repo = self.hub, call.here
        repo.dispatches.append(copy.deepcopy(call.body))
        self._may(call, "write")
        body = call.object()
        permitted = {"ref", "inputs"} | (
            {"return_run_details"} if hub.actions_run_details else set()
        )
        for key in body:
            if key not in permitted:
                raise GitHubError(422, f'Invalid request.\n\n"{key}" is not a permitted key.')
        ref = call.text_field("ref")
        assert ref is not None
        given = body.get("inputs") or {}
        if not isinstance(given, dict):
            raise GitHubError(422, f'Invalid request.\n\nFor "inputs", {given!r} is not an object.')
        details = body.get("return_run_details", False)
        if not isinstance(details, bool):
            raise GitHubError(
                422, f'Invalid request.\n\nFor "return_run_details", {details!r} is not a boolean.'
            )
        branch, sha = _resolve_ref(repo, ref)
        path = self._workflow_path(repo, sha, call.args[0])
        text = repo.git.read(sha, path) if path is not None else None
        if path is None or text is None:
            raise not_found()
        workflow = parse_workflow(path, text.decode("utf-8", "replace"))
        if not workflow.dispatchable:
            raise GitHubError(422, "Workflow does not have 'workflow_dispatch' trigger")
        inputs = _checked_inputs(workflow, given)
        run = self._create_run(call, repo, workflow, branch, sha, inputs)
        hub.actions.launch(repo.full_name, run.id)
        if not details:
            return Reply(204)
        shapes = self.shapes
        return Reply(
            200,
            {
                "workflow_run_id": run.id,
                "run_url": f"{shapes.repo_api(repo)}/actions/runs/{run.id}",
                "html_url": f"{shapes.html}/{repo.full_name}/actions/runs/{run.id}",
            },
        )

    def _create_run(
        self,
        call: Call,
        repo: SandboxRepo,
        workflow: Workflow,
        branch: str,
        sha: str,
        inputs: dict[str, str],
    ) -> WorkflowRun:
        hub = self.hub
        credential = call.credential
        actor = credential.login if credential is not None and credential.login else self.actor
        context = {f"inputs.{k}": v for k, v in inputs.items()}
        context.update({f"github.event.inputs.{k}": v for k, v in inputs.items()})
        context.update(
            {
                "github.actor": actor,
                "github.triggering_actor": actor,
                "github.ref_name": branch,
                "github.event_name": "workflow_dispatch",
                "github.workflow": workflow.name,
                "github.sha": sha,
            }
        )
        title = render(workflow.run_name, context) if workflow.run_name else workflow.name
        labels: list[str] = []
        startup_error = None
        try:
            labels = runner_labels(workflow.runs_on, inputs)
        except ValueError as exc:
            startup_error = str(exc)
        stamp = now_iso()
        run = WorkflowRun(
            id=hub.next_id(),
            run_number=1
            + sum(r.workflow_path == workflow.path for r in repo.workflow_runs.values()),
            workflow_path=workflow.path,
            workflow_name=workflow.name,
            display_title=title,
            head_branch=branch,
            head_sha=sha,
            inputs=inputs,
            actor=hub.add_user(actor).login,
            job=WorkflowJob(id=hub.next_id(), name=workflow.job_name, labels=labels),
            created_at=stamp,
            updated_at=stamp,
            startup_error=startup_error,
        )
        run.hold = hub.take_run_hold()
        if run.hold is not None:
            run.hold.run_id = run.id
        repo.workflow_runs[run.id] = run
        return run

    # ------------------------------------------------------------------ runs

    def get_run(self, call: Call) -> Reply:
        return Reply(200, self.shapes.workflow_run(call.here, self._run(call)))

    def workflow_runs(self, call: Call) -> Reply:
        self._may(call, "read")
        repo = call.here
        path = self._workflow_path(repo, repo.default_branch, call.args[0])
        known = path is not None and (
            repo.git.read(repo.default_branch, path) is not None
            or any(r.workflow_path == path for r in repo.workflow_runs.values())
        )
        if not known:
            raise not_found()
        return self._list_runs(
            call, [r for r in repo.workflow_runs.values() if r.workflow_path == path]
        )

    def repo_runs(self, call: Call) -> Reply:
        self._may(call, "read")
        return self._list_runs(call, list(call.here.workflow_runs.values()))

    def _list_runs(self, call: Call, runs: list[WorkflowRun]) -> Reply:
        """Newest first, filtered as GitHub filters (`status` takes a status or a conclusion)."""
        query = call.query
        event, status = query.get("event"), query.get("status")
        branch, actor, head_sha = query.get("branch"), query.get("actor"), query.get("head_sha")
        kept = [
            r
            for r in runs
            if (event is None or event == "workflow_dispatch")
            and (status is None or status in (r.status, r.conclusion))
            and (branch is None or r.head_branch == branch)
            and (actor is None or r.actor.lower() == actor.lower())
            and (head_sha is None or r.head_sha == head_sha)
        ]
        kept.sort(key=lambda r: r.id, reverse=True)
        page = paginate(call.url, call.query, kept)
        body = {
            "total_count": len(kept),
            "workflow_runs": [self.shapes.workflow_run(call.here, r) for r in page.items],
        }
        return Reply(200, body, {"Link": page.links} if page.links else {})

    def cancel_run(self, call: Call) -> Reply:
        run = self._run(call)
        self._may(call, "write")
        if run.status == "completed":
            raise GitHubError(409, "Cannot cancel a workflow run that is completed.")
        run.cancel_requested = True
        self.hub.actions.cancel(run.id)
        return Reply(202, {})

    # ------------------------------------------------------------------ jobs and logs

    def run_jobs(self, call: Call) -> Reply:
        run = self._run(call)
        which = call.query.get("filter", "latest")
        if which not in ("latest", "all"):
            raise GitHubError(422, f"Invalid filter: {which}")
        page = paginate(call.url, call.query, [run], max_per_page=100)
        body = {
            "total_count": 1,
            "jobs": [self.shapes.workflow_job(call.here, r) for r in page.items],
        }
        return Reply(200, body, {"Link": page.links} if page.links else {})

    def get_job(self, call: Call) -> Reply:
        return Reply(200, self.shapes.workflow_job(call.here, self._job_run(call)))

    def job_logs(self, call: Call) -> Reply:
        """GitHub keeps a job's log once the job completed, behind a short-lived link."""
        job = self._job_run(call).job
        if job.log is None:
            raise not_found()
        link = self.hub.actions.blobs.link("logs", job.log.encode(), "text/plain", ".txt")
        return Reply(302, None, {"Location": link})

    # ------------------------------------------------------------------ artifacts

    def run_artifacts(self, call: Call) -> Reply:
        run = self._run(call)
        repo = call.here
        name = call.query.get("name")
        found = [repo.artifacts[i] for i in run.artifacts if i in repo.artifacts]
        found = [a for a in found if name is None or a.name == name]
        page = paginate(call.url, call.query, found, max_per_page=100)
        body = {
            "total_count": len(found),
            "artifacts": [self.shapes.artifact(repo, a) for a in page.items],
        }
        return Reply(200, body, {"Link": page.links} if page.links else {})

    def get_artifact(self, call: Call) -> Reply:
        return Reply(200, self.shapes.artifact(call.here, self._artifact(call)))

    def download_artifact(self, call: Call) -> Reply:
        artifact = self._artifact(call)
        if artifact.expired:
            raise GitHubError(410, "Artifact has expired")
        link = self.hub.actions.blobs.link("artifacts", artifact.data, "application/zip", ".zip")
        return Reply(302, None, {"Location": link})


# --------------------------------------------------------------------------- validation


def _resolve_ref(repo: SandboxRepo, ref: str) -> tuple[str, str]:
    """(the ref's short name, its commit) for a branch or a tag; GitHub dispatches on nothing
    else (a SHA is "No ref found" too)."""
    refs = repo.git.refs("refs/")
    short = ref.removeprefix("refs/heads/").removeprefix("refs/tags/")
    for full in (ref, f"refs/heads/{ref}", f"refs/tags/{ref}"):
        if full.startswith(("refs/heads/", "refs/tags/")) and full in refs:
            sha = repo.git.resolve(full)
            if sha is not None:
                return short, sha
    raise GitHubError(422, f"No ref found for: {ref}")


def _checked_inputs(workflow: Workflow, given: dict[str, Any]) -> dict[str, str]:
    """The inputs the run sees: those given, then the declared defaults; refused as GitHub
    refuses them, unexpected names first."""
    unexpected = [name for name in given if name not in workflow.inputs]
    if unexpected:
        raise GitHubError(422, f"Unexpected inputs provided: {json.dumps(unexpected)}")
    values: dict[str, str] = {}
    for name, value in given.items():
        if not isinstance(value, str | bool | int | float):
            raise GitHubError(
                422, f'Invalid request.\n\nFor "inputs/{name}", {value!r} is not a string.'
            )
        values[name] = _text(value)
    for name, spec in workflow.inputs.items():
        if name in values:
            continue
        if spec.default is not None:
            values[name] = spec.default
        elif spec.required:
            raise GitHubError(422, f"Required input '{name}' not provided")
        else:
            values[name] = ""
    for name, spec in workflow.inputs.items():
        if spec.kind == "choice" and spec.options and values[name] not in spec.options:
            raise GitHubError(
                422,
                f"Provided value '{values[name]}' for input '{name}' not in the list of allowed"
                " values",
            )
    return values
