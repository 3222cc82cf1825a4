"""Hostile input, pure parts: YAML bombs, malformed bundle metadata, known_hosts markers, unsafe
config values, the Dex checksum, the redactor, and the cancellable pool. The same cases through
the real CLI and real servers are in tests/integration/test_hostile_*.py."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import subprocess
import threading
from pathlib import Path
from typing import Any

import paramiko
import pytest

from kvinstall.catalog import load_catalog
from kvinstall.components.base import Artifact
from kvinstall.components.dex import (
    CHECKSUM_AT_APPLY,
    CHECKSUM_KEY_FILE,
    ChecksumKeyFile,
    DexComponent,
    config_checksum,
    for_state_dir,
)
from kvinstall.config.loader import MAX_FILE_BYTES, MAX_NODES, load_text
from kvinstall.config.models import Config
from kvinstall.config.placeholders import with_unknown_secrets
from kvinstall.errors import ConfigError, IntegrityError, LocalIOError, SSHError
from kvinstall.hosts.hostkeys import HostKeyPolicy, fingerprint, host_matches, read_known_hosts
from kvinstall.hosts.ssh import prefer_key_types
from kvinstall.mirror.cancel import Cancelled, CancelToken, run_parallel
from kvinstall.mirror.descriptor import MAX_NESTING, Descriptor, manifest_children, walk_manifests
from kvinstall.mirror.model import LockEntry
from kvinstall.session import open_session

CATALOG = load_catalog()
HEAD = "apiVersion: kvinstall.io/v1alpha1\nkind: VirtualizationCluster\nmetadata: {name: lab}\n"
HOSTS = "hosts: [{address: 192.0.2.10, role: controlPlane}]\n"


def problems(text: str) -> list[Any]:
    with pytest.raises(ConfigError) as exc:
        load_text(text, catalog=CATALOG)
    assert exc.value.exit_code == 3
    return exc.value.problems


# --- YAML bombs -----------------------------------------------------------------------------------


def laughs(levels: int, indent: str = "") -> str:
    """The classic "billion laughs": each level lists the previous one nine times (9**levels nodes)."""
    out = [f'{indent}l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for n in range(1, levels + 1):
        out.append(f"{indent}l{n}: &l{n} [" + ",".join([f"*l{n - 1}"] * 9) + "]")
    return "\n".join(out) + "\n"


def test_billion_laughs_at_the_top_is_refused_before_expansion() -> None:
    text = HEAD + HOSTS + "x-bomb:\n" + laughs(9, "  ")
    assert len(text) < 1000  # a few hundred bytes that name 9**9 = 387 million strings
    found = problems(text)
    assert [p.code for p in found] == ["yaml-expansion"]
    assert f"more than {MAX_NODES} values" in str(found[0])


def test_billion_laughs_inside_connector_config_is_refused() -> None:
    text = (
        HEAD
        + HOSTS
        + (
            "auth:\n  mode: oidc\n  issuer: https://dex.example.test/dex\n  oidc:\n    connectors:\n"
            "      - type: ldap\n        id: corp\n        name: Corp\n        config:\n"
        )
        + laughs(9, "          ")
    )
    assert [p.code for p in problems(text)] == ["yaml-expansion"]


def test_aliases_that_expand_modestly_still_load() -> None:
    text = HEAD + "hosts:\n  - &h {address: 192.0.2.10, role: controlPlane}\n" + "x: &l1 [1, 2]\n"
    found = problems(text)  # only the unknown key: the aliases themselves are fine
    assert [p.code for p in found] == ["unknown-field"]


def test_oversized_and_deeply_nested_files_are_config_errors() -> None:
    assert [p.code for p in problems("#" * (MAX_FILE_BYTES + 1))] == ["too-large"]
    found = problems("a: " + "[" * 50_000 + "]" * 50_000 + "\n")
    assert found[0].code == "yaml" and "nested too deeply" in found[0].message


# --- bundle metadata --------------------------------------------------------------------------------

D = "sha256:" + "d" * 64


def lock_entry(**change: object) -> dict[str, object]:
    entry: dict[str, object] = {
        "reference": "docker.io/a/b:v1", "kind": "image", "repository": "a/b", "tag": "v1", "digest": D,
        "mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 100, "upstreamDigest": D,
    }  # fmt: skip
    entry.update(change)
    return {k: v for k, v in entry.items() if v is not None}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"digest": "sha256:../../../etc/shadow"}, "entries[2].digest"),
        ({"digest": None}, "entries[2].digest"),
        ({"digest": "sha512:" + "a" * 128}, "entries[2].digest"),
        ({"repository": "../../v2/other"}, "entries[2].repository"),
        ({"tag": "v1\nX-Injected: 1"}, "entries[2].tag"),
        ({"size": "12"}, "entries[2].size"),
        ({"size": -1}, "entries[2].size"),
        ({"size": True}, "entries[2].size"),
        ({"kind": "exploit"}, "entries[2].kind"),
        ({"reference": ["x"]}, "entries[2].reference"),
        ({"upstreamDigest": "sha256:zz"}, "entries[2].upstreamDigest"),
    ],
)
def test_lock_entries_are_checked_field_by_field(change: dict[str, object], field: str) -> None:
    with pytest.raises(IntegrityError) as exc:
        LockEntry.from_json(lock_entry(**change), "entries[2]", "bundle.tar")
    assert exc.value.exit_code == 11
    assert field in str(exc.value) and "bundle.tar" in str(exc.value)


def test_lock_entry_that_is_not_an_object() -> None:
    with pytest.raises(IntegrityError, match=r"entries\[0\]: expected an object"):
        LockEntry.from_json("x", "entries[0]")


@pytest.mark.parametrize(
    ("doc", "field"),
    [
        (b"not json", "is not valid JSON"),
        (b"[]", "is not a JSON object"),
        (b'{"manifests": {}}', "manifests: expected a list"),
        (b'{"manifests": ["x"]}', "manifests[0]: expected an object"),
        (b'{"manifests": [{"digest": "sha256:1", "size": 1}]}', "manifests[0].digest"),
        (b'{"layers": [{"digest": "%s", "size": -5}]}' % D.encode(), "layers[0].size"),
        (b'{"config": {"digest": "%s"}}' % D.encode(), "config.size"),
        (b'{"layers": 7}', "layers: expected a list"),
        (b"[" * 100_000 + b"]" * 100_000, "is not valid JSON"),
    ],
)
def test_manifests_are_checked_field_by_field(doc: bytes, field: str) -> None:
    with pytest.raises(IntegrityError) as exc:
        manifest_children(doc, "", where="img")
    assert field in str(exc.value) and exc.value.exit_code == 11


def test_an_oversized_manifest_is_refused_unread() -> None:
    with pytest.raises(IntegrityError, match="more than the 4194304 allowed"):
        manifest_children(b" " * (4 * 1024 * 1024 + 1), "")


def _chain(depth: int, twice: bool) -> tuple[dict[str, bytes], Descriptor]:
    """depth indexes, each listing the one below (twice when `twice`), over one image manifest."""
    blobs: dict[str, bytes] = {}

    def put(doc: dict[str, Any]) -> Descriptor:
        data = json.dumps(doc).encode()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return Descriptor(digest, len(data))

    child = put({"config": {"digest": D, "size": 2}, "layers": []})
    for _ in range(depth):
        entry = {"digest": child.digest, "size": child.size}
        child = put({"manifests": [entry, entry] if twice else [entry]})
    return blobs, child


def test_walk_visits_each_digest_once() -> None:
    blobs, root = _chain(MAX_NESTING - 1, twice=True)  # 2**15 paths, 16 distinct manifests
    reads: list[str] = []

    def read(d: Descriptor) -> tuple[bytes, str]:
        reads.append(d.digest)
        return blobs[d.digest], ""

    order, found = walk_manifests(root, read, where="bundle")
    assert len(reads) == len(set(reads)) == MAX_NESTING
    assert order[-1] == root.digest and len(order) == MAX_NESTING  # children first, each once
    assert [b.digest for b in found] == [D]


@pytest.mark.parametrize("depth", [40, 1200])
def test_deep_chains_end_in_an_integrity_error(depth: int) -> None:
    blobs, root = _chain(depth, twice=depth < 100)
    with pytest.raises(IntegrityError, match=f"nested more than {MAX_NESTING} levels"):
        walk_manifests(root, lambda d: (blobs[d.digest], ""), where="bundle")


# --- known_hosts ----------------------------------------------------------------------------------


def keypair(tmp: Path, name: str, kind: str = "ed25519") -> paramiko.PKey:
    path = tmp / name
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(path)], check=True)
    return paramiko.PKey.from_path(str(path))


def line(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.get_base64()}"


def test_markers_revoked_honoured_cert_authority_skipped(tmp_path: Path) -> None:
    good, bad, ca = keypair(tmp_path, "good"), keypair(tmp_path, "bad"), keypair(tmp_path, "ca")
    known = tmp_path / "known_hosts"
    known.write_text(
        "# a comment\n"
        f"@cert-authority *.example.test {line(ca)}\n"
        f"@revoked 10.0.0.* {line(bad)}\n"
        f"10.0.0.1,10.0.0.2 {line(good)}\n"
        f"10.0.0.3 {line(bad)}\n"
        "10.0.0.4 ssh-ed25519 !!notbase64!!\n"
        "@strange 10.0.0.5 ssh-ed25519 AAAA\n"
    )
    policy = HostKeyPolicy(tmp_path / "own", user_known_hosts=[known])
    assert any("@cert-authority" in n and ":2:" in n for n in policy.notes)
    assert any("not valid base64" in n for n in policy.notes)
    assert any("unknown marker @strange" in n for n in policy.notes)
    assert policy.verify("10.0.0.2", 22, good).verdict == "trusted"
    # Revoked for 10.0.0.* even where a plain line lists it, and even when pinned in the config.
    for kwargs in ({}, {"pinned": line(bad)}):
        with pytest.raises(SSHError) as exc:
            policy.verify("10.0.0.3", 22, bad, **kwargs)
        assert "revoked" in str(exc.value) and f"{known}:3" in str(exc.value) and exc.value.exit_code == 6
    assert fingerprint(bad) in policy.untrusted.values()


def test_host_patterns_negation_and_hashed_names() -> None:
    assert host_matches(["10.0.0.*", "!10.0.0.7"], "10.0.0.6")
    assert not host_matches(["10.0.0.*", "!10.0.0.7"], "10.0.0.7")
    assert host_matches(["[10.0.0.1]:2222"], "[10.0.0.1]:2222")  # brackets are literal
    assert not host_matches(["[10.0.0.1]:2222"], "1")
    assert host_matches(["Node?.Example.TEST"], "node1.example.test")
    salt = b"0123456789abcdefghij"
    digest = hmac.new(salt, b"10.9.8.7", hashlib.sha1).digest()
    hashed = f"|1|{base64.b64encode(salt).decode()}|{base64.b64encode(digest).decode()}"
    assert host_matches([hashed], "10.9.8.7") and not host_matches([hashed], "10.9.8.8")


def test_preferred_key_types_put_the_recorded_type_first(tmp_path: Path) -> None:
    rsa, ed = keypair(tmp_path, "rsa", "rsa"), keypair(tmp_path, "ed")
    known = tmp_path / "known_hosts"
    known.write_text(f"10.0.0.1 {line(rsa)}\n")
    policy = HostKeyPolicy(tmp_path / "own", user_known_hosts=[known])
    assert policy.preferred_types("10.0.0.1", 22) == ["ssh-rsa"]
    assert policy.preferred_types("10.0.0.1", 22, pinned=line(ed)) == ["ssh-ed25519"]
    assert policy.preferred_types("10.0.0.9", 22) == []
    a, b = socket.socketpair()
    try:
        transport = paramiko.Transport(a)  # not started: only its algorithm preferences are set
        default = list(transport.get_security_options().key_types)
        prefer_key_types(transport, ["ssh-rsa"])
        now = list(transport.get_security_options().key_types)
        assert now[:2] == ["rsa-sha2-512", "rsa-sha2-256"] and sorted(now) == sorted(default)
        transport.close()
    finally:
        b.close()
    # With only an ed25519 key offered while RSA is on record: refused, and the message says so.
    with pytest.raises(SSHError, match="offers only a ssh-ed25519 key") as exc:
        policy.verify("10.0.0.1", 22, ed)
    assert "CHANGED" not in str(exc.value)


def test_a_known_hosts_file_that_cannot_be_read(tmp_path: Path) -> None:
    unreadable = tmp_path / "kh"
    unreadable.mkdir()  # a directory where the file should be
    with pytest.raises(SSHError, match="cannot read known_hosts"):
        read_known_hosts(unreadable)


# --- config values that reach shells, YAML and the kube-apiserver -------------------------------


def codes(text: str) -> dict[str, list[str]]:
    try:
        loaded = load_text(HEAD + text, catalog=CATALOG)
        found = loaded.warnings
    except ConfigError as exc:
        found = exc.problems
    out: dict[str, list[str]] = {}
    for p in found:
        out.setdefault(p.path, []).append(f"{p.severity}:{p.code}")
    return out


def test_unsafe_taints_logins_and_key_paths() -> None:
    got = codes(
        "ssh: {user: 'root; rm -rf /', privateKeyFile: \"/keys/id\\nx\"}\n"
        "hosts:\n"
        "  - {address: 192.0.2.10, role: controlPlane, user: ok.user@corp, privateKeyFile: '/k/$(id)',\n"
        "     taints: [{key: 'a b', value: 'x\"y', effect: NoSchedule}, {key: good/key, value: v1, effect: NoExecute}]}\n"
        "  - {address: 192.0.2.11, role: worker, user: '-oProxyCommand=x'}\n"
    )
    assert got["ssh.user"] == ["error:unsafe-value"]
    assert got["ssh.privateKeyFile"] == ["error:unsafe-value"]
    assert got["hosts[0].privateKeyFile"] == ["warning:unsafe-value"]
    assert got["hosts[0].taints[0].key"] == ["error:unsafe-value"]
    assert got["hosts[0].taints[0].value"] == ["error:unsafe-value"]
    assert "hosts[0].taints[1].key" not in got and "hosts[0].user" not in got
    assert got["hosts[1].user"] == ["error:unsafe-value"]


@pytest.mark.parametrize(
    "issuer",
    [
        "https://dex.example.test/dex?x=1",
        "https://dex.example.test/dex#frag",
        "https://user:pw@dex.example.test/dex",
        "https://dex.example.test/a b",
        "https://dex.example.test/dex,--oidc-username-claim=sub",
        "https://dex.example.test/$(id)",
        "https://dex.example.test:99999/dex",
        "https:///dex",
    ],
)
def test_unsafe_issuers_are_refused(issuer: str) -> None:
    got = codes(HOSTS + f"auth: {{mode: basic, issuer: {json.dumps(issuer)}}}\n")
    assert got.get("auth.issuer") == ["error:unsafe-value"], got


def test_a_plain_issuer_passes() -> None:
    got = codes(HOSTS + "auth: {mode: basic, issuer: 'https://dex.example.test:5556/dex'}\n")
    assert "auth.issuer" not in got


def test_everyone_subjects_with_write_roles() -> None:
    got = codes(
        HOSTS + "workspaces:\n  - name: team\n    members:\n"
        "      - {group: 'system:authenticated', role: edit}\n"
        "      - {user: 'system:anonymous', role: admin}\n"
        "      - {group: 'system:unauthenticated', role: view}\n"
        "      - {group: team-a, role: admin}\n"
    )
    assert got["workspaces[0].members[0].role"] == ["error:everyone-writes"]
    assert got["workspaces[0].members[1].role"] == ["error:everyone-writes"]
    assert got["workspaces[0].members[2]"] == ["warning:everyone-reads"]
    assert not any(k.startswith("workspaces[0].members[3]") for k in got)


# --- Dex checksum and the redactor ------------------------------------------------------------------

ISSUER = "https://dex.example.test/dex"


def oidc(secret_env: str = "KV_DEX_CLIENT", bind_env: str = "KV_LDAP_BIND") -> Config:
    return Config.model_validate({
        "apiVersion": "kvinstall.io/v1alpha1", "kind": "VirtualizationCluster", "metadata": {"name": "lab"},
        "hosts": [{"address": "192.0.2.10", "role": "controlPlane"}],
        "auth": {"mode": "oidc", "issuer": ISSUER,
                 "staticClients": [{"id": "portal", "name": "Portal", "secret": {"valueFrom": {"env": secret_env}}}],
                 "oidc": {"connectors": [{"type": "ldap", "id": "corp", "name": "Corp",
                                           "config": {"host": "ldap.example.test:636",
                                                      "bindPW": {"valueFrom": {"env": bind_env}}}}]}},
    })  # fmt: skip


class _NoArtifacts:
    def get(self, artifact: Artifact) -> bytes | None:
        return None


def dex_render(component: DexComponent, config: Config) -> tuple[str, str, list[str]]:
    rendered = component.render(config, CATALOG, _NoArtifacts())
    dep = next(o for o in rendered.objects if o["kind"] == "Deployment")
    sec = next(o for o in rendered.objects if o["kind"] == "Secret" and "config.yaml" in o.get("data", {}))
    annotation = dep["spec"]["template"]["metadata"]["annotations"]["kvinstall.io/config-sha256"]
    return annotation, base64.b64decode(sec["data"]["config.yaml"]).decode(), list(rendered.notes)


def dex_objects(component: DexComponent, config: Config) -> tuple[str, str]:
    annotation, text, _ = dex_render(component, config)
    return annotation, text


def applied(state: Path) -> DexComponent:
    """Dex as apply renders it: the key made (in memory), then written before the run applies."""
    comp = for_state_dir(state, generate=True)
    assert isinstance(comp.checksum_key, ChecksumKeyFile)
    comp.checksum_key.save()  # no key used yet: nothing to write
    assert not (state / CHECKSUM_KEY_FILE).exists()
    return comp


def test_dex_checksum_cannot_be_recomputed_from_a_guessed_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KV_DEX_CLIENT", "summer2024")  # a weak secret a dictionary would hold
    monkeypatch.setenv("KV_LDAP_BIND", "hunter22")
    state = tmp_path / "state"
    comp = applied(state)
    annotation, text = dex_objects(comp, oidc())
    assert isinstance(comp.checksum_key, ChecksumKeyFile)
    comp.checksum_key.save()
    assert (state / CHECKSUM_KEY_FILE).stat().st_mode & 0o777 == 0o600
    key = ChecksumKeyFile(state)()
    assert key is not None and len(key) == 32
    # What an attacker who reads Deployments can do: rebuild the config text with each candidate
    # secret (here even the right one, and the exact text) and hash it. It never matches.
    assert annotation != hashlib.sha256(text.encode()).hexdigest()
    assert annotation == hmac.new(key, text.encode(), "sha256").hexdigest()
    # Stable with the same key; a rotated secret rolls Dex; another key gives another value.
    assert dex_objects(comp, oidc())[0] == annotation
    monkeypatch.setenv("KV_DEX_CLIENT", "autumn2024")
    assert dex_objects(comp, oidc())[0] != annotation
    assert dex_objects(applied(tmp_path / "other"), oidc())[0] != dex_objects(comp, oidc())[0]


def test_dex_checksum_in_a_dry_run_writes_nothing_and_equals_apply_once_the_key_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """plan/render (generate=False) never make the key: before the first apply the annotation says it
    is computed at apply (with a note); with the key on record they compute apply's very value."""
    monkeypatch.setenv("KV_DEX_CLIENT", "summer2024")
    monkeypatch.setenv("KV_LDAP_BIND", "hunter22")
    state = tmp_path / "state"
    annotation, _, notes = dex_render(for_state_dir(state), oidc())
    assert annotation == CHECKSUM_AT_APPLY and any(CHECKSUM_KEY_FILE in n for n in notes)
    assert not state.exists()
    comp = applied(state)
    at_apply = dex_objects(comp, oidc())[0]
    assert isinstance(comp.checksum_key, ChecksumKeyFile)
    comp.checksum_key.save()
    planned, _, notes = dex_render(for_state_dir(state), oidc())
    assert planned == at_apply != CHECKSUM_AT_APPLY and notes == []
    # A secret the dry run cannot read: apply will hash a value the plan does not know.
    monkeypatch.delenv("KV_LDAP_BIND")
    unknown, _ = with_unknown_secrets(oidc())
    assert dex_objects(for_state_dir(state), unknown)[0] == CHECKSUM_AT_APPLY
    # A damaged key file is named, not replaced behind the operator's back.
    monkeypatch.setenv("KV_LDAP_BIND", "hunter22")
    (state / CHECKSUM_KEY_FILE).write_text("not a key\n")
    with pytest.raises(LocalIOError, match="checksum key file is not in the expected form"):
        dex_objects(for_state_dir(state, generate=True), oidc())


