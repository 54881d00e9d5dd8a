"""Pod status from runtime state, and the actions a sync decides, without a runtime.

The runtime state is built by hand (what `runtimestate.inspect` would have
read), so each case checks upstream's rules directly: phases, conditions and
their messages, container states with last states and waiting reasons,
readiness from probes, and which containers a sync starts or kills.
"""

from __future__ import annotations

import copy

from kubik.kubelet import actions
from kubik.kubelet.cri import api_pb2
from kubik.kubelet.runtimestate import (
    CREATED,
    EXITED,
    RUNNING,
    ContainerRecord,
    PodRuntime,
    SandboxRecord,
)
from kubik.kubelet.status import Inputs, containers_ready, generate, get_phase, same

UID = "0b4ad0e1-1111-2222-3333-444455556666"
SECOND = 1_000_000_000
T0 = 1_700_000_000 * SECOND


def make_pod(*, containers=("app",), inits=(), policy="Always", **spec_extra) -> dict:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "web", "namespace": "ns", "uid": UID, "resourceVersion": "5"},
        "spec": {
            "restartPolicy": policy,
            "containers": [{"name": n, "image": "kubik.local/busybox:latest"} for n in containers],
            **({"initContainers": [{"name": n, "image": "img"} for n in inits]} if inits else {}),
            **spec_extra,
        },
        "status": {"phase": "Pending", "qosClass": "BestEffort"},
    }


def sandbox(ready=True, ip="10.88.0.7", attempt=0) -> SandboxRecord:
    state = api_pb2.SANDBOX_READY if ready else api_pb2.SANDBOX_NOTREADY
    return SandboxRecord(
        id=f"sb{attempt}",
        state=state,
        attempt=attempt,
        created_at=T0,
        ip=ip,
        ips=[ip] if ip else [],
    )


def record(name, state, *, n=0, exit_code=0, reason="", restarts=0, message="", hash_=""):
    return ContainerRecord(
        id=f"{name}-{n}",
        name=name,
        sandbox_id="sb0",
        state=state,
        created_at=T0 + n * SECOND,
        started_at=T0 + (n + 1) * SECOND,
        finished_at=T0 + (n + 2) * SECOND if state == EXITED else 0,
        exit_code=exit_code,
        reason=reason,
        message=message,
        image="kubik.local/busybox:latest",
        image_ref="sha256:abc",
        restart_count=restarts,
        hash=hash_,
    )


def runtime(*records, sandboxes=None) -> PodRuntime:
    state = PodRuntime(UID, sandboxes=list(sandboxes if sandboxes is not None else [sandbox()]))
    state.containers = sorted(records, key=lambda r: r.created_at, reverse=True)
    return state


def conditions(status: dict) -> dict:
    return {c["type"]: c for c in status["conditions"]}


def test_a_new_pod_is_pending_with_containers_being_created():
    pod = make_pod(containers=("app", "side"))
    status = generate(pod, PodRuntime(UID), Inputs(host_ip="192.0.2.1"))
    assert status["phase"] == "Pending"
    assert status["hostIP"] == "192.0.2.1" and status["hostIPs"] == [{"ip": "192.0.2.1"}]
    assert "podIP" not in status
    assert [s["state"] for s in status["containerStatuses"]] == [
        {"waiting": {"reason": "ContainerCreating"}}
    ] * 2
    found = conditions(status)
    assert found["PodReadyToStartContainers"]["status"] == "False"
    assert found["Initialized"]["status"] == "True"
    assert found["PodScheduled"]["status"] == "True"
    assert found["Ready"] == {
        **found["Ready"],
        "status": "False",
        "reason": "ContainersNotReady",
        "message": "containers with unready status: [app side]",
    }
    assert [c["type"] for c in status["conditions"]] == [
        "PodReadyToStartContainers",
        "Initialized",
        "Ready",
        "ContainersReady",
        "PodScheduled",
    ]
    assert status["startTime"] and status["qosClass"] == "BestEffort"


