"""What a platform file changes, across the gateway and the feedback service, and making those changes.

Everything is validated before anything changes: the gateway's dry run checks routes and keys (one transaction
applies them later), the feedback service checks the retraining policies, and each policy's champion must be a
variant of its route as the file leaves it. The one window left: the gateway's transaction commits, then the
policies are written one by one; if the feedback service fails in between, the routes are changed and the
policies not yet. Applying the same file again finishes the job (every step sets an absolute state).
"""

from dataclasses import dataclass, field
from urllib.parse import quote

from llmops_cli.client import AdminClient, error_message
from llmops_cli.platform.schema import PlatformFile
from llmops_cli.platform.yamlfile import FileError, YamlDocument


@dataclass(frozen=True)
class Change:
    kind: str  # route, key, retraining
    name: str
    action: str  # create, update, delete
    before: dict | None
    after: dict | None


@dataclass
class Plan:
    gateway: list[Change] = field(default_factory=list)
    retraining: list[Change] = field(default_factory=list)

    @property
    def changes(self) -> list[Change]:
        return [*self.gateway, *self.retraining]


class Platform:
    """The two admin APIs a file speaks to; the feedback service only when the file has a retraining section."""

    def __init__(self, gateway: AdminClient, feedback: AdminClient | None) -> None:
        self.gateway, self.feedback = gateway, feedback
        self.source = "platform file"  # the file being applied, named in errors of calls that have no line

    def _answer(self, client: AdminClient, method: str, path: str, body, doc: YamlDocument | None, section: str):
        response = client.call(method, path, json=body)
        if response.status_code < 400:
            return response.json() if response.content else None
        message = error_message(response)
        if doc is not None and response.status_code == 422:
            location = _param(response) or ""
            message = message.removeprefix("422: ")  # the line number says it is the file's fault
            if section and location.startswith("policies"):
                # The feedback service names the field under its body's "policies"; the file has it under its section.
                location, message = (
                    location.replace("policies", section, 1),
                    message.replace("policies.", section + "."),
                )
            raise doc.error(location, message)
        service = "feedback service" if client.service == "feedback" else client.service
        raise FileError(doc.path if doc else self.source, 0, f"the {service} refused it: {message}")

    def gateway_apply(self, pf: PlatformFile, *, prune: bool, dry_run: bool, doc: YamlDocument | None) -> list[Change]:
        body = {
            "routes": pf.routes or {},
            "keys": pf.keys or {},
            # A section the file leaves out is not managed: nothing of it is pruned.
            "prune": prune and pf.routes is not None,
            "dry_run": dry_run,
        }
        answer = self._answer(self.gateway, "POST", "/admin/config/apply", body, doc, "")
        return [Change(**c) for c in answer["changes"]]

    def retraining_plan(
        self, pf: PlatformFile, *, prune: bool, doc: YamlDocument, routes_after: dict[str, dict]
    ) -> list[Change]:
        if pf.retraining is None or self.feedback is None:
            return []
        wanted = self._answer(
            self.feedback, "POST", "/v1/config/retraining/validate", {"policies": pf.retraining}, doc, "retraining"
        )["policies"]
        for route, policy in wanted.items():
            spec = routes_after.get(route)
            if spec is None:
                raise doc.error(["retraining", route], f"retraining.{route}: no route {route!r} (in the file or live)")
            if policy["champion"] not in {v["name"] for v in spec["variants"]}:
                raise doc.error(
                    ["retraining", route, "champion"],
                    f"retraining.{route}.champion: route {route!r} has no variant {policy['champion']!r}",
                )
        current = self._answer(self.feedback, "GET", "/v1/config/retraining", None, None, "")["policies"]
        changes = [
            Change("retraining", route, "update" if route in current else "create", current.get(route), policy)
            for route, policy in sorted(wanted.items())
            if current.get(route) != policy
        ]
        if prune:
            changes += [
                Change("retraining", route, "delete", current[route], None)
                for route in sorted(current.keys() - wanted.keys())
            ]
        return changes

    def plan(self, pf: PlatformFile, doc: YamlDocument, *, prune: bool) -> Plan:
        self.source = doc.path
        gateway = self.gateway_apply(pf, prune=prune, dry_run=True, doc=doc)
        routes_after = {r["name"]: r for r in self.gateway.get("/admin/routes")["data"]}
        for change in gateway:
            if change.kind == "route":
                if change.after is None:
                    routes_after.pop(change.name, None)
                else:
                    routes_after[change.name] = change.after
        return Plan(gateway, self.retraining_plan(pf, prune=prune, doc=doc, routes_after=routes_after))

    def apply(self, pf: PlatformFile, doc: YamlDocument, *, prune: bool) -> Plan:
        """Validates everything (the plan), then the gateway's changes in one transaction, then the policies."""
        planned = self.plan(pf, doc, prune=prune)
        if planned.gateway:
            self.gateway_apply(pf, prune=prune, dry_run=False, doc=doc)
        for change in planned.retraining:
            path = f"/v1/retraining/{quote(change.name, safe='')}"
            if change.action == "delete":
                self._answer(self.feedback, "DELETE", path, None, None, "")
            else:
                self._answer(self.feedback, "PUT", path, change.after, None, "")
        return planned


def _param(response) -> str | None:
    try:
        return response.json()["error"]["param"]
    except (ValueError, KeyError, TypeError):
        return None
