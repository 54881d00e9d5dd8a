"""`kubik agent` joining a `kubik server` with the node token.

The second agent runs in the server's network namespace, with its own data
folder, node name and node API port: it fetches the CA (checked against the
token's hash), gets its certificates for the token, registers its node and
becomes Ready. A wrong secret is refused with 401, a token naming another CA is
refused before the secret is sent.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from kubik.apiserver import nodejoin
from tests.support.node import KubikAgent, KubikNode

CONTROL_PLANE = "node-role.kubernetes.io/control-plane"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    kubik = KubikNode(tmp_path_factory.mktemp("join-server")).start()
    yield kubik
    kubik.stop()


def test_the_node_token_names_the_cluster_ca(server):
    ca_pem = (server.data_dir / "tls" / "ca.crt").read_bytes()
    expected_hash, secret = nodejoin.parse_token(server.node_token)
    assert server.node_token.startswith("K10")
    assert expected_hash == nodejoin.ca_hash(ca_pem)
    assert len(secret) >= 32


def test_an_agent_joins_with_the_token(server, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("agent")  # short: a unix socket path is < 108 bytes
    agent = KubikAgent(server, data_dir, node_name="worker-1").start()
    try:
        nodes = server.get("nodes")["items"]
        by_name = {n["metadata"]["name"]: n for n in nodes}
        assert set(by_name) == {server.node_name, "worker-1"}
        worker = by_name["worker-1"]
        assert CONTROL_PLANE not in worker["metadata"]["labels"]
        assert CONTROL_PLANE in by_name[server.node_name]["metadata"]["labels"]
        port = worker["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        assert port == agent.kubelet_port
        cidrs = {n["spec"]["podCIDR"] for n in nodes}
        assert len(cidrs) == 2
        kubeconfig = data_dir / "agent" / "kubelet.kubeconfig"
        assert kubeconfig.exists()
        whoami = server.kubectl("--kubeconfig", str(kubeconfig), "auth", "whoami", "-o", "json")
        assert whoami.returncode == 0, whoami.stderr
        user = json.loads(whoami.stdout)["status"]["userInfo"]
        assert user["username"] == "system:node:worker-1"
        assert "system:nodes" in user["groups"]
    finally:
        agent.stop()


def test_a_wrong_secret_is_refused(server, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("agent")
    expected_hash, _ = nodejoin.parse_token(server.node_token)
    wrong = f"K10{expected_hash}::server:{'0' * 32}"
    agent = KubikAgent(server, data_dir, token=wrong).launch()
    try:
        assert agent.proc.wait(timeout=60) == 1
        assert "refused the node token (401 Unauthorized)" in agent.log_tail()
    finally:
        agent.stop()
    assert f"node/{agent.node_name}" not in server.ok("get", "nodes", "-o", "name").split()


def test_the_endpoint_answers_401_with_a_status(server):
    done = server.exec_in_netns(
        [
            "curl",
            "-sk",
            "-X",
            "POST",
            "-H",
            "Authorization: Bearer not-the-secret",
            "-d",
            '{"nodeName": "intruder"}',
            f"{server.url}{nodejoin.CREDENTIALS_PATH}",
        ]
    )
    status = json.loads(done.stdout)
    assert (status["kind"], status["code"], status["reason"]) == ("Status", 401, "Unauthorized")


def test_a_token_for_another_ca_is_refused_before_the_secret_is_sent(server, tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("agent")
    _, secret = nodejoin.parse_token(server.node_token)
    other = f"K10{'ab' * 32}::server:{secret}"
    agent = KubikAgent(server, data_dir, token=other).launch()
    try:
        assert agent.proc.wait(timeout=60) == 1
        assert "does not match the token's CA hash" in agent.log_tail()
    finally:
        agent.stop()


def test_bad_node_flags_fail_before_anything_starts(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "kubik.cli.main",
            "agent",
            "--server",
            "https://127.0.0.1:9",
            "--token",
            "K10ab::server:cd",
            "--data-dir",
            str(tmp_path),
            "--register-with-taints",
            "no-effect",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "taint 'no-effect' is not key[=value]:Effect" in done.stderr
    assert not (tmp_path / "agent").exists()


def test_kubelet_runs_with_credentials_from_files(server, tmp_path_factory):
    joined = tmp_path_factory.mktemp("agent")
    KubikAgent(server, joined, node_name="worker-2").start().stop()
    server.ok("delete", "node", "worker-2")
    tls = joined / "agent" / "tls"
    kubelet = KubikAgent(
        server,
        tmp_path_factory.mktemp("kubelet"),
        node_name="worker-2",
        role_args=[
            "kubelet",
            "--kubeconfig",
            str(joined / "agent" / "kubelet.kubeconfig"),
            "--tls-cert-file",
            str(tls / "serving-kubelet.crt"),
            "--tls-private-key-file",
            str(tls / "serving-kubelet.key"),
            "--client-ca-file",
            str(tls / "ca.crt"),
        ],
    ).start()
    try:
        node = server.get("node", "worker-2")
        assert node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"] == kubelet.kubelet_port
    finally:
        kubelet.stop()
