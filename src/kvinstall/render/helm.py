"""Render a Helm chart with the `helm` binary (`helm template`), as helmfile does.

The chart comes as archive bytes (from an ArtifactSource), is written to a private temp dir with
the values file, and rendered without hooks (hooks never run under plain apply; the component
module does their work). Helm gets its own cache/config/data dirs there, so it neither reads nor
writes the user's Helm state and never touches the network for a local chart.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

from kvinstall import fastyaml
from kvinstall.errors import ArtifactError
from kvinstall.model import KubeObject
from kvinstall.render.env import TemplateError, parse_documents

_TEST_BIN = Path.home() / ".cache" / "kvinstall-test" / "v1.34.4" / "bin" / "helm"
HELM_TIMEOUT = 300.0


def find_helm() -> str:
    """The helm binary: $KVINSTALL_HELM, else `helm` on PATH, else the test build."""
    explicit = os.environ.get("KVINSTALL_HELM")
    if explicit:
        if not (os.path.isfile(explicit) and os.access(explicit, os.X_OK)):
            raise ArtifactError("KVINSTALL_HELM does not name an executable file", where=explicit)
        return explicit
    on_path = shutil.which("helm")
    if on_path:
        return on_path
    if _TEST_BIN.is_file():
        return str(_TEST_BIN)
    raise ArtifactError(
        "the helm binary was not found",
        where="helm",
        hint="install helm v3 on PATH or set KVINSTALL_HELM to its path",
    )


@lru_cache(maxsize=8)
def helm_version(binary: str) -> str:
    """The version helm reports (e.g. "v3.19"); ArtifactError unless it is Helm 3."""
    try:
        proc = subprocess.run(
            [binary, "version", "--template", "{{ .Version }}"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            env=_helm_env(tempfile.gettempdir()),
        )
    except OSError as exc:
        raise ArtifactError(f"cannot run helm: {exc}", where=binary) from exc
    text = proc.stdout.strip()
    if proc.returncode != 0 or not text:
        raise ArtifactError(f"`helm version` failed: {proc.stderr.strip()}", where=binary)
    match = re.match(r"v(\d+)", text)
    if not match or match.group(1) != "3":
        raise ArtifactError(f"helm {text} is not supported; kvinstall needs Helm v3", where=binary)
    return text


def _helm_env(home: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELM_")}
    env.update(
        HELM_CACHE_HOME=os.path.join(home, "cache"),
        HELM_CONFIG_HOME=os.path.join(home, "config"),
        HELM_DATA_HOME=os.path.join(home, "data"),
        HELM_NO_PLUGINS="1",
    )
    env.pop("KUBECONFIG", None)
    return env


def chart_metadata(chart: bytes, *, where: str) -> dict[str, Any]:
    """Chart.yaml of a chart archive (the top-level directory's)."""
    try:
        with tarfile.open(fileobj=io.BytesIO(chart), mode="r:gz") as tar:
            for member in tar.getmembers():
                parts = member.name.split("/")
                if len(parts) == 2 and parts[1] == "Chart.yaml" and member.isfile():
                    f = tar.extractfile(member)
                    if f is not None:
                        data = fastyaml.load(f.read())
                        if isinstance(data, dict):
                            return data
    except (tarfile.TarError, OSError, EOFError, fastyaml.YAMLError) as exc:
        raise ArtifactError(f"not a Helm chart archive: {exc}", where=where) from exc
    raise ArtifactError("not a Helm chart archive: no Chart.yaml", where=where)


def _same_version(a: str, b: str) -> bool:
    return a.lstrip("v") == b.lstrip("v")


def helm_template(
    chart: bytes,
    *,
    chart_name: str,
    release: str,
    namespace: str,
    values: dict[str, Any],
    version: str | None = None,
    kube_version: str | None = None,
    api_versions: tuple[str, ...] = (),
    binary: str | None = None,
) -> list[KubeObject]:
    """`helm template RELEASE CHART --namespace NS --values FILE --include-crds --no-hooks`, parsed.

    `version` is checked against the archive's Chart.yaml (helm ignores --version for a local file).
    Errors name the chart and carry helm's stderr.
    """
    where = f"chart {chart_name}" + (f" {version}" if version else "")
    text = helm_template_text(
        chart,
        chart_name=chart_name,
        release=release,
        namespace=namespace,
        values=values,
        version=version,
        kube_version=kube_version,
        api_versions=api_versions,
        binary=binary,
    )
    try:
        objects = parse_documents(text, where=where)
    except TemplateError as exc:
        raise ArtifactError(str(exc), where=where) from exc
    # Belt and braces: a hook that slipped through would be applied as a plain object.
    return [
        o if o.get("kind") == "CustomResourceDefinition" else without_nulls(o)
        for o in objects
        if "helm.sh/hook" not in ((o.get("metadata") or {}).get("annotations") or {})
    ]


def helm_template_text(
    chart: bytes,
    *,
    chart_name: str,
    release: str,
    namespace: str,
    values: dict[str, Any],
    version: str | None = None,
    kube_version: str | None = None,
    api_versions: tuple[str, ...] = (),
    binary: str | None = None,
) -> str:
    """What helm_template parses: helm's output as text."""
    where = f"chart {chart_name}" + (f" {version}" if version else "")
    meta = chart_metadata(chart, where=where)
    if version is not None and not _same_version(str(meta.get("version", "")), version):
        raise ArtifactError(
            f"the archive holds chart version {meta.get('version')!r}, expected {version}", where=where
        )
    helm = binary or find_helm()
    helm_version(helm)
    with tempfile.TemporaryDirectory(prefix="kvinstall-helm-") as tmp:
        chart_path = os.path.join(tmp, "chart.tgz")
        values_path = os.path.join(tmp, "values.json")
        with open(chart_path, "wb") as f:
            f.write(chart)
        # JSON is YAML: helm reads it as a values file, and no value can be misparsed.
        with open(values_path, "w", encoding="utf-8") as f:
            json.dump(values, f)
        args = [
            helm,
            "template",
            release,
            chart_path,
            "--namespace",
            namespace,
            "--values",
            values_path,
            "--include-crds",
            "--no-hooks",
            "--skip-tests",
        ]
        if kube_version:
            args += ["--kube-version", kube_version]
        for api in api_versions:
            args += ["--api-versions", api]
        try:
            proc = subprocess.run(
                args,
                capture_output=True,
                text=True,
                timeout=HELM_TIMEOUT,
                check=False,
                env=_helm_env(tmp),
                cwd=tmp,
            )
        except subprocess.TimeoutExpired as exc:
            raise ArtifactError(f"helm template did not finish in {HELM_TIMEOUT:.0f}s", where=where) from exc
        except OSError as exc:
            raise ArtifactError(f"cannot run helm: {exc}", where=where) from exc
    if proc.returncode != 0:
        raise ArtifactError(f"helm template failed: {proc.stderr.strip()}", where=where)
    return proc.stdout


def without_nulls(value: Any) -> Any:
    """A template that prints an unset value writes `key:` (null): the server reads it as unset, so it
    is dropped here, as if never written (an apply that sent it would own a field it never sets).
    Not for CRDs, whose schemas may mean a null."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value
