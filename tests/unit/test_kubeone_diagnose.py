"""How the runner reads KubeOne's output: each failure class from KubeOne's own words.

The texts are KubeOne v1.13.7's messages as it prints them (its errors wrap as "runtime: <step>",
"ssh: <op>", "connection to: <target>", "configuration <op>"; see pkg/fail and pkg/cmd/apply.go of
the release). The runs that produce them with the real binary are in
tests/integration/test_kubeone_real.py where they can run here; the others (a cluster that exists)
cannot, and are checked on the text.
"""

from __future__ import annotations

import json

import pytest

from kvinstall.kubeone.runner import diagnose, display_line, error_for

CASES = {
    "unreachable": (
        'Error: runtime: detecting hostname\nruntime: running task on "10.0.0.5"\nssh: dialing\n'
        "connection to: 10.0.0.5:22\ndial tcp 10.0.0.5:22: connect: connection refused",
        "KubeOne could not connect to 10.0.0.5:22 (connection refused)",
        True,
    ),
    "timeout": (
        'Error: runtime: detecting hostname\nruntime: running task on "10.0.0.6"\nssh: dialing\n'
        "connection to: 10.0.0.6:22\ndial tcp 10.0.0.6:22: i/o timeout",
        "KubeOne could not connect to 10.0.0.6:22 (i/o timeout)",
        True,
    ),
    "agent": (
        'Error: runtime: detecting hostname\nruntime: running task on "10.0.0.5"\nssh: agent unix dialing\n'
        'could not open socket "/run/agent.sock": dial unix /run/agent.sock: connect: connection refused',
        "KubeOne could not use the SSH agent (SSH_AUTH_SOCK)",
        False,
    ),
    "host key": (
        "Error: runtime: detecting hostname\nssh: dialing\nconnection to: 10.0.0.5:22\n"
        "ssh: handshake failed: ssh: host key mismatch",
        "a host presented another SSH host key than the one kvinstall verified",
        False,
    ),
    "login": (
        "Error: runtime: detecting hostname\nssh: dialing\nconnection to: 10.0.0.5:22\n"
        "ssh: handshake failed: ssh: unable to authenticate, attempted methods [none publickey], "
        "no supported methods remain",
        "a host refused KubeOne's SSH login",
        False,
    ),
    "version": (
        "Error: configuration validation\nversions.kubernetes: Invalid value: {\"kubernetes\":\"1.36.0\"}: kubernetes "
        "version does not satisfy version constraint '<=1.35': \"1.36.0\" is greater than \"1.35\". This version "
        "is not yet supported. Please refer to the Compatibility section of docs for more details.",
        "this KubeOne supports Kubernetes <=1.35 only, not 1.36.0",
        False,
    ),
    "downgrade": (
        "Error: configuration sanity check\ncluster downgrades are disallowed",
        "KubeOne refuses to downgrade the cluster: kubernetes.version is older than what runs",
        False,
    ),
    "repair+upgrade": (
        'ERRO Repair and upgrade are not supported at the same time!\nWARN Highest version: 1.34.4\n'
        "Error: configuration validation\nrepair and upgrade are not supported at the same time",
        "KubeOne must repair the cluster before it can upgrade it, and will not do both at once",
        False,
    ),
    "broken hosts": (
        'ERRO Host "cp-2" is broken and needs to be manually removed\n'
        "Error: configuration broken hosts check\nbroken host(s) found, remove it manually",
        "KubeOne found broken hosts that must be removed by hand",
        False,
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_each_failure_is_classified(case: str) -> None:
    text, what, transient = CASES[case]
    diag = diagnose(text)
    assert diag is not None and diag.what == what and diag.transient is transient
    assert diag.hint


def test_unknown_output_has_no_diagnosis_and_keeps_the_exit_code_hint() -> None:
    assert diagnose("Error: something new") is None
    err = error_for(16, ["Error: exec: running kubeadm", "stderr: boom"], action="apply")
    assert "exit code 16 (remote command execution error)" in str(err)
    assert "stderr: boom" in str(err) and err.hint == "a command failed on a host; the lines above show which"


def test_the_error_says_what_kubeone_said_classified() -> None:
    lines = ["INFO starting", *CASES["unreachable"][0].splitlines()]
    err = error_for(10, lines, action="apply")
    msg = err.message
    assert msg.startswith("kubeone apply failed with exit code 10 (runtime error): KubeOne could not connect")
    assert "KubeOne said:\n    Error: runtime: detecting hostname" in msg and "INFO starting" not in msg
    assert err.exit_code == 7


def test_json_log_lines_are_shown_as_text() -> None:
    rec = {"level": "warning", "msg": "Task failed, error was: ssh: dialing", "time": "t"}
    assert display_line(json.dumps(rec)) == "WARN Task failed, error was: ssh: dialing"
    assert display_line(json.dumps({"level": "info", "msg": "Determine hostname..."})) == "Determine hostname..."
    assert display_line("Error: plain") == "Error: plain"
    assert display_line("{not json") == "{not json"
