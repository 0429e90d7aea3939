"""Whether a signed payload has the shape the dispatcher and the handlers read.

A signature proves who sent a payload, not that it is well formed: a test delivery, a proxy
that rewrites bodies or a GitHub change can hand the bot `"repository": "x"`. Such a delivery
is failed at once with the reason (a retry cannot change its body), before any handler indexes
into it, instead of taking the worker down or being retried five times.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Field -> the types it may have; `dict` means a JSON object, `None` that it may be null.
_Spec = Mapping[str, tuple[type | None, ...]]

_COMMON: _Spec = {
    "action": (str,),
    "repository": (dict,),
    "installation": (dict,),
    "sender": (dict,),
}
_NESTED: Mapping[str, _Spec] = {
    "repository": {"full_name": (str,), "default_branch": (str,), "clone_url": (str,)},
    "installation": {"id": (int,)},
    "sender": {"login": (str,), "type": (str,)},
}
_BY_EVENT: Mapping[str, tuple[tuple[str, bool, _Spec], ...]] = {
    # (field, required, its fields' types)
    "issue_comment": (
        ("issue", True, {"number": (int,), "comments_url": (str,), "pull_request": (dict,)}),
        ("comment", True, {"id": (int,), "body": (str, None), "user": (dict,)}),
        ("repository", True, {}),
    ),
    "pull_request": (
        (
            "pull_request",
            True,
            {"number": (int,), "user": (dict,), "base": (dict,), "head": (dict,)},
        ),
        ("repository", True, {}),
    ),
    "push": (("repository", True, {}),),
    "workflow_run": (
        ("workflow_run", True, {"id": (int,), "status": (str,), "conclusion": (str, None)}),
        ("repository", True, {}),
    ),
    "workflow_job": (
        (
            "workflow_job",
            True,
            {"run_id": (int,), "status": (str,), "runner_name": (str, None)},
        ),
        ("repository", True, {}),
    ),
    "check_run": (
        (
            "check_run",
            True,
            {
                "id": (int,),
                "head_sha": (str,),
                "external_id": (str, None),
                "pull_requests": (list,),
            },
        ),
        ("requested_action", False, {"identifier": (str,)}),
        ("repository", True, {}),
    ),
}
_PUSH_FIELDS: _Spec = {"ref": (str,), "before": (str,), "after": (str,), "commits": (list,)}


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "a number"
    )


def _check(data: Mapping[str, Any], spec: _Spec, where: str) -> str | None:
    for name, types in spec.items():
        if name not in data:
            continue
        value = data[name]
        if value is None and None in types:
            continue
        wanted = tuple(t for t in types if t is not None)
        if (isinstance(value, bool) and bool not in wanted) or not isinstance(value, wanted):
            expected = " or ".join(_kind(t()) if t is not None else "null" for t in types)
            return f"{where}{name} is {_kind(value)}, expected {expected}"
    return None


def shape_problem(event: str, data: Mapping[str, Any]) -> str | None:
    """Why handlers cannot read this payload, or None when its shape is as GitHub sends it."""
    if problem := _check(data, _COMMON, ""):
        return problem
    for name, spec in _NESTED.items():
        if isinstance(data.get(name), dict) and (problem := _check(data[name], spec, f"{name}.")):
            return problem
    if event == "push" and (problem := _check(data, _PUSH_FIELDS, "")):
        return problem
    for name, required, spec in _BY_EVENT.get(event, ()):
        value = data.get(name)
        if not isinstance(value, dict):
            if required or value is not None:
                return (
                    f"{name} is {_kind(value) if name in data else 'missing'}, expected an object"
                )
            continue
        if problem := _check(value, spec, f"{name}."):
            return problem
    return None