def test_a_running_container_without_probes_is_ready():
    pod = make_pod()
    status = generate(pod, runtime(record("app", RUNNING)), Inputs())
    assert status["phase"] == "Running"
    assert status["podIP"] == "10.88.0.7" and status["podIPs"] == [{"ip": "10.88.0.7"}]
    (app,) = status["containerStatuses"]
    assert app["ready"] is True and app["started"] is True
    assert app["containerID"] == "containerd://app-0"
    assert app["imageID"] == "sha256:abc"
    assert app["state"] == {"running": {"startedAt": "2023-11-14T22:13:21Z"}}
    assert conditions(status)["Ready"]["status"] == "True"
    assert conditions(status)["ContainersReady"]["status"] == "True"


def test_readiness_and_startup_probes_gate_readiness():
    pod = make_pod()
    pod["spec"]["containers"][0]["readinessProbe"] = {"exec": {"command": ["true"]}}
    pod["spec"]["containers"][0]["startupProbe"] = {"exec": {"command": ["true"]}}
    state = runtime(record("app", RUNNING))
    (app,) = generate(pod, state, Inputs())["containerStatuses"]
    assert (app["started"], app["ready"]) == (False, False)
    (app,) = generate(pod, state, Inputs(started={"app-0": True}))["containerStatuses"]
    assert (app["started"], app["ready"]) == (True, False)
    (app,) = generate(pod, state, Inputs(started={"app-0": True}, readiness={"app-0": True}))[
        "containerStatuses"
    ]
    assert (app["started"], app["ready"]) == (True, True)


def test_a_crashing_container_waits_in_back_off_with_its_last_termination():
    pod = make_pod()
    state = runtime(
        record("app", EXITED, n=1, exit_code=2, reason="Error", restarts=1),
        record("app", EXITED, n=0, exit_code=2, reason="Error", restarts=0),
    )
    reasons = {"app": ("CrashLoopBackOff", "back-off 10s restarting failed container=app")}
    status = generate(pod, state, Inputs(reasons=reasons))
    (app,) = status["containerStatuses"]
    assert app["restartCount"] == 1
    assert app["state"] == {
        "waiting": {
            "reason": "CrashLoopBackOff",
            "message": "back-off 10s restarting failed container=app",
        }
    }
    assert app["lastState"]["terminated"]["exitCode"] == 2
    assert app["lastState"]["terminated"]["reason"] == "Error"
    assert app["lastState"]["terminated"]["containerID"] == "containerd://app-1"
    assert status["phase"] == "Running"  # restarting, as upstream counts it


def test_the_previous_instance_is_the_last_state_of_a_running_container():
    pod = make_pod()
    state = runtime(
        record("app", RUNNING, n=1, restarts=1),
        record("app", EXITED, n=0, exit_code=137, reason="OOMKilled"),
    )
    (app,) = generate(pod, state, Inputs())["containerStatuses"]
    assert "running" in app["state"]
    assert app["lastState"]["terminated"]["reason"] == "OOMKilled"


def test_termination_messages_and_start_errors_are_reported():
    pod = make_pod(policy="Never")
    state = runtime(
        record("app", EXITED, exit_code=128, reason="StartError", message="exec: not found")
    )
    status = generate(pod, state, Inputs())
    terminated = status["containerStatuses"][0]["state"]["terminated"]
    assert terminated["reason"] == "StartError" and terminated["message"] == "exec: not found"
    assert status["phase"] == "Failed"


def test_init_containers_run_before_the_pod_is_initialized():
    pod = make_pod(inits=("one", "two"))
    state = runtime(record("one", EXITED, n=0), record("two", RUNNING, n=1))
    status = generate(pod, state, Inputs())
    assert status["phase"] == "Pending"
    initialized = conditions(status)["Initialized"]
    assert initialized["status"] == "False"
    assert initialized["reason"] == "ContainersNotInitialized"
    assert initialized["message"] == "containers with incomplete status: [two]"
    one, two = status["initContainerStatuses"]
    assert one["ready"] is True and "terminated" in one["state"]
    assert two["ready"] is False and "running" in two["state"]
    assert status["containerStatuses"][0]["state"] == {"waiting": {"reason": "PodInitializing"}}


