"""GitHub's App manifest flow: the web form that registers an App from a manifest, and the API
call that turns the code it sends back into the new App's credentials.

A real GitHub shows the manifest for a person to confirm and name; here the browser is sent
straight back to the manifest's `redirect_url` with a code, as if they had pressed the button.
The sandbox has one App identity (its id, key pair and installation), so the App a conversion
"creates" is that one: a bot configured from the answer really authenticates against the
sandbox. The conversion takes no credential (the code is the credential), so both routes are
served as web routes; its errors are GitHub's JSON errors.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from yarl import URL

from tests.sandbox.api import Call, Endpoints, Reply, not_found
from tests.sandbox.api_oauth import WebRoute
from tests.sandbox.state import now_iso

if TYPE_CHECKING:
    from tests.sandbox.github_server import SandboxGitHub

#: GitHub's manifest codes are good once, for an hour.
MANIFEST_CODE_LIFETIME_S = 3600


@dataclass
class _ManifestCode:
    manifest: dict[str, Any]
    owner: str
    expires_at: float


class ManifestEndpoints(Endpoints):
    TOP_ROUTES = (
        WebRoute("POST", re.compile(r"/settings/apps/new"), "new_app"),
        WebRoute("POST", re.compile(r"/organizations/([^/]+)/settings/apps/new"), "new_app"),
        WebRoute("POST", re.compile(r"/app-manifests/([^/]+)/conversions"), "conversion"),
    )

    def __init__(self, hub: SandboxGitHub) -> None:
        super().__init__(hub)
        self._codes: dict[str, _ManifestCode] = {}

    def new_app(self, call: Call) -> Reply:
        hub = self.hub
        if call.args:  # an organisation's settings page
            org = hub.users.get(call.args[0].lower())
            if org is None or org.kind != "Organization":
                raise not_found()
            owner = org.login
        else:  # the signed-in person's own App; nobody signed in: the sandbox App's owner
            owner = hub.auth.browser_login or hub.app_owner
        manifest, problem = _manifest(call.body)
        if manifest is None:
            return Reply(422, f"Invalid GitHub App manifest: {problem}")
        code = secrets.token_hex(10)
        self._codes[code] = _ManifestCode(manifest, owner, time.time() + MANIFEST_CODE_LIFETIME_S)
        query = {"code": code}
        if "state" in call.query:
            query["state"] = call.query["state"]
        return Reply(
            302, None, {"Location": str(URL(manifest["redirect_url"]).update_query(query))}
        )

    def conversion(self, call: Call) -> Reply:
        found = self._codes.pop(call.args[0], None)  # used up even when refused
        if found is None or found.expires_at <= time.time():
            raise not_found()
        hub = self.hub
        manifest = found.manifest
        hook = manifest["hook_attributes"]
        secret = hub.manifest_webhook_secret
        if hook.get("active", True):
            hub.webhook_target(hook["url"], secret)  # the new App's webhooks go there
        created = now_iso()
        body = {
            **self.shapes.app(),
            "name": manifest["name"],
            "description": manifest.get("description") or "",
            "external_url": manifest["url"],
            "owner": self.shapes.user(found.owner),
            "created_at": created,
            "updated_at": created,
            "permissions": dict(manifest.get("default_permissions") or {}),
            "events": list(manifest.get("default_events") or []),
            "installations_count": 0,
            "client_id": hub.auth.client_id,
            "client_secret": hub.auth.client_secret,
            "webhook_secret": secret,
            "pem": hub.private_key_pem,
        }
        return Reply(201, body)


def _manifest(body: Any) -> tuple[dict[str, Any] | None, str]:
    """The form's `manifest` field, checked for what GitHub needs to register an App."""
    if isinstance(body, str):
        fields = parse_qs(body, keep_blank_values=True).get("manifest", [])
    elif isinstance(body, dict):
        fields = [body["manifest"]] if isinstance(body.get("manifest"), str) else []
    else:
        fields = []
    if not fields:
        return None, "the form has no `manifest` field"
    try:
        manifest = json.loads(fields[0])
    except ValueError:
        return None, "`manifest` is not JSON"
    if not isinstance(manifest, dict):
        return None, "`manifest` is not a JSON object"
    for name in ("name", "url", "redirect_url"):
        if not isinstance(manifest.get(name), str) or not manifest[name].strip():
            return None, f"`{name}` is missing"
    hook = manifest.get("hook_attributes")
    if not isinstance(hook, dict) or not isinstance(hook.get("url"), str) or not hook["url"]:
        return None, "`hook_attributes.url` is missing"
    target = URL(manifest["redirect_url"])
    if not target.is_absolute() or target.scheme not in ("http", "https"):
        return None, "`redirect_url` must be an absolute http(s) URL"
    return manifest, ""
