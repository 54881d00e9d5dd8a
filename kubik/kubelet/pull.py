"""Making sure a container's image is on the node before it is created.

By the container's imagePullPolicy: Always pulls, IfNotPresent pulls only a
missing image, Never only uses what is there (ErrImageNeverPull). Credentials
come from the pod's imagePullSecrets (kubernetes.io/dockerconfigjson or
dockercfg) whose registry matches the image's. A failed pull is ErrImagePull
and starts a back-off per (pod, image): until it expires the container waits
with ImagePullBackOff, the registry's message attached. Events are upstream's:
Pulling, Pulled ('Successfully pulled image "X" in 1.2s ...' or 'Container
image "X" already present on machine'), Failed, BackOff.
"""

from __future__ import annotations

import base64
import fnmatch
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from kubik.api.kinds import podspec
from kubik.kubelet.backoff import Backoff
from kubik.kubelet.cri import api_pb2
from kubik.kubelet.errors import StartError
from kubik.kubelet.runtimestate import error_text, is_unavailable

log = logging.getLogger(__name__)

Object = dict[str, Any]
EventFn = Callable[[Object, str, str, str], None]
SecretGetter = Callable[[str, str], Awaitable[Object | None]]

DOCKER_HUB = "docker.io"
LOCAL_REGISTRY = "kubik.local"
_HUB_ALIASES = {"index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}


def pull_policy(container: Object) -> str:
    """The container's policy; Never for kubik's own images, which no registry serves.

    `kubik.local/...` images are built by `kubik images build` and imported on every
    node; pulling them (the API defaults `:latest` to Always) could only fail.
    """
    image = container.get("image", "")
    if registry_of(image) == LOCAL_REGISTRY:
        return "Never"
    return container.get("imagePullPolicy") or podspec.image_pull_policy(image)


def registry_of(image: str) -> str:
    first, slash, _ = image.partition("/")
    if not slash or ("." not in first and ":" not in first and first != "localhost"):
        return DOCKER_HUB
    return _normalize_host(first)


def _normalize_host(text: str) -> str:
    host = text.split("://", 1)[-1].split("/", 1)[0].lower()
    return DOCKER_HUB if host in _HUB_ALIASES else host


def credentials(secret: Object, registry: str) -> list[api_pb2.AuthConfig]:
    """The AuthConfigs a pull secret holds for `registry`."""
    data = secret.get("data") or {}
    entries: Object = {}
    try:
        if ".dockerconfigjson" in data:
            entries = json.loads(base64.b64decode(data[".dockerconfigjson"])).get("auths") or {}
        elif ".dockercfg" in data:
            entries = json.loads(base64.b64decode(data[".dockercfg"]))
    except (ValueError, TypeError, AttributeError):
        return []
    found = []
    for key, entry in entries.items():
        if not isinstance(entry, dict) or not fnmatch.fnmatch(registry, _normalize_host(key)):
            continue
        username, password = entry.get("username", ""), entry.get("password", "")
        auth = entry.get("auth", "")
        if auth and not username:
            try:
                username, _, password = base64.b64decode(auth).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                pass
        found.append(
            api_pb2.AuthConfig(
                username=username,
                password=password,
                auth=auth,
                identity_token=entry.get("identitytoken", ""),
                registry_token=entry.get("registrytoken", ""),
            )
        )
    return found


def go_duration(seconds: float) -> str:
    """A duration as Go prints one truncated to milliseconds ("523ms", "1.234s", "1m2.5s")."""
    millis = int(seconds * 1000)
    if millis < 1000:
        return f"{millis}ms"
    minutes, millis = divmod(millis, 60_000)
    text = f"{millis / 1000:.3f}".rstrip("0").rstrip(".") + "s"
    return f"{minutes}m{text}" if minutes else text


class ImagePuller:
    def __init__(
        self, runtime, event: EventFn, get_secret: SecretGetter, backoff: Backoff | None = None
    ) -> None:
        self._runtime = runtime
        self._event = event
        self._get_secret = get_secret
        self.backoff = backoff or Backoff()
        self._last_error: dict[str, str] = {}

    async def image_status(self, image: str) -> api_pb2.Image | None:
        answer = await self._runtime.images.ImageStatus(
            api_pb2.ImageStatusRequest(image=api_pb2.ImageSpec(image=image))
        )
        return answer.image if answer.image.id else None

    async def ensure(
        self, pod: Object, container: Object, sandbox: api_pb2.PodSandboxConfig | None = None
    ) -> api_pb2.Image:
        """The image, pulled if the policy says so; StartError with upstream's reason if not."""
        image = container.get("image", "")
        policy = pull_policy(container)
        present = await self.image_status(image)
        if policy != "Always" and present is not None:
            self._event(
                pod, "Normal", "Pulled", f'Container image "{image}" already present on machine'
            )
            return present
        if policy == "Never":
            message = f'Container image "{image}" is not present with pull policy of Never'
            self._event(pod, "Warning", "ErrImageNeverPull", message)
            raise StartError("ErrImageNeverPull", message)
        key = f"{pod['metadata']['uid']}_{image}"
        if self.backoff.remaining_since_update(key) > 0:
            self._event(pod, "Normal", "BackOff", f'Back-off pulling image "{image}"')
            last = self._last_error.get(key, "")
            raise StartError(
                "ImagePullBackOff", f'Back-off pulling image "{image}": ErrImagePull: {last}'
            )
        self._event(pod, "Normal", "Pulling", f'Pulling image "{image}"')
        started = time.monotonic()
        try:
            await self._pull(pod, image, sandbox)
            pulled = await self.image_status(image)
        except grpc.aio.AioRpcError as exc:
            if is_unavailable(exc):
                raise  # the runtime is away: not the image's fault
            self.backoff.next(key, time.time())
            message = f'Failed to pull image "{image}": {error_text(exc)}'
            self._last_error[key] = message
            self._event(pod, "Warning", "Failed", message)
            raise StartError("ErrImagePull", message) from None
        if pulled is None:
            raise StartError("ErrImagePull", f'image "{image}" vanished after its pull')
        self.backoff.reset(key)
        self._last_error.pop(key, None)
        took = go_duration(time.monotonic() - started)
        self._event(
            pod,
            "Normal",
            "Pulled",
            f'Successfully pulled image "{image}" in {took} ({took} including waiting). '
            f"Image size: {pulled.size} bytes.",
        )
        return pulled

    async def _pull(
        self, pod: Object, image: str, sandbox: api_pb2.PodSandboxConfig | None
    ) -> None:
        auths = await self._auths(pod, image)
        request = api_pb2.PullImageRequest(image=api_pb2.ImageSpec(image=image))
        if sandbox is not None:
            request.sandbox_config.CopyFrom(sandbox)
        if not auths:
            await self._runtime.images.PullImage(request)
            return
        failure: grpc.aio.AioRpcError | None = None
        for auth in auths:  # each matching credential in turn, as upstream
            request.auth.CopyFrom(auth)
            try:
                await self._runtime.images.PullImage(request)
                return
            except grpc.aio.AioRpcError as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def _auths(self, pod: Object, image: str) -> list[api_pb2.AuthConfig]:
        registry = registry_of(image)
        namespace = pod["metadata"]["namespace"]
        found: list[api_pb2.AuthConfig] = []
        missing = []
        for ref in (pod.get("spec") or {}).get("imagePullSecrets") or []:
            name = ref.get("name")
            if not name:
                continue
            secret = await self._get_secret(namespace, name)
            if secret is None:
                missing.append(f"{namespace}/{name}")
                continue
            found.extend(credentials(secret, registry))
        if missing:
            self._event(
                pod,
                "Warning",
                "FailedToRetrieveImagePullSecret",
                f"Unable to retrieve some image pull secrets ({', '.join(missing)}); attempting "
                "to pull the image may not succeed.",
            )
        return found

    def forget(self, uid: str) -> None:
        self.backoff.forget(f"{uid}_")
        for key in [k for k in self._last_error if k.startswith(f"{uid}_")]:
            del self._last_error[key]