def test_a_failed_init_container_fails_a_never_restarting_pod():
    pod = make_pod(inits=("one",), policy="Never")
    state = runtime(record("one", EXITED, exit_code=1, reason="Error"))
    assert generate(pod, state, Inputs())["phase"] == "Failed"
    pod = make_pod(inits=("one",), policy="Always")
    reasons = {"one": ("CrashLoopBackOff", "back-off")}
    status = generate(pod, state, Inputs(reasons=reasons))
    assert status["phase"] == "Pending"
    assert status["initContainerStatuses"][0]["state"]["waiting"]["reason"] == "CrashLoopBackOff"


def test_completed_pods_by_restart_policy():
    ok = runtime(record("app", EXITED, exit_code=0, reason="Completed"), sandboxes=[sandbox(False)])
    bad = runtime(record("app", EXITED, exit_code=1, reason="Error"), sandboxes=[sandbox(False)])
    status = generate(make_pod(policy="Never"), ok, Inputs())
    assert status["phase"] == "Succeeded"
    assert conditions(status)["ContainersReady"]["reason"] == "PodCompleted"
    assert conditions(status)["Ready"]["reason"] == "PodCompleted"
    assert generate(make_pod(policy="Never"), bad, Inputs())["phase"] == "Failed"
    assert generate(make_pod(policy="OnFailure"), ok, Inputs())["phase"] == "Succeeded"
    assert generate(make_pod(policy="OnFailure"), bad, Inputs())["phase"] == "Running"
    # a deleted pod is terminal whatever its policy
    assert generate(make_pod(policy="Always"), bad, Inputs(terminal=True))["phase"] == "Failed"


def test_a_terminal_phase_is_never_left_and_keeps_its_reason():
    pod = make_pod()
    pod["status"] = {"phase": "Failed", "reason": "DeadlineExceeded", "message": "too long"}
    status = generate(pod, runtime(record("app", RUNNING)), Inputs())
    assert (status["phase"], status["reason"], status["message"]) == (
        "Failed",
        "DeadlineExceeded",
        "too long",
    )


def test_deadline_exceeded():
    status = generate(make_pod(), runtime(record("app", RUNNING)), Inputs(deadline_exceeded=True))
    assert status["phase"] == "Failed"
    assert status["reason"] == "DeadlineExceeded"
    assert status["message"] == "Pod was active on the node longer than the specified deadline"


def test_condition_times_stay_while_their_status_does_and_writes_compare_equal():
    pod = make_pod()
    state = runtime(record("app", RUNNING))
    first = generate(pod, state, Inputs())
    for condition in first["conditions"]:
        condition["lastTransitionTime"] = "2020-01-01T00:00:00Z"
    pod["status"] = copy.deepcopy(first)
    second = generate(pod, state, Inputs())
    assert {c["lastTransitionTime"] for c in second["conditions"]} == {"2020-01-01T00:00:00Z"}
    assert same(second, pod["status"])
    pod["status"]["conditions"] = [
        {k: v for k, v in c.items() if v is not None} for c in pod["status"]["conditions"]
    ]
    assert same(second, pod["status"])  # the API drops null lastProbeTime
    third = generate(pod, runtime(record("app", EXITED, exit_code=1)), Inputs())
    assert not same(third, pod["status"])
    assert conditions(third)["Ready"]["lastTransitionTime"] != "2020-01-01T00:00:00Z"


def test_readiness_gates_and_foreign_conditions():
    pod = make_pod(readinessGates=[{"conditionType": "example.com/lb"}])
    state = runtime(record("app", RUNNING))
    ready = conditions(generate(pod, state, Inputs()))["Ready"]
    assert ready["reason"] == "ReadinessGatesNotReady"
    assert ready["message"] == (
        'corresponding condition of pod readiness gate "example.com/lb" does not exist.'
    )
    pod["status"]["conditions"] = [{"type": "example.com/lb", "status": "True"}]
    status = generate(pod, state, Inputs())
    assert conditions(status)["Ready"]["status"] == "True"
    assert conditions(status)["example.com/lb"]["status"] == "True"


def test_pod_ips_survive_a_stopped_sandbox_and_host_network_uses_the_node_ip():
    pod = make_pod(policy="Never")
    pod["status"]["podIPs"] = [{"ip": "10.88.0.9"}]
    state = runtime(record("app", EXITED), sandboxes=[sandbox(False)])
    assert generate(pod, state, Inputs())["podIP"] == "10.88.0.9"
    host = make_pod(hostNetwork=True)
    status = generate(host, runtime(record("app", RUNNING)), Inputs(host_ip="192.0.2.4"))
    assert status["podIP"] == "192.0.2.4"


