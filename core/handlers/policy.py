"""HTTP handlers for tag policies: list, set, delete, their history."""

from fastapi import Response

import core
from core.handlers.schemas import TagPolicyChangeOut, TagPolicyIn, TagPolicyOut


class PolicyHandler:
    def __init__(self, catalog: core.Services) -> None:
        self._catalog = catalog

    def list_policies(self) -> list[TagPolicyOut]:
        return [TagPolicyOut.of(policy) for policy in self._catalog.tags.list_policies()]

    def put(self, pattern: str, body: TagPolicyIn) -> TagPolicyOut:
        return TagPolicyOut.of(
            self._catalog.tags.set_policy(
                pattern, immutable=body.immutable, protected=body.protected, moved_by=body.moved_by
            )
        )

    def delete(self, pattern: str, moved_by: str | None) -> Response:
        self._catalog.tags.delete_policy(pattern, moved_by=moved_by)
        return Response(status_code=204)

    def history(self, pattern: str | None) -> list[TagPolicyChangeOut]:
        return [TagPolicyChangeOut.of(c) for c in self._catalog.tags.policy_history(pattern)]