def test_dex_checksum_without_a_key_covers_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KV_DEX_CLIENT", "summer2024")
    monkeypatch.setenv("KV_LDAP_BIND", "hunter22")
    annotation, text = dex_objects(DexComponent(), oidc())
    public = text.replace("summer2024", "<secret>").replace("hunter22", "<secret>")
    assert annotation == hashlib.sha256(public.encode()).hexdigest()
    monkeypatch.setenv("KV_DEX_CLIENT", "autumn2024")
    assert dex_objects(DexComponent(), oidc())[0] == annotation  # no key: secrets do not enter
    assert (
        config_checksum('{"a": "x\\"y"}', ['x"y'], None) == hashlib.sha256(b'{"a": "<secret>"}').hexdigest()
    )


def test_redactor_knows_secrets_inside_connector_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KV_DEX_CLIENT", "client-secret-1")
    monkeypatch.setenv("KV_LDAP_BIND", "ldap-bind-password")
    config = oidc()
    assert "auth.oidc.connectors[0].config.bindPW" in dict(config.secrets())
    file = tmp_path / "cluster.yaml"
    file.write_text(json.dumps(config.model_dump(mode="json", by_alias=True, exclude_none=True)))
    red = open_session(file, state_override=tmp_path / "state").redactor()
    assert (
        red("bind with ldap-bind-password, client client-secret-1")
        == "bind with <redacted>, client <redacted>"
    )
    assert not (tmp_path / "state").exists()


# --- the cancellable pool -----------------------------------------------------------------------------


def test_first_failure_cancels_running_and_queued_tasks() -> None:
    token = CancelToken()
    started = threading.Event()
    stopped = threading.Event()
    ran: list[int] = []

    def blocked() -> None:  # a transfer waiting for its next piece
        started.set()
        try:
            token.sleep(60)
        finally:
            stopped.set()

    def fails() -> None:
        started.wait(30)
        raise IntegrityError("boom")

    tasks = [blocked, fails, *[lambda i=i: ran.append(i) for i in range(50)]]
    with pytest.raises(IntegrityError, match="boom"):
        run_parallel(tasks, 2, token)
    assert stopped.wait(30) and ran == []  # the running one stopped, no queued one started
    with pytest.raises(Cancelled):
        token.sleep(5)


def test_results_in_order() -> None:
    assert run_parallel([lambda i=i: i * i for i in range(20)], 4) == [i * i for i in range(20)]
