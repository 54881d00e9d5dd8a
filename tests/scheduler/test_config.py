"""KubeSchedulerConfiguration: defaults, enabling and disabling, weights, plugin modules."""

from __future__ import annotations

import sys
import textwrap

import pytest

from kubik.scheduler import config
from kubik.scheduler.config import ConfigError
from kubik.scheduler.scheduler import Scheduler


def names(entries):
    return [name for name, _ in entries]


def test_defaults_are_upstreams_with_its_weights():
    (profile,) = config.load(None).profiles
    assert profile.scheduler_name == "default-scheduler"
    assert profile.plugins["score"] == [
        ("TaintToleration", 3),
        ("NodeAffinity", 2),
        ("NodeResourcesFit", 1),
        ("PodTopologySpread", 2),
        ("InterPodAffinity", 2),
        ("NodeResourcesBalancedAllocation", 1),
        ("ImageLocality", 1),
    ]
    assert names(profile.plugins["filter"]) == [
        "NodeUnschedulable",
        "NodeName",
        "TaintToleration",
        "NodeAffinity",
        "NodePorts",
        "NodeResourcesFit",
        "VolumeBinding",
        "PodTopologySpread",
        "InterPodAffinity",
    ]
    assert names(profile.plugins["postFilter"]) == ["DefaultPreemption"]
    assert names(profile.plugins["preBind"]) == ["VolumeBinding"]
    assert names(profile.plugins["bind"]) == ["DefaultBinder"]
    assert names(profile.plugins["preEnqueue"]) == ["SchedulingGates"]


def test_disabling_and_reweighting_at_one_point():
    document = {
        "profiles": [
            {
                "plugins": {
                    "score": {
                        "enabled": [{"name": "NodeResourcesFit", "weight": 5}],
                        "disabled": [{"name": "*"}],
                    },
                    "filter": {"disabled": [{"name": "NodePorts"}]},
                }
            }
        ]
    }
    (profile,) = config.parse(document).profiles
    assert profile.plugins["score"] == [("NodeResourcesFit", 5)]
    assert "NodePorts" not in names(profile.plugins["filter"])
    assert "NodePorts" in names(profile.plugins["preFilter"])  # only the filter was disabled


def test_multi_point_reconfigures_in_place_and_appends():
    document = {
        "profiles": [
            {
                "plugins": {
                    "multiPoint": {
                        "enabled": [{"name": "ImageLocality", "weight": 7}],
                        "disabled": [{"name": "TaintToleration"}],
                    }
                }
            }
        ]
    }
    (profile,) = config.parse(document).profiles
    assert ("ImageLocality", 7) in profile.plugins["score"]
    assert "TaintToleration" not in names(profile.plugins["filter"])


def test_several_profiles_and_their_settings():
    document = {
        "percentageOfNodesToScore": 40,
        "podInitialBackoffSeconds": 2,
        "podMaxBackoffSeconds": 20,
        "leaderElection": {"leaderElect": False, "resourceName": "my-scheduler"},
        "profiles": [
            {"schedulerName": "default-scheduler"},
            {
                "schedulerName": "packer",
                "percentageOfNodesToScore": 100,
                "pluginConfig": [
                    {
                        "name": "NodeResourcesFit",
                        "args": {"scoringStrategy": {"type": "MostAllocated"}},
                    }
                ],
            },
        ],
    }
    parsed = config.parse(document)
    assert [p.scheduler_name for p in parsed.profiles] == ["default-scheduler", "packer"]
    assert parsed.percentage_of_nodes_to_score == 40
    assert (parsed.initial_backoff, parsed.max_backoff) == (2.0, 20.0)
    assert (parsed.leader_elect, parsed.lease_name) == (False, "my-scheduler")
    packer = parsed.profiles[1]
    assert packer.percentage_of_nodes_to_score == 100
    assert packer.plugin_args["NodeResourcesFit"]["scoringStrategy"]["type"] == "MostAllocated"


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (
            {"profiles": [{"plugins": {"filter": {"enabled": [{"name": "Nope"}]}}}]},
            "unknown plugin",
        ),
        ({"profiles": [{"plugins": {"score": {"enabled": [{"name": "NodePorts"}]}}}]}, "no score"),
        ({"profiles": [{}, {}]}, "duplicate"),
        ({"profiles": [{"plugins": {"bind": {"disabled": [{"name": "*"}]}}}]}, "bind plugin"),
        ({"percentageOfNodesToScore": 150}, "percentageOfNodesToScore"),
        ({"podInitialBackoffSeconds": 20}, "podMaxBackoffSeconds"),
        ({"profile": []}, "unknown field"),
        ({"kind": "KubeProxyConfiguration"}, "KubeSchedulerConfiguration"),
        ({"pluginModules": ["no.such.module"]}, "cannot import"),
        ({"pluginModules": [{"name": "X", "path": "json:nothing"}]}, "names no class"),
        (
            {"profiles": [{"plugins": {"queueSort": {"enabled": [{"name": "Mine"}]}}}]},
            "PrioritySort",
        ),
    ],
)
def test_bad_configurations_say_why(document, message):
    with pytest.raises(ConfigError, match=message):
        config.parse(document)


def test_plugin_modules_by_module_and_by_path(tmp_path, monkeypatch):
    (tmp_path / "kubik_test_plugins.py").write_text(
        textwrap.dedent(
            """
            from kubik.scheduler.framework import register

            @register
            class Registered:
                name = "TestRegistered"

                def score(self, state, pod, node):
                    return 0

            class Plain:
                def __init__(self, args):
                    self.args = args

                def filter(self, state, pod, node):
                    return None
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "kubik_test_plugins", raising=False)
    document = {
        "pluginModules": [
            "kubik_test_plugins",
            {"name": "PlainFilter", "path": "kubik_test_plugins:Plain"},
        ],
        "profiles": [
            {
                "plugins": {
                    "score": {"enabled": [{"name": "TestRegistered", "weight": 4}]},
                    "filter": {"enabled": [{"name": "PlainFilter"}]},
                },
                "pluginConfig": [{"name": "PlainFilter", "args": {"x": 1}}],
            }
        ],
    }
    (profile,) = config.parse(document).profiles
    assert ("TestRegistered", 4) in profile.plugins["score"]
    assert names(profile.plugins["filter"])[-1] == "PlainFilter"
    assert profile.classes["PlainFilter"].__name__ == "Plain"


def test_loading_a_file(tmp_path):
    path = tmp_path / "scheduler.yaml"
    path.write_text(
        "apiVersion: kubescheduler.config.k8s.io/v1\n"
        "kind: KubeSchedulerConfiguration\n"
        "profiles:\n- schedulerName: custom\n"
    )
    assert config.load(str(path)).profiles[0].scheduler_name == "custom"
    path.write_text("- not a mapping\n")
    with pytest.raises(ConfigError):
        config.load(str(path))
    with pytest.raises(ConfigError, match="cannot read"):
        config.load(str(tmp_path / "missing.yaml"))


def test_plugin_args_are_checked_before_the_scheduler_runs():
    document = {
        "profiles": [
            {
                "pluginConfig": [
                    {"name": "NodeResourcesFit", "args": {"scoringStrategy": {"type": "Sideways"}}}
                ]
            }
        ]
    }
    with pytest.raises(ConfigError, match="scoring strategy Sideways is not supported"):
        Scheduler(kubeconfig="unused", config=config.parse(document))