def test_get_phase_counts_unknown_containers_as_pending():
    pod = make_pod(containers=("a", "b"))
    running = {"name": "a", "state": {"running": {}}, "lastState": {}, "ready": True}
    assert get_phase(pod, [], [running], False) == "Pending"
    assert containers_ready(pod, [running], "Running")["message"] == (
        "containers with unknown status: [b]"
    )


# ------------------------------------------------------------ actions


def test_actions_create_the_sandbox_then_start_everything():
    pod = make_pod(containers=("a", "b"))
    todo = actions.compute(pod, PodRuntime(UID))
    assert todo.create_sandbox and todo.kill_pod and todo.attempt == 0
    assert [c["name"] for c in todo.start] == ["a", "b"]
    todo = actions.compute(pod, runtime())
    assert not todo.create_sandbox and [c["name"] for c in todo.start] == ["a", "b"]
    todo = actions.compute(pod, runtime(record("a", RUNNING), record("b", RUNNING)))
    assert not todo.start and not todo.kill and not todo.kill_pod


def test_actions_recreate_a_dead_sandbox_with_the_next_attempt():
    pod = make_pod()
    state = runtime(record("app", EXITED), sandboxes=[sandbox(False, attempt=2)])
    todo = actions.compute(pod, state)
    assert todo.create_sandbox and todo.attempt == 3 and todo.sandbox_id == "sb2"
    # a pod that must not restart gets no new sandbox once it ran
    todo = actions.compute(make_pod(policy="Never"), state)
    assert todo.kill_pod and not todo.create_sandbox


def test_actions_run_init_containers_one_at_a_time():
    pod = make_pod(inits=("one", "two"))
    todo = actions.compute(pod, runtime())
    assert todo.next_init["name"] == "one" and not todo.start
    todo = actions.compute(pod, runtime(record("one", RUNNING)))
    assert todo.next_init is None and not todo.start
    todo = actions.compute(pod, runtime(record("one", EXITED)))
    assert todo.next_init["name"] == "two"
    todo = actions.compute(pod, runtime(record("one", EXITED), record("two", EXITED, n=1)))
    assert todo.next_init is None and [c["name"] for c in todo.start] == ["app"]
    failed = runtime(record("one", EXITED, exit_code=3))
    assert actions.compute(pod, failed).next_init["name"] == "one"  # retried
    assert actions.compute(make_pod(inits=("one",), policy="Never"), failed).kill_pod


def test_actions_follow_the_restart_policy():
    died = runtime(record("app", EXITED, exit_code=1))
    done = runtime(record("app", EXITED, exit_code=0))
    assert actions.compute(make_pod(policy="Always"), done).start
    assert actions.compute(make_pod(policy="OnFailure"), died).start
    todo = actions.compute(make_pod(policy="OnFailure"), done)
    assert not todo.start and todo.kill_pod
    assert not actions.compute(make_pod(policy="Never"), died).start
    created = runtime(record("app", CREATED))
    assert actions.compute(make_pod(policy="Never"), created).start  # never ran: start it


def test_actions_restart_containers_failing_liveness_or_changed():
    pod = make_pod()
    spec_hash = actions.container_hash(pod["spec"]["containers"][0])
    state = runtime(record("app", RUNNING, hash_=spec_hash))
    todo = actions.compute(pod, state, liveness_failed={"app-0"})
    assert todo.kill["app-0"].message == "Container app failed liveness probe, will be restarted"
    assert todo.kill["app-0"].reason == actions.REASON_LIVENESS
    assert [c["name"] for c in todo.start] == ["app"]
    assert not actions.compute(pod, state).kill
    changed = copy.deepcopy(pod)
    changed["spec"]["containers"][0]["image"] = "kubik.local/busybox:other"
    todo = actions.compute(changed, state)
    assert todo.kill["app-0"].message == "Container app definition changed, will be restarted"
    never = make_pod(policy="Never")
    todo = actions.compute(never, state, liveness_failed={"app-0"})
    assert todo.kill["app-0"].message == "Container app failed liveness probe"
    assert todo.kill_pod and not todo.start
