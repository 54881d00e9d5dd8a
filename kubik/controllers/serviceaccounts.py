"""The service account controller: every live namespace has a `default` service account.

(upstream: pkg/controller/serviceaccount/serviceaccounts_controller.go)
"""

from __future__ import annotations

from kubik.api import builtin
from kubik.client.api import ApiError
from kubik.client.informer import key_of
from kubik.controllers.base import Controller, register

NAMESPACES = builtin.lookup("", "v1", "namespaces")
SERVICE_ACCOUNTS = builtin.lookup("", "v1", "serviceaccounts")
DEFAULT = "default"


@register
class ServiceAccountController(Controller):
    name = "serviceaccount"

    def setup(self) -> None:
        self.namespaces = self.informers.informer(NAMESPACES)
        self.accounts = self.informers.informer(SERVICE_ACCOUNTS)
        self.namespaces.add_handlers(
            on_add=self.enqueue, on_update=lambda old, new: self.enqueue(new)
        )
        # a deleted default account is made again
        self.accounts.add_handlers(on_delete=self._account_deleted)

    def _account_deleted(self, account: dict) -> None:
        if account["metadata"]["name"] == DEFAULT:
            self.queue.add(account["metadata"]["namespace"])

    async def sync(self, key: str) -> None:
        namespace = self.namespaces.get(key)
        if namespace is None or namespace["metadata"].get("deletionTimestamp"):
            return
        if self.accounts.get(key_of({"metadata": {"namespace": key, "name": DEFAULT}})):
            return
        account = {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": DEFAULT, "namespace": key},
        }
        try:
            await self.client.create(SERVICE_ACCOUNTS, account)
        except ApiError as exc:
            if not exc.already_exists:
                raise
