"""The node API against a real containerd: logs, exec, attach, port-forward, stats.

A NodeServer runs in this process, on TLS with client certificates, over the
`containerd` fixture. containerd's streaming URLs listen on 127.0.0.1 of the
fixture's network namespace, as the node API does on a node: the test's
thread enters that namespace (setns) while the node serves, so the server,
its calls to containerd and the test's clients all live there. Clients are
written here: WebSocket v5 (kubectl 1.30+ exec/attach), SPDY v4 (kubectl
≤1.29), and port-forward over plain SPDY and tunnelled in WebSocket.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import ssl
import uuid
from dataclasses import dataclass
from urllib.parse import urlencode

import orjson
import pytest
import pytest_asyncio

from kubik.apiserver import nodeproxy, tls
from kubik.kubelet.server import NodeServer
from kubik.kubelet.streaming import relay, spdy
from kubik.kubelet.streaming.websocket import WebSocket
from tests.support.polling import eventually
from tests.support.streaming import network_namespace, node_serving_context, remove_pod, run_pod

pytestmark = pytest.mark.asyncio(loop_scope="module")

NAMESPACE, POD = "default", "streamer"
TICKER = "echo started; i=0; while true; do echo tick $i; i=$((i+1)); sleep 0.2; done"
WEB = "mkdir /www && echo hello-from-pod > /www/index.html && exec httpd -f -p 8080 -h /www"
CONTAINERS = {  # name: (command, keeps stdin open)
    "main": (["sh", "-c", TICKER], False),
    "web": (["sh", "-c", WEB], False),
    "talker": (["sh", "-c", 'while read line; do echo "got $line"; done'], True),
    "short": (["sh", "-c", "echo only once"], False),
}


@dataclass
class Node:
    server_tls: ssl.SSLContext
    client_tls: ssl.SSLContext  # the API server's
    other_node_tls: ssl.SSLContext
    anonymous_tls: ssl.SSLContext
    port: int = 0


def certificates(directory) -> Node:
    """Node serving TLS; clients: the API server's, another node's, one without certificate."""
    ca = tls.ClusterCA(str(directory))
    server = node_serving_context(ca, directory)

    def client(name: str, group: str) -> ssl.SSLContext:
        cert, key = tls.ensure_client_cert(
            ca, name, common_name=name, organizations=(group,) if group else ()
        )
        return nodeproxy.client_context(ca.paths.ca_crt, cert, key)

    return Node(
        server,
        client("kube-apiserver-kubelet-client", "system:masters"),
        client("system:node:other", "system:nodes"),
        ssl.create_default_context(cafile=ca.paths.ca_crt),
    )


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def node(containerd, tmp_path_factory):
    await containerd.enable_network()
    node = certificates(tmp_path_factory.mktemp("tls"))
    uid = str(uuid.uuid4())
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": POD, "namespace": NAMESPACE, "uid": uid},
        "spec": {"containers": [{"name": name} for name in CONTAINERS]},
    }
    with network_namespace(containerd.netns.path):
        sandbox_id = await run_pod(containerd, NAMESPACE, POD, uid, CONTAINERS)
        server = NodeServer(
            containerd.client, lambda: [pod], node.server_tls, "127.0.0.1", 0, node_name="test-node"
        )
        await server.start()
        node.port = server.port
        try:
            yield node
        finally:
            await server.stop()
            await remove_pod(containerd, sandbox_id)


# ------------------------------------------------------------------ clients


async def call(node: Node, method: str, target: str, headers=(), *, tls_context=None):
    return await relay.request(
        "127.0.0.1", node.port, method, target, headers, ssl_context=tls_context or node.client_tls
    )


async def get(node: Node, target: str, **kwargs) -> tuple[int, bytes]:
    answer = await call(node, "GET", target, **kwargs)
    return answer.status, await relay.read_body(answer)


def websocket_headers(*protocols: str) -> list[tuple[str, str]]:
    return [
        ("Connection", "Upgrade"),
        ("Upgrade", "websocket"),
        ("Sec-WebSocket-Version", "13"),
        ("Sec-WebSocket-Key", base64.b64encode(os.urandom(16)).decode()),
        ("Sec-WebSocket-Protocol", ", ".join(protocols)),
    ]


def spdy_headers(*protocols: str) -> list[tuple[str, str]]:
    return [
        ("Connection", "Upgrade"),
        ("Upgrade", "SPDY/3.1"),
        ("X-Stream-Protocol-Version", ", ".join(protocols)),
    ]


def command_query(*command: str, **flags: str) -> str:
    return urlencode([("command", c) for c in command] + list(flags.items()))


async def open_websocket(
    node: Node, target: str, *protocols: str
) -> tuple[relay.Answer, WebSocket]:
    answer = await call(node, "GET", target, websocket_headers(*protocols))
    assert answer.status == 101, await relay.read_body(answer)
    return answer, WebSocket(answer.reader, answer.writer, client=True)


async def channels_until_close(ws: WebSocket, sending=()) -> dict[int, bytes]:
    """Send `sending` messages, then collect what arrives per channel until the server closes."""
    for message in sending:
        await ws.send(message)
    received: dict[int, bytes] = {}
    async with asyncio.timeout(60):
        while (message := await ws.receive()) is not None:
            data = message[1]
            received[data[0]] = received.get(data[0], b"") + data[1:]
    ws.writer.close()
    return received


async def spdy_session(answer: relay.Answer, streams: list[dict[str, str]], stdin=b""):
    """Open `streams` (headers each) on a SPDY connection; collect data per stream until GOAWAY."""
    conn = spdy.ClientConnection(answer.reader, answer.writer)
    opened = [await conn.open_stream(headers) for headers in streams]
    by_id = {s.id: headers.get("streamType") for s, headers in zip(opened, streams, strict=True)}
    for stream, headers in zip(opened, streams, strict=True):
        if headers.get("streamType") == "stdin":
            await stream.write(stdin)
            await stream.close()
    received: dict[str, bytes] = {}
    async with asyncio.timeout(60):
        while (frame := await conn.receive()) is not None and not isinstance(frame, spdy.GoAway):
            if isinstance(frame, spdy.Data):
                kind = by_id[frame.stream_id]
                received[kind] = received.get(kind, b"") + frame.data
    await conn.close()
    return received


def status_of(raw: bytes) -> dict:
    """The final metav1.Status (containerd writes it without kind/apiVersion, as upstream)."""
    status = json.loads(raw)
    assert status["status"] in ("Success", "Failure")
    return status


# -------------------------------------------------------------------- basics


async def test_healthz_pods_and_only_the_api_server_may_call(node):
    assert await get(node, "/healthz") == (200, b"ok")
    status, body = await get(node, "/pods")
    pods = orjson.loads(body)
    assert status == 200 and pods["kind"] == "PodList"
    assert [p["metadata"]["name"] for p in pods["items"]] == [POD]
    assert await get(node, "/healthz", tls_context=node.anonymous_tls) == (401, b"Unauthorized")
    assert await get(node, "/pods", tls_context=node.other_node_tls) == (403, b"Forbidden")
    status, _ = await get(node, "/nothing/here")
    assert status == 404


async def test_stats_summary(node):
    status, body = await get(node, "/stats/summary")
    assert status == 200
    summary = orjson.loads(body)
    assert summary["node"]["nodeName"] == "test-node"
    assert summary["node"]["memory"]["workingSetBytes"] > 0
    assert summary["node"]["cpu"]["usageCoreNanoSeconds"] > 0
    pods = [p for p in summary["pods"] if p["podRef"]["name"] == POD]
    assert len(pods) == 1
    names = {c["name"] for c in pods[0]["containers"]}
    assert {"main", "web", "talker"} <= names
    main = next(c for c in pods[0]["containers"] if c["name"] == "main")
    assert main["memory"]["workingSetBytes"] > 0
    assert "usageCoreNanoSeconds" in main["cpu"]


# ---------------------------------------------------------------------- logs

LOGS = f"/containerLogs/{NAMESPACE}/{POD}"


async def test_logs_tail_and_timestamps(node):
    async def enough():  # three ticks written, after the first line
        status, body = await get(node, f"{LOGS}/main?tailLines=3")
        return status == 200 and body.startswith(b"tick ") and body.count(b"\n") == 3

    await eventually(enough, "three ticks in the log")
    status, body = await get(node, f"{LOGS}/main?tailLines=2")
    assert status == 200 and [line.split()[0] for line in body.splitlines()] == [b"tick"] * 2
    status, body = await get(node, f"{LOGS}/main?tailLines=1&timestamps=true")
    assert status == 200
    stamp, text = body.decode().rstrip("\n").split(" ", 1)
    assert text.startswith("tick ") and stamp.endswith("Z") and "T" in stamp
    status, body = await get(node, f"{LOGS}/main?limitBytes=8")
    assert (status, body) == (200, b"started\n")


async def test_logs_follow_streams_new_lines(node):
    answer = await call(node, "GET", f"{LOGS}/main?follow=true&tailLines=1")
    assert answer.status == 200
    assert "chunked" in answer.header("transfer-encoding")
    chunks = relay.body_chunks(answer)
    seen = b""
    async with asyncio.timeout(60):
        while seen.count(b"\n") < 4:
            seen += await anext(chunks)
    await chunks.aclose()
    numbers = [int(line.split()[1]) for line in seen.splitlines()]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)


async def test_follow_of_an_exited_container_ends(node):
    async def exited():
        status = await get(node, f"{LOGS}/short")
        return status if status[1] else None

    await eventually(exited, "the short container's output")
    async with asyncio.timeout(60):
        assert await get(node, f"{LOGS}/short?follow=true") == (200, b"only once\n")


async def test_log_errors(node):
    status, body = await get(node, f"/containerLogs/{NAMESPACE}/nope/main")
    assert (status, body) == (404, b'pod "nope" does not exist')
    status, body = await get(node, f"{LOGS}/nope")
    assert (status, body) == (404, b'container "nope" not found in pod "streamer"')
    status, body = await get(node, f"{LOGS}/main?previous=true")
    assert status == 400
    assert body == b'previous terminated container "main" in pod "streamer" not found'
    status, body = await get(node, f"{LOGS}/main?tailLines=-2")
    assert status == 400


# ----------------------------------------------------------------------- exec

EXEC = f"/exec/{NAMESPACE}/{POD}"


async def test_exec_websocket_v5_with_stdin_closed(node):
    target = f"{EXEC}/main?" + command_query("cat", input="1", output="1", error="1")
    answer, ws = await open_websocket(node, target, "v5.channel.k8s.io")
    assert answer.header("sec-websocket-protocol") == "v5.channel.k8s.io"
    received = await channels_until_close(ws, [b"\x00hello ", b"\x00world\n", b"\xff\x00"])
    assert received[1] == b"hello world\n"
    assert status_of(received[3])["status"] == "Success"
    assert ws.close_received is not None and ws.close_received[0] == 1000


async def test_exec_websocket_exit_code_and_stderr(node):
    script = "echo out; echo err >&2; exit 3"
    target = f"{EXEC}/main?" + command_query("sh", "-c", script, output="1", error="1")
    _, ws = await open_websocket(node, target, "v5.channel.k8s.io", "v4.channel.k8s.io")
    received = await channels_until_close(ws)
    assert (received[1], received[2]) == (b"out\n", b"err\n")
    status = status_of(received[3])
    assert (status["status"], status["reason"]) == ("Failure", "NonZeroExitCode")
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]


async def test_exec_websocket_tty_follows_resizes(node):
    script = 'while [ "$(stty size 2>/dev/null)" != "45 123" ]; do sleep 0.1; done; echo resized'
    target = f"{EXEC}/main?" + command_query("sh", "-c", script, input="1", output="1", tty="1")
    _, ws = await open_websocket(node, target, "v5.channel.k8s.io")
    received = await channels_until_close(ws, [b'\x04{"Width":123,"Height":45}'])
    assert received[1] == b"resized\r\n", received  # a terminal turns \n into \r\n
    assert 2 not in received  # a terminal has no separate stderr


async def test_exec_spdy_is_relayed_to_containerd(node):
    script = "cat; echo err >&2; exit 5"
    query = command_query("sh", "-c", script, input="1", output="1", error="1")
    target = f"{EXEC}/main?{query}"
    answer = await call(
        node, "POST", target, spdy_headers("v4.channel.k8s.io", "v3.channel.k8s.io")
    )
    assert answer.status == 101, await relay.read_body(answer)
    assert answer.header("x-stream-protocol-version") == "v4.channel.k8s.io"
    streams = [{"streamType": kind} for kind in ("error", "stdin", "stdout", "stderr")]
    received = await spdy_session(answer, streams, stdin=b"via spdy\n")
    assert (received["stdout"], received["stderr"]) == (b"via spdy\n", b"err\n")
    assert status_of(received["error"])["details"]["causes"][0]["message"] == "5"


async def test_exec_errors(node):
    upgrade = websocket_headers("v5.channel.k8s.io")

    async def answer_to(target: str, headers=upgrade) -> tuple[int, bytes]:
        answer = await call(node, "GET", target, headers)
        return answer.status, await relay.read_body(answer)

    true = command_query("true", output="1")
    assert await answer_to(f"{EXEC}/nope?{true}") == (500, b'container not found ("nope")')
    assert (await answer_to(f"{EXEC}/main?output=1"))[0] == 400  # no command
    assert await answer_to(f"/exec/{NAMESPACE}/nope/main?{true}") == (404, b"pod does not exist")
    assert await answer_to(f"{EXEC}/main?{true}", ()) == (400, b"Upgrade request required")


# --------------------------------------------------------------------- attach


async def test_attach_websocket(node):
    target = f"/attach/{NAMESPACE}/{POD}/talker?input=1&output=1&error=1"
    _, ws = await open_websocket(node, target, "v5.channel.k8s.io")
    await ws.send(b"\x00hello\n")
    seen = b""
    async with asyncio.timeout(60):
        while b"got hello\n" not in seen:
            message = await ws.receive()
            assert message is not None
            if message[1][:1] == b"\x01":
                seen += message[1][1:]
    await ws.close()


# --------------------------------------------------------------- port-forward

PORT_FORWARD = f"/portForward/{NAMESPACE}/{POD}"
HTTP_GET = b"GET / HTTP/1.0\r\nHost: pod\r\n\r\n"


async def fetch_through(conn: spdy.ClientConnection, request_id: str) -> bytes:
    """One forwarded connection to port 8080: an error and a data stream, an HTTP request."""
    common = {"port": "8080", "requestID": request_id}
    error = await conn.open_stream({"streamType": "error", **common})
    await error.close()
    data = await conn.open_stream({"streamType": "data", **common})
    await data.write(HTTP_GET)
    answer = b""
    async with asyncio.timeout(60):
        while not data.remote_closed:
            frame = await conn.receive()
            assert frame is not None and not isinstance(frame, spdy.GoAway)
            if isinstance(frame, spdy.Data) and frame.stream_id == data.id:
                answer += frame.data
            if isinstance(frame, spdy.Data) and frame.stream_id == error.id and frame.data:
                raise AssertionError(frame.data.decode())
    return answer


async def wait_for_web(node: Node) -> None:
    async def serving():
        answer = await call(node, "POST", PORT_FORWARD, spdy_headers("portforward.k8s.io"))
        conn = spdy.ClientConnection(answer.reader, answer.writer)
        try:
            return b"hello-from-pod" in await fetch_through(conn, "0")
        except AssertionError:
            return False
        finally:
            await conn.close()

    await eventually(serving, "the web container to serve", seconds=60, every=0.5)


async def test_port_forward_spdy(node):
    await wait_for_web(node)
    answer = await call(node, "POST", PORT_FORWARD, spdy_headers("portforward.k8s.io"))
    assert answer.status == 101
    assert answer.header("x-stream-protocol-version") == "portforward.k8s.io"
    conn = spdy.ClientConnection(answer.reader, answer.writer)
    first = await fetch_through(conn, "1")
    second = await fetch_through(conn, "2")  # several connections over one session
    await conn.close()
    assert first.startswith(b"HTTP/1.") and first.endswith(b"hello-from-pod\n")
    assert second.endswith(b"hello-from-pod\n")


async def test_port_forward_tunnelled_in_websocket(node):
    await wait_for_web(node)
    answer, ws = await open_websocket(node, PORT_FORWARD, "SPDY/3.1+portforward.k8s.io")
    assert answer.header("sec-websocket-protocol") == "SPDY/3.1+portforward.k8s.io"
    # The SPDY client works on a local socket whose bytes travel as WebSocket messages.
    near, far = socket.socketpair()
    far_reader, far_writer = await asyncio.open_connection(sock=far)

    async def outgoing():
        while data := await far_reader.read(65536):
            await ws.send(data)

    async def incoming():
        while (message := await ws.receive()) is not None:
            far_writer.write(message[1])
            await far_writer.drain()

    pumps = [asyncio.create_task(outgoing()), asyncio.create_task(incoming())]
    reader, writer = await asyncio.open_connection(sock=near)
    conn = spdy.ClientConnection(reader, writer)
    try:
        body = await fetch_through(conn, "7")
    finally:
        await conn.close()
        for pump in pumps:
            pump.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
        far_writer.close()
        answer.close()
    assert body.endswith(b"hello-from-pod\n")


async def test_port_forward_of_an_unknown_pod(node):
    answer = await call(
        node, "POST", f"/portForward/{NAMESPACE}/nope", spdy_headers("portforward.k8s.io")
    )
    assert (answer.status, await relay.read_body(answer)) == (404, b"pod does not exist")
