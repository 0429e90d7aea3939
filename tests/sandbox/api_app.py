"""The App's own view of itself, as `bot doctor` reads it: the App (with GitHub's `Date`, which a
test may skew), its installations with what they were granted and subscribe to, and its hook
log: every delivery attempt, and redelivering one.

Served before `api_accounts`, whose `/app` and installation routes answer the App's settings
alone; here an installation's `permissions` and `events` are what the test set on the hub
(`installation_permissions`, `installation_events`).
"""

from __future__ import annotations

import time
from email.utils import formatdate
from typing import Any

from tests.sandbox.api import Call, Endpoints, Reply, not_found, routes
from tests.sandbox.state import HookDelivery


class AppEndpoints(Endpoints):
    TOP_ROUTES = routes(
        ("GET", r"/app", "get_app", True),
        ("GET", r"/app/installations", "list_installations", True),
        ("GET", r"/app/installations/(\d+)", "get_installation", True),
        ("GET", r"/app/hook/deliveries", "list_hook_deliveries", True),
        ("GET", r"/app/hook/deliveries/(\d+)", "get_hook_delivery", True),
        ("POST", r"/app/hook/deliveries/(\d+)/attempts", "redeliver", True),
    )
    REPO_ROUTES = routes(("GET", r"/installation", "repo_installation", True))

    def get_app(self, call: Call) -> Reply:
        headers = {}
        if self.hub.clock_skew_s:
            headers["Date"] = formatdate(time.time() + self.hub.clock_skew_s, usegmt=True)
        return Reply(200, self.shapes.app(), headers)

    def _installation(self) -> dict[str, Any]:
        shape = self.shapes.installation()
        shape["permissions"] = dict(self.hub.installation_permissions)
        shape["events"] = list(self.hub.installation_events)
        return shape

    def list_installations(self, call: Call) -> Reply:
        return self.page(call, [self._installation()])

    def get_installation(self, call: Call) -> Reply:
        if call.number() != self.hub.installation_id:
            raise not_found()
        return Reply(200, self._installation())

    def repo_installation(self, call: Call) -> Reply:
        return Reply(200, self._installation())

    def list_hook_deliveries(self, call: Call) -> Reply:
        return self.page(call, [self._delivery(d) for d in self.hub.hook_log()])

    def get_hook_delivery(self, call: Call) -> Reply:
        found = next((d for d in self.hub.hook_log() if d.id == call.number()), None)
        if found is None:
            raise not_found()
        shape = self._delivery(found)
        shape["request"] = {"headers": {"X-GitHub-Event": found.event}, "payload": found.payload}
        return Reply(200, shape)

    def redeliver(self, call: Call) -> Reply:
        try:
            self.hub.redeliver(call.number())
        except KeyError:
            raise not_found() from None
        return Reply(202, {})

    def _delivery(self, delivery: HookDelivery) -> dict[str, Any]:
        payload = delivery.payload
        installation = payload.get("installation") or {}
        repository = payload.get("repository") or {}
        return {
            "id": delivery.id,
            "guid": delivery.guid,
            "delivered_at": delivery.delivered_at,
            "redelivery": delivery.redelivery,
            "duration": delivery.duration,
            "status": delivery.status,
            "status_code": delivery.status_code,
            "event": delivery.event,
            "action": delivery.action,
            "installation_id": installation.get("id"),
            "repository_id": repository.get("id"),
        }
