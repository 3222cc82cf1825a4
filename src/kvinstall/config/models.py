"""The typed configuration: `apiVersion: kvinstall.io/v1alpha1`, `kind: VirtualizationCluster`.

YAML keys are camelCase (Kubernetes style); Python attributes are snake_case. Unknown keys are
errors everywhere. Field-level validation lives here; checks that span fields live in checks.py,
so that they can report every problem at once with positions.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from kvinstall.config.problems import format_path
from kvinstall.config.secrets import Secret, secret_refs

API_VERSION = "kvinstall.io/v1alpha1"
KIND = "VirtualizationCluster"

# DNS-1123 label: what Kubernetes accepts for namespace and node names.
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?$")
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|Pi|Ei|M|G|T|P|E)?$")
_VERSION = re.compile(r"^v?[0-9]+\.[0-9]+\.[0-9]+$")
_PCI_SELECTOR = re.compile(r"^[0-9A-Fa-f]{4}:[0-9A-Fa-f]{4}$")
_RESOURCE_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?/[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")


def _dns_label(v: str) -> str:
    if len(v) > 63 or not _DNS_LABEL.match(v):
        raise ValueError(
            f"{v!r} is not a valid name: lower-case letters, digits and '-', at most 63 characters"
        )
    return v


def _hostname(v: str) -> str:
    if len(v) > 253 or not _DNS_SUBDOMAIN.match(v):
        raise ValueError(f"{v!r} is not a valid hostname (lower-case letters, digits, '-' and '.')")
    return v


def _address(v: str) -> str:
    # An IP address or a DNS name; never anything a shell or YAML could misread.
    try:
        ipaddress.ip_address(v)
        return v
    except ValueError:
        pass
    if len(v) > 253 or not _DNS_SUBDOMAIN.match(v.lower()):
        raise ValueError(f"{v!r} is neither an IP address nor a DNS name")
    return v


def _ip(v: str) -> str:
    try:
        return str(ipaddress.ip_address(v))
    except ValueError as exc:
        raise ValueError(f"{v!r} is not an IP address") from exc


def _cidr(v: str) -> str:
    try:
        net = ipaddress.ip_network(v, strict=True)
    except ValueError as exc:
        raise ValueError(f"{v!r} is not a network in CIDR form (e.g. 10.16.0.0/16): {exc}") from exc
    return str(net)


def address_range(text: str) -> tuple[ipaddress.IPv4Address | ipaddress.IPv6Address, ...]:
    """MetalLB's two address formats: a CIDR, or an inclusive START-END range of one family.
    Returns (first, last); ValueError with a readable message otherwise."""
    text = text.strip()
    if "/" in text:
        try:
            net = ipaddress.ip_network(text, strict=False)
        except ValueError:
            raise ValueError(f"{text!r} is not a network in CIDR form") from None
        return net[0], net[-1]
    start, sep, end = text.partition("-")
    if not sep:
        raise ValueError(f"{text!r} is neither a CIDR (192.168.10.0/24) nor a range (192.168.10.50-192.168.10.100)")
    try:
        a, b = ipaddress.ip_address(start.strip()), ipaddress.ip_address(end.strip())
    except ValueError:
        raise ValueError(f"{text!r}: both ends of a range must be IP addresses") from None
    if a.version != b.version:
        raise ValueError(f"{text!r} mixes IPv4 and IPv6")
    if int(a) > int(b):
        raise ValueError(f"{text!r}: the range ends before it starts")
    return a, b


def _address_range(v: str) -> str:
    address_range(v)
    return v.strip()


def _version(v: str) -> str:
    if not _VERSION.match(v):
        raise ValueError(f"{v!r} is not a version like v1.2.3")
    return v if v.startswith("v") else f"v{v}"


def _quantity(v: str | int) -> str:
    s = str(v)
    if not _QUANTITY.match(s):
        raise ValueError(f"{s!r} is not a Kubernetes quantity (e.g. 500m, 4, 16Gi)")
    return s


DNSLabel = Annotated[str, AfterValidator(_dns_label)]
Hostname = Annotated[str, AfterValidator(_hostname)]
Address = Annotated[str, AfterValidator(_address)]
IPAddress = Annotated[str, AfterValidator(_ip)]
CIDR = Annotated[str, AfterValidator(_cidr)]
Version = Annotated[str, AfterValidator(_version)]
Quantity = Annotated[str | int, AfterValidator(_quantity)]
Port = Annotated[int, Field(ge=1, le=65535)]
AddressRange = Annotated[str, AfterValidator(_address_range)]
ASN = Annotated[int, Field(ge=1, le=4294967295)]


class Model(BaseModel):
    """Base of every config section: camelCase keys, unknown keys rejected, defaults validated."""

    model_config = ConfigDict(
        extra="forbid",
        alias_generator=to_camel,
        populate_by_name=True,
        validate_default=True,
        frozen=True,
    )


def _removal(kind: str, key: str, value: str) -> str:
    """`key-` removes `key` (kubectl label/annotate semantics): the key without the dash, no value."""
    if value != "":
        raise ValueError(f"{kind} {key!r} removes {key[:-1]!r}: give it an empty value, not {value!r}")
    return key[:-1]


def _check_labels(labels: dict[str, str]) -> dict[str, str]:
    for key, value in labels.items():
        name = _removal("label", key, value) if key.endswith("-") else key
        if not _LABEL_KEY.match(name) or len(name) > 317:
            raise ValueError(f"label key {name!r} is not a valid Kubernetes label key")
        if len(value) > 63 or not _LABEL_VALUE.match(value):
            raise ValueError(f"label value {value!r} (key {key!r}) is not a valid Kubernetes label value")
    return labels


def _check_annotations(annotations: dict[str, str]) -> dict[str, str]:
    for key, value in annotations.items():
        name = _removal("annotation", key, value) if key.endswith("-") else key
        if not _LABEL_KEY.match(name) or len(name) > 317:
            raise ValueError(f"annotation key {name!r} is not a valid Kubernetes annotation key")
    return annotations


# A key ending in '-' removes that key from the node (kubectl semantics; KubeOne applies it too).
Labels = Annotated[dict[str, str], AfterValidator(_check_labels)]
Annotations = Annotated[dict[str, str], AfterValidator(_check_annotations)]


# --- hosts and SSH -------------------------------------------------------------------------------


class Bastion(Model):
    """A jump host: connections to the cluster hosts are forwarded through it."""

    address: Address = Field(description="Address of the jump host, as reached from where kvinstall runs.")
    port: Port = Field(default=22, description="SSH port of the jump host.")
    user: str | None = Field(
        default=None, description="SSH user on the jump host (default: the host's user)."
    )
    private_key_file: str | None = Field(
        default=None, description="Key for the jump host (default: the host's)."
    )
    host_public_key: str | None = Field(
        default=None, description="Pinned host key of the jump host ('ssh-ed25519 AAAA...')."
    )


class SSHSettings(Model):
    """SSH defaults for every host; each host can override them."""

    user: str = Field(default="root", description="Login user; a non-root user needs passwordless sudo.")
    port: Port = Field(default=22, description="SSH port.")
    private_key_file: str | None = Field(
        default=None, description="Private key file (ed25519, ecdsa or rsa). Empty: the SSH agent and ~/.ssh."
    )
    use_agent: bool = Field(default=True, description="Offer keys from the SSH agent (SSH_AUTH_SOCK).")
    bastion: Bastion | None = Field(
        default=None, description="Jump host for every host (a host may set its own)."
    )
    connect_timeout: float = Field(
        default=10.0, gt=0, le=600, description="Seconds to wait for a connection."
    )
    command_timeout: float = Field(
        default=300.0, gt=0, le=86400, description="Seconds one remote command may run."
    )
    parallelism: int = Field(default=30, ge=1, le=512, description="Hosts contacted at once.")


_GO_DURATION = re.compile(r"^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$")
_THRESHOLD = re.compile(r"^([0-9]+(\.[0-9]+)?%|[0-9]+(\.[0-9]+)?(m|k|Ki|Mi|Gi|Ti|Pi|Ei|M|G|T|P|E)?)$")


def _reserved(v: dict[str, str]) -> dict[str, str]:
    for key, value in v.items():
        _quantity(value)
        if not re.match(r"^[a-z][-a-z.]*$", key):
            raise ValueError(f"{key!r} is not a resource name such as cpu, memory, ephemeral-storage or pid")
    return v


def _eviction(v: dict[str, str]) -> dict[str, str]:
    for key, value in v.items():
        if not re.match(r"^[a-z]+\.[a-zA-Z]+$", key):
            raise ValueError(f"{key!r} is not an eviction signal such as memory.available or nodefs.available")
        if not _THRESHOLD.match(str(value)):
            raise ValueError(f"{value!r} ({key}) is neither a quantity (100Mi) nor a percentage (10%)")
    return v


def _duration(v: str) -> str:
    if not _GO_DURATION.match(v):
        raise ValueError(f"{v!r} is not a duration such as 2m, 1h30m or 0s")
    return v


class NodeKubelet(Model):
    """Kubelet settings KubeOne applies per node (as kubelet flags)."""

    system_reserved: Annotated[dict[str, str], AfterValidator(_reserved)] = Field(
        default_factory=dict, description="Resources reserved for the OS (--system-reserved), e.g. {cpu: 500m}."
    )
    kube_reserved: Annotated[dict[str, str], AfterValidator(_reserved)] = Field(
        default_factory=dict, description="Resources reserved for Kubernetes daemons (--kube-reserved)."
    )
    eviction_hard: Annotated[dict[str, str], AfterValidator(_eviction)] = Field(
        default_factory=dict, description="Hard eviction thresholds, e.g. {memory.available: 100Mi}."
    )
    max_pods: int | None = Field(default=None, ge=1, description="Pods per node (kubelet default 110).")


class Kubelet(NodeKubelet):
    """Kubelet settings for every node (KubeOne's kubeletConfig)."""

    image_gc_high_threshold_percent: int | None = Field(
        default=None,
        ge=0,
        le=100,
        alias="imageGCHighThresholdPercent",
        description="Disk usage (%) above which image garbage collection always runs (default 85).",
    )
    image_gc_low_threshold_percent: int | None = Field(
        default=None,
        ge=0,
        le=100,
        alias="imageGCLowThresholdPercent",
        description="Disk usage (%) below which image garbage collection never runs (default 80).",
    )
    image_minimum_gc_age: Annotated[str, AfterValidator(_duration)] | None = Field(
        default=None, alias="imageMinimumGCAge", description="Minimum age of an unused image before removal (2m)."
    )
    image_maximum_gc_age: Annotated[str, AfterValidator(_duration)] | None = Field(
        default=None, alias="imageMaximumGCAge", description="Maximum age of an unused image (0s: no limit)."
    )

    @model_validator(mode="after")
    def _thresholds(self) -> Kubelet:
        high, low = self.image_gc_high_threshold_percent, self.image_gc_low_threshold_percent
        if high is not None and low is not None and high <= low:
            raise ValueError(
                f"imageGCHighThresholdPercent ({high}) must be greater than imageGCLowThresholdPercent ({low})"
            )
        return self


class Taint(Model):
    key: str = Field(description="Taint key.")
    value: str = Field(default="", description="Taint value.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] = Field(description="Taint effect.")


class Host(Model):
    """A bare-metal machine of the cluster."""

    address: Address = Field(description="Address kvinstall connects to over SSH (public or management).")
    private_address: IPAddress | None = Field(
        default=None, description="Address the hosts use between themselves (default: address)."
    )
    role: Literal["controlPlane", "worker"] = Field(description="controlPlane or worker.")
    hostname: Hostname | None = Field(
        default=None, description="Node name (default: the host's `hostname -f`)."
    )
    user: str | None = Field(default=None, description="SSH user (default: ssh.user).")
    port: Port | None = Field(default=None, description="SSH port (default: ssh.port).")
    private_key_file: str | None = Field(default=None, description="SSH key (default: ssh.privateKeyFile).")
    bastion: Bastion | None = Field(
        default=None, description="Jump host for this host (default: ssh.bastion)."
    )
    host_public_key: str | None = Field(
        default=None,
        description="Pinned SSH host key ('ssh-ed25519 AAAA...'); checked instead of known_hosts.",
    )
    labels: Labels = Field(
        default_factory=dict, description="Node labels; a key ending in '-' (value \"\") removes that label."
    )
    annotations: Annotations = Field(
        default_factory=dict, description="Node annotations; a key ending in '-' (value \"\") removes it."
    )
    kubelet: NodeKubelet | None = Field(
        default=None, description="Kubelet settings of this node (override the cluster-wide `kubelet`)."
    )
    taints: list[Taint] | None = Field(
        default=None, description="Node taints. Unset on a control-plane host: the default NoSchedule taint."
    )
    tunnel_interface: str | None = Field(
        default=None,
        description="Interface for the Kube-OVN tunnel on this host (default: network.tunnelInterface).",
    )
    pci_passthrough: bool = Field(
        default=False,
        description="This host passes PCI devices (GPUs) to VMs: IOMMU and vfio-pci are checked.",
    )

    @field_validator("host_public_key")
    @classmethod
    def _key_shape(cls, v: str | None) -> str | None:
        if v is not None and not re.match(
            r"^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/=]+$", v
        ):
            raise ValueError("expected an OpenSSH public key line such as 'ssh-ed25519 AAAAC3Nza...'")
        return v

    @property
    def internal_address(self) -> str:
        return self.private_address or self.address


class APIEndpoint(Model):
    host: Address = Field(
        description="Address of the Kubernetes API (a load balancer or the first control plane)."
    )
    port: Port = Field(default=6443, description="Port of the Kubernetes API.")
    alternative_names: list[str] = Field(
        default_factory=list, description="Extra names for the API certificate."
    )


class KubernetesSettings(Model):
    version: Version = Field(
        default="v1.34.4", description="Kubernetes version (one in the release catalog)."
    )


class Network(Model):
    pod_cidr: CIDR = Field(
        default="10.16.0.0/16", alias="podCIDR", description="Pod network (Kube-OVN default subnet)."
    )
    service_cidr: CIDR = Field(default="10.96.0.0/12", alias="serviceCIDR", description="Service network.")
    join_cidr: CIDR = Field(
        default="100.64.0.0/16", alias="joinCIDR", description="Kube-OVN node-to-pod join network."
    )
    gateway: IPAddress | None = Field(
        default=None, description="Gateway of the pod network (default: its first address)."
    )
    dns_server: IPAddress | None = Field(
        default=None, description="Cluster DNS service address (default: the tenth address of serviceCIDR)."
    )
    upstream_dns: IPAddress | None = Field(
        default=None,
        alias="upstreamDNS",
        description="DNS resolver the cluster DNS (CoreDNS, NodeLocal DNSCache) forwards names outside the "
        "cluster to (default: the nodes' /etc/resolv.conf).",
    )
    tunnel_interface: str | None = Field(
        default=None,
        description="Interface (name, comma list or regex) for the overlay tunnel; default: the default route's.",
    )
    tunnel_type: Literal["geneve", "vxlan"] = Field(default="geneve", description="Overlay encapsulation.")
    mtu: int | None = Field(
        default=None, ge=576, le=9000, description="Pod interface MTU (default: detected)."
    )
    kube_proxy_mode: Literal["iptables", "ipvs"] = Field(
        default="iptables",
        description="kube-proxy mode (set through KubeOne). With ipvs and MetalLB, strict ARP is turned on, "
        "as MetalLB's layer 2 mode needs.",
    )

    def effective_gateway(self) -> str:
        return self.gateway or str(next(ipaddress.ip_network(self.pod_cidr).hosts()))

    def effective_dns_server(self) -> str:
        return self.dns_server or str(ipaddress.ip_network(self.service_cidr)[10])


# The StorageClasses of Longhorn: `longhorn` (created by longhorn-manager from the chart's settings)
# and kvinstall's ReadWriteMany class of migratable block volumes, for VM live migration.
LONGHORN_CLASS = "longhorn"
LONGHORN_RWX_CLASS = "longhorn-rwx"


class Storage(Model):
    default_class: str | None = Field(default=None, description="StorageClass for VM disks (CDI default).")
    rwx_class: str | None = Field(
        default=None,
        alias="rwxClass",
        description="A ReadWriteMany StorageClass; live migration of VMs needs one.",
    )


# --- components ----------------------------------------------------------------------------------


class KubeOVN(Model):
    version: Version = Field(default="v1.16.2", description="Kube-OVN version (from the release catalog).")
    enable_nat_gateway: bool = Field(default=False, description="Enable VPC NAT gateways.")
    enable_load_balancer: bool = Field(
        default=True, description="Kube-OVN service load balancing (ENABLE_LB)."
    )
    enable_network_policy: bool = Field(
        default=True, description="Kube-OVN NetworkPolicy enforcement (ENABLE_NP)."
    )


class Migrations(Model):
    parallel_migrations_per_cluster: int = Field(
        default=5, ge=1, description="Migrations at once in the cluster."
    )
    parallel_outbound_migrations_per_node: int = Field(
        default=2, ge=1, description="Outbound migrations per node."
    )
    bandwidth_per_migration: Quantity = Field(
        default="0Mi", description="Bandwidth cap per migration (0Mi: none)."
    )
    completion_timeout_per_gib: int = Field(
        default=150,
        ge=1,
        alias="completionTimeoutPerGiB",
        description="Seconds per GiB before a migration is aborted.",
    )
    progress_timeout: int = Field(default=150, ge=1, description="Seconds without progress before aborting.")
    allow_auto_converge: bool = Field(default=False, description="Throttle the guest CPU to converge.")
    allow_post_copy: bool = Field(default=False, description="Allow post-copy migration.")


class PCIHostDevice(Model):
    pci_vendor_selector: str = Field(description="vendor:device id, e.g. 10DE:1EB8.")
    resource_name: str = Field(description="Resource name VMs request, e.g. nvidia.com/TU104GL_Tesla_T4.")
    external_resource_provider: bool = Field(
        default=False, description="A device plugin other than KubeVirt's serves it."
    )

    @field_validator("pci_vendor_selector")
    @classmethod
    def _sel(cls, v: str) -> str:
        if not _PCI_SELECTOR.match(v):
            raise ValueError(f"{v!r} is not a PCI vendor:device selector like 10DE:1EB8")
        return v.upper()

    @field_validator("resource_name")
    @classmethod
    def _res(cls, v: str) -> str:
        if not _RESOURCE_NAME.match(v):
            raise ValueError(f"{v!r} is not a resource name like nvidia.com/GRID_T4-1Q")
        return v


class MediatedDevice(Model):
    mdev_name_selector: str = Field(description="mdev type name, e.g. GRID T4-1Q.")
    resource_name: str = Field(description="Resource name VMs request.")
    external_resource_provider: bool = Field(
        default=False, description="A device plugin other than KubeVirt's serves it."
    )

    @field_validator("resource_name")
    @classmethod
    def _res(cls, v: str) -> str:
        if not _RESOURCE_NAME.match(v):
            raise ValueError(f"{v!r} is not a resource name like nvidia.com/GRID_T4-1Q")
        return v


class PermittedHostDevices(Model):
    pci_host_devices: list[PCIHostDevice] = Field(
        default_factory=list, description="PCI passthrough devices."
    )
    mediated_devices: list[MediatedDevice] = Field(
        default_factory=list, description="Mediated devices (vGPU)."
    )


class NodeMediatedDeviceTypes(Model):
    node_selector: dict[str, str] = Field(description="Nodes this entry applies to.")
    mediated_device_types: list[str] = Field(description="mdev types to create on them, e.g. nvidia-222.")


class MediatedDevicesConfiguration(Model):
    mediated_device_types: list[str] = Field(
        default_factory=list, description="mdev types to create on every node."
    )
    node_mediated_device_types: list[NodeMediatedDeviceTypes] = Field(
        default_factory=list, description="Per-node mdev types."
    )


class KubeVirt(Model):
    version: Version = Field(default="v1.8.4", description="KubeVirt version (from the release catalog).")
    feature_gates: list[str] = Field(
        default_factory=list, description="Feature gates to enable (checked per version)."
    )
    use_emulation: bool = Field(
        default=False, description="Run VMs without /dev/kvm (software emulation; slow)."
    )
    eviction_strategy: Literal["LiveMigrate", "LiveMigrateIfPossible", "None", "External"] = Field(
        default="LiveMigrateIfPossible", description="What happens to VMs when a node is drained."
    )
    live_migration: bool = Field(
        default=True, description="Allow live migration (needs a ReadWriteMany class)."
    )
    migrations: Migrations = Field(default_factory=Migrations, description="Live migration tuning.")
    permitted_host_devices: PermittedHostDevices = Field(
        default_factory=PermittedHostDevices, description="Devices VMs may use (PCI passthrough and vGPU)."
    )
    mediated_devices_configuration: MediatedDevicesConfiguration | None = Field(
        default=None, description="mdev (vGPU) types KubeVirt creates on the nodes."
    )
    cpu_allocation_ratio: int | None = Field(
        default=None, ge=1, le=100, description="vCPUs per physical CPU request."
    )
    common_instancetypes: bool = Field(
        default=True, description="Deploy KubeVirt's common instance types and preferences (virt-operator's bundle)."
    )


class FilesystemOverhead(Model):
    global_: str = Field(default="0.06", alias="global", description="Share of a filesystem PVC kept free.")
    storage_class: dict[str, str] = Field(default_factory=dict, description="Per StorageClass overrides.")

    @field_validator("global_")
    @classmethod
    def _ratio(cls, v: str) -> str:
        if not re.match(r"^(0(?:\.\d{1,3})?|1)$", v):
            raise ValueError(f"{v!r} is not a ratio between 0 and 1 with at most 3 decimals")
        return v


class CDI(Model):
    enabled: bool = Field(default=True, description="Deploy the Containerized Data Importer.")
    version: Version = Field(default="v1.65.0", description="CDI version (from the release catalog).")
    upload_proxy_url: str | None = Field(
        default=None,
        alias="uploadProxyURL",
        description="External URL of the upload proxy (uploadProxyURLOverride).",
    )
    filesystem_overhead: FilesystemOverhead = Field(
        default_factory=FilesystemOverhead, description="Filesystem overhead ratios."
    )
    feature_gates: list[str] = Field(default_factory=list, description="Extra CDI feature gates.")


class Connector(Model):
    type: str = Field(description="Dex connector type: oidc, github, ldap, gitlab, saml, ...")
    id: DNSLabel = Field(description="Connector id.")
    name: str = Field(description="Name shown on the login page.")
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="Connector settings as Dex documents them; secrets (clientSecret, bindPW) as {valueFrom: ...}.",
    )
    client_secret: Secret | None = Field(
        default=None, description="The connector's client secret (written into config.clientSecret)."
    )


class StaticClient(Model):
    id: str = Field(description="OAuth2 client id.")
    name: str = Field(description="Client name.")
    secret: Secret | None = Field(default=None, description="Client secret (not for public clients).")
    redirect_uris: list[str] = Field(
        default_factory=list, alias="redirectURIs", description="Allowed redirect URIs."
    )
    public: bool = Field(default=False, description="A public client (no secret, e.g. kubectl oidc-login).")


class BasicAuth(Model):
    admin_email: str = Field(
        default="admin@kvinstall.local", description="Login of the generated admin user."
    )
    password: Secret | None = Field(
        default=None, description="Admin password; unset: generated and written to a 0600 credentials file."
    )


class OIDCAuth(Model):
    connectors: list[Connector] = Field(default_factory=list, description="Upstream identity providers.")


# Where kvinstall puts auth.issuerCAFile on the control planes (hosts/trust.py) and what the KubeOne
# manifest names as the kube-apiserver's --oidc-ca-file: kubeadm mounts /etc/ssl/certs into its pod on
# every distribution.
OIDC_CA_PATH = "/etc/ssl/certs/kvinstall-oidc-issuer-ca.pem"


class Auth(Model):
    mode: Literal["none", "basic", "oidc"] = Field(
        default="none",
        description="none, basic (Dex password DB with a generated admin, plus any oidc.connectors) or oidc.",
    )
    issuer: str | None = Field(
        default=None, description="Dex issuer URL (https), e.g. https://dex.example.com/dex."
    )
    namespace: DNSLabel = Field(default="dex", description="Namespace of Dex.")
    client_id: str = Field(default="kubernetes", description="Client id the kube-apiserver trusts.")
    username_claim: str = Field(default="email", description="ID token claim used as the user name.")
    groups_claim: str = Field(default="groups", description="ID token claim holding groups.")
    username_prefix: str = Field(
        default="oidc:",
        description="Prefix the kube-apiserver puts before every OIDC user name (workspace "
        "RoleBindings name members with it; '' for none).",
    )
    groups_prefix: str = Field(
        default="oidc:",
        description="Prefix the kube-apiserver puts before every OIDC group (workspace RoleBindings "
        "name groups with it; '' for none).",
    )
    issuer_ca_file: str | None = Field(
        default=None,
        alias="issuerCAFile",
        description="CA (PEM) that signed the issuer's certificate, when it is not publicly trusted: "
        "copied to the control planes for the kube-apiserver.",
    )
    static_clients: list[StaticClient] = Field(default_factory=list, description="OAuth2 clients Dex knows.")
    tls: Literal["none", "certManager"] | None = Field(
        default=None,
        description="How Dex serves TLS: certManager (HTTPS with a certificate for the issuer's host from the "
        "cluster issuer) or none (plain HTTP behind your own TLS proxy). Default: certManager when "
        "cert-manager is enabled, else none.",
    )
    basic: BasicAuth = Field(default_factory=BasicAuth, description="Settings of mode basic.")
    oidc: OIDCAuth = Field(default_factory=OIDCAuth, description="Settings of mode oidc.")


class Dex(Model):
    version: Version = Field(default="v2.44.0", description="Dex version (from the release catalog).")


class Policies(Model):
    mode: Literal["Audit", "Enforce"] = Field(
        default="Audit", description="Audit reports violations; Enforce denies."
    )
    host_devices_namespaces: list[DNSLabel] = Field(
        default_factory=list, description="Namespaces whose VMs may use host devices and GPUs."
    )
    disabled: list[str] = Field(default_factory=list, description="Ids of baseline policies not to install.")


class Kyverno(Model):
    enabled: bool = Field(default=True, description="Deploy Kyverno and the baseline VM policies.")
    version: Version = Field(default="v1.18.2", description="Kyverno version (from the release catalog).")
    policies: Policies = Field(default_factory=Policies, description="Baseline VM policies.")


class MetalLBPool(Model):
    """An address pool MetalLB gives LoadBalancer Services their addresses from."""

    name: DNSLabel = Field(description="Pool name (the IPAddressPool).")
    addresses: list[AddressRange] = Field(
        min_length=1,
        description="Address ranges (192.168.10.50-192.168.10.99) or CIDRs (192.168.10.64/26) on the hosts' network.",
    )
    auto_assign: bool = Field(
        default=True, description="Services get addresses from this pool without asking for it by name."
    )


class BGPPeer(Model):
    """A router MetalLB announces the pools to over BGP."""

    address: IPAddress = Field(description="The router's address.")
    asn: ASN = Field(description="The router's AS number.")
    my_asn: ASN = Field(alias="myASN", description="The AS number the nodes speak as.")
    port: Port | None = Field(default=None, description="BGP port of the router (default 179).")
    password: Secret | None = Field(
        default=None, description="TCP MD5 password of the session, as {valueFrom: {env|file: ...}}."
    )


class MetalLB(Model):
    enabled: bool = Field(default=False, description="Deploy MetalLB: LoadBalancer Services on bare metal.")
    version: Version = Field(default="v0.15.3", description="MetalLB version (from the release catalog).")
    pools: list[MetalLBPool] = Field(
        default_factory=list, description="Address pools (at least one when enabled)."
    )
    l2: bool = Field(
        default=True, description="Announce the pools' addresses on the hosts' network (ARP/NDP, layer 2)."
    )
    bgp_peers: list[BGPPeer] = Field(
        default_factory=list, alias="bgpPeers", description="Routers to announce the pools to over BGP."
    )
    frr_k8s: bool = Field(
        default=False,
        alias="frrK8s",
        description="Run BGP in the frr-k8s daemon instead of an FRR container in each speaker.",
    )


class Longhorn(Model):
    enabled: bool = Field(
        default=False, description="Deploy Longhorn: replicated block storage, and a ReadWriteMany class for live migration."
    )
    version: Version = Field(default="v1.9.1", description="Longhorn version (from the release catalog).")
    data_path: str = Field(
        default="/var/lib/longhorn/", description="Directory on every node that holds the volumes' replicas."
    )
    replicas: int | None = Field(
        default=None, ge=1, le=20, description="Replicas per volume (default: the number of workers, at most 3)."
    )

    @field_validator("data_path")
    @classmethod
    def _absolute(cls, v: str) -> str:
        if not v.startswith("/") or "\n" in v or "\0" in v:
            raise ValueError(f"{v!r} is not an absolute path")
        return v if v.endswith("/") else v + "/"


class CAIssuer(Model):
    cert_file: str = Field(description="The CA certificate (PEM) cert-manager signs with.")
    key: Secret = Field(description="The CA's private key (PEM), as {valueFrom: {file: PATH}}.")


class ACMEIssuer(Model):
    email: str = Field(description="Account e-mail the ACME server sends expiry notices to.")
    server: str = Field(
        default="https://acme-v02.api.letsencrypt.org/directory", description="ACME directory URL."
    )
    ingress_class: str = Field(
        default="nginx", description="Ingress class that serves the HTTP-01 challenges."
    )

    @field_validator("server")
    @classmethod
    def _https(cls, v: str) -> str:
        if not v.startswith("https://"):
            raise ValueError(f"{v!r}: the ACME directory must be an https URL")
        return v


class CertManager(Model):
    enabled: bool = Field(default=False, description="Deploy cert-manager and a cluster issuer.")
    version: Version = Field(default="v1.18.5", description="cert-manager version (from the release catalog).")
    issuer: Literal["selfSigned", "ca", "acme"] = Field(
        default="selfSigned",
        description="The cluster issuer `kvinstall`: selfSigned (a CA cert-manager creates in the cluster), "
        "ca (your CA) or acme (e.g. Let's Encrypt).",
    )
    ca: CAIssuer | None = Field(default=None, description="Settings of issuer ca.")
    acme: ACMEIssuer | None = Field(default=None, description="Settings of issuer acme.")


class Multus(Model):
    enabled: bool = Field(
        default=False, description="Deploy Multus: secondary networks for VMs (Kube-OVN stays the default)."
    )
    version: Version = Field(default="v4.2.3", description="Multus version (from the release catalog).")
    plugin: Literal["thick", "thin"] = Field(
        default="thick", description="thick (a node daemon answers the CNI calls) or thin (a plain CNI binary)."
    )


class Components(Model):
    kube_ovn: KubeOVN = Field(
        default_factory=KubeOVN, alias="kubeOVN", description="Kube-OVN (the CNI; always on)."
    )
    kubevirt: KubeVirt = Field(default_factory=KubeVirt, description="KubeVirt.")
    cdi: CDI = Field(default_factory=CDI, description="Containerized Data Importer.")
    dex: Dex = Field(default_factory=Dex, description="Dex (deployed when auth.mode is not none).")
    kyverno: Kyverno = Field(default_factory=Kyverno, description="Kyverno and the baseline VM policies.")
    cert_manager: CertManager = Field(
        default_factory=CertManager, alias="certManager", description="cert-manager (certificates, Dex TLS)."
    )
    multus: Multus = Field(default_factory=Multus, description="Multus (secondary networks).")
    metallb: MetalLB = Field(default_factory=MetalLB, description="MetalLB (LoadBalancer Services).")
    longhorn: Longhorn = Field(default_factory=Longhorn, description="Longhorn (replicated storage).")


# --- workspaces, offline, kubeone -----------------------------------------------------------------


class Member(Model):
    user: str | None = Field(
        default=None,
        description="A user name as the OIDC username claim gives it (auth.usernamePrefix is added).",
    )
    group: str | None = Field(
        default=None, description="A group name as the groups claim gives it (auth.groupsPrefix is added)."
    )
    role: Literal["view", "edit", "admin"] = Field(
        description="kubevirt.io:view, :edit or :admin in the workspace."
    )

    def subject(self) -> tuple[str, str]:
        return ("User", self.user) if self.user is not None else ("Group", self.group or "")


class Quota(Model):
    cpu: Quantity | None = Field(default=None, description="Total CPU requests (e.g. 32).")
    memory: Quantity | None = Field(default=None, description="Total memory requests (e.g. 128Gi).")
    storage: Quantity | None = Field(default=None, description="Total requested storage (e.g. 2Ti).")
    pods: int | None = Field(default=None, ge=0, description="Number of pods (each VM runs in one).")
    persistent_volume_claims: int | None = Field(default=None, ge=0, description="Number of PVCs.")


class SecondaryNetwork(Model):
    """A network a workspace's VMs can attach to besides the default (Kube-OVN) one, through Multus."""

    name: DNSLabel = Field(description="Network name (the NetworkAttachmentDefinition VMs name).")
    type: Literal["bridge", "macvlan", "kube-ovn"] = Field(
        description="bridge (a Linux bridge on the hosts), macvlan (a host interface) or kube-ovn (an overlay "
        "subnet of its own)."
    )
    bridge: str | None = Field(default=None, description="type bridge: the host bridge, e.g. br-vms.")
    vlan: int | None = Field(default=None, ge=1, le=4094, description="type bridge: VLAN id on the bridge.")
    master: str | None = Field(default=None, description="type macvlan: the host interface, e.g. eth1.")
    cidr: CIDR | None = Field(default=None, description="type kube-ovn: the subnet's CIDR (Kube-OVN gives addresses).")
    mtu: int | None = Field(default=None, ge=576, le=9000, description="MTU of the attachment.")

    @model_validator(mode="after")
    def _fields_of_type(self) -> SecondaryNetwork:
        needs = {"bridge": "bridge", "macvlan": "master", "kube-ovn": "cidr"}
        need = needs[self.type]
        if getattr(self, need) is None:
            raise ValueError(f"type {self.type} needs {need}")
        for name in ("bridge", "master", "cidr"):
            if name != need and getattr(self, name) is not None:
                raise ValueError(f"{name} is not a setting of type {self.type}")
        if self.vlan is not None and self.type != "bridge":
            raise ValueError(f"vlan is not a setting of type {self.type}")
        for name in ("bridge", "master"):
            value = getattr(self, name)
            if value is not None and not re.match(r"^[A-Za-z0-9_.-]{1,15}$", value):
                raise ValueError(f"{name} {value!r} is not a Linux interface name")
        return self


class Workspace(Model):
    name: DNSLabel = Field(description="Workspace name; also its namespace.")
    members: list[Member] = Field(default_factory=list, description="Users and groups with their role.")
    quota: Quota = Field(default_factory=Quota, description="ResourceQuota of the workspace.")
    vpc_cidr: CIDR | None = Field(
        default=None, alias="vpcCIDR", description="CIDR of the workspace's own Kube-OVN VPC."
    )
    labels: Labels = Field(default_factory=dict, description="Labels on the workspace namespace.")
    secondary_networks: list[SecondaryNetwork] = Field(
        default_factory=list, description="Networks VMs attach to besides the default one (needs Multus)."
    )


class RegistryCredentials(Model):
    username: str = Field(description="Registry user.")
    password: Secret = Field(
        description="Registry password, as {valueFrom: {env: NAME}} or {valueFrom: {file: PATH}}."
    )


class ChartAccess(Model):
    """How kvinstall itself reads the charts and manifests in the site registry."""

    credentials: RegistryCredentials | None = Field(
        default=None, description="Login for reading charts and manifests (default: none)."
    )
    insecure_skip_verify: bool = Field(
        default=False, description="TLS without verifying the registry's certificate (prefer offline.caFile)."
    )


_DISTRIBUTION = re.compile(r"^[a-z][a-z0-9]*-[0-9][0-9.]*$")


def _distribution(v: str) -> str:
    if not _DISTRIBUTION.match(v):
        raise ValueError(f"{v!r} is not an OS release like debian-12 or ubuntu-24.04 (ID-VERSION_ID)")
    return v


def _package(v: str) -> str:
    if not re.match(r"^[a-z0-9][a-z0-9+.-]*(=[^\s=]+)?$", v):
        raise ValueError(f"{v!r} is not a package name with an optional =VERSION pattern (e.g. open-iscsi)")
    return v


class HostPackages(Model):
    """The OS packages of the hosts that an offline bundle carries."""

    distributions: list[Annotated[str, AfterValidator(_distribution)]] = Field(
        default_factory=list,
        description="OS releases of the hosts, as ID-VERSION_ID of /etc/os-release (debian-12, ubuntu-24.04): "
        "`mirror create` collects what KubeOne installs on them (containerd, kubelet, kubeadm, kubectl, ...).",
    )
    extra: list[Annotated[str, AfterValidator(_package)]] = Field(
        default_factory=list,
        description="More packages for every host (name, or name=VERSION-PATTERN), with their dependencies.",
    )


class PackageRepository(Model):
    """The site's OS package repository (`kvinstall mirror serve` writes this section)."""

    url: str = Field(
        description="Base URL of the repository (https://HOST:PORT); each OS release is below it (/debian-12)."
    )
    ca_file: str | None = Field(
        default=None, description="CA that signed the repository's certificate (default: offline.caFile)."
    )
    signing_key: str = Field(description="OpenPGP public key that signs the repository index (a file).")

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        if not re.match(r"^https?://[^/\s]+(/\S*)?$", v):
            raise ValueError(f"{v!r} is not an http(s) URL such as https://10.0.0.5:8443")
        return v.rstrip("/")


class Offline(Model):
    enabled: bool = Field(
        default=False, description="Install from the site registry only; nothing from the internet."
    )
    registry: str | None = Field(
        default=None, description="Site registry HOST[:PORT] holding the pushed bundle."
    )
    credentials: RegistryCredentials | None = Field(
        default=None, description="Login for the site registry (nodes pulling images, the gate, mirror push)."
    )
    ca_file: str | None = Field(default=None, description="CA bundle that signed the registry's certificate.")
    insecure: bool = Field(default=False, description="Plain HTTP registry (no TLS).")
    insecure_skip_verify: bool = Field(
        default=False,
        description="TLS without verifying the registry's certificate: nodes (containerd), CDI and kvinstall "
        "(prefer caFile).",
    )
    charts: ChartAccess | None = Field(
        default=None,
        description="How kvinstall reads the charts and manifests in the site registry, when not like the "
        "images (its own login or TLS setting).",
    )
    host_packages: HostPackages = Field(
        default_factory=HostPackages, description="OS packages of the hosts carried in the bundle."
    )
    package_repository: PackageRepository | None = Field(
        default=None,
        description="The site's OS package repository the hosts install from (unset: the hosts' own sources).",
    )

    @field_validator("registry")
    @classmethod
    def _registry(cls, v: str | None) -> str | None:
        if v is None:
            return v
        if "://" in v or "/" in v.rstrip("/"):
            raise ValueError(f"{v!r}: give HOST[:PORT] only, without scheme or path")
        host, _, port = v.partition(":")
        _address(host)
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            raise ValueError(f"{v!r}: the port is not a number between 1 and 65535")
        return v


class KubeOneSettings(Model):
    binary: str = Field(default="kubeone", description="kubeone executable (name on PATH or path).")
    version: Version = Field(default="v1.13.7", description="KubeOne version the manifest targets.")
    extra_args: list[str] = Field(default_factory=list, description="Extra arguments for `kubeone apply`.")


class Metadata(Model):
    name: DNSLabel = Field(description="Cluster name.")


class Config(Model):
    """A kvinstall configuration file."""

    api_version: Literal["kvinstall.io/v1alpha1"] = Field(description="Always kvinstall.io/v1alpha1.")
    kind: Literal["VirtualizationCluster"] = Field(description="Always VirtualizationCluster.")
    metadata: Metadata = Field(description="Cluster name.")
    kubernetes: KubernetesSettings = Field(
        default_factory=KubernetesSettings, description="Kubernetes version."
    )
    ssh: SSHSettings = Field(default_factory=SSHSettings, description="SSH defaults for every host.")
    hosts: list[Host] = Field(min_length=1, description="The bare-metal machines: control plane and workers.")
    kubelet: Kubelet | None = Field(default=None, description="Kubelet settings for every node.")
    image_pull_secret: Secret | None = Field(
        default=None,
        description='Registry logins for every node\'s containerd, as Docker config JSON ({"auths": {...}}).',
    )
    api_endpoint: APIEndpoint | None = Field(
        default=None,
        alias="apiEndpoint",
        description="Kubernetes API address (default: the first control plane).",
    )
    network: Network = Field(default_factory=Network, description="Pod, service and join networks.")
    storage: Storage = Field(default_factory=Storage, description="Storage classes for VM disks.")
    components: Components = Field(
        default_factory=Components, description="Platform components and versions."
    )
    auth: Auth = Field(default_factory=Auth, description="How users log in (Dex).")
    workspaces: list[Workspace] = Field(default_factory=list, description="Tenant workspaces.")
    offline: Offline = Field(
        default_factory=Offline, description="Air-gapped installation from a site registry."
    )
    kubeone: KubeOneSettings = Field(default_factory=KubeOneSettings, description="The KubeOne binary.")

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def control_plane(self) -> list[Host]:
        return [h for h in self.hosts if h.role == "controlPlane"]

    @property
    def workers(self) -> list[Host]:
        return [h for h in self.hosts if h.role == "worker"]

    def endpoint(self) -> APIEndpoint:
        if self.api_endpoint is not None:
            return self.api_endpoint
        cps = self.control_plane
        return APIEndpoint(host=(cps[0] if cps else self.hosts[0]).address)

    def dex_enabled(self) -> bool:
        return self.auth.mode != "none"

    def dex_tls(self) -> bool:
        """Dex serves HTTPS with a certificate from cert-manager (auth.tls, defaulted by cert-manager)."""
        tls = self.auth.tls or ("certManager" if self.components.cert_manager.enabled else "none")
        return self.dex_enabled() and tls == "certManager"

    def default_storage_class(self) -> str | None:
        """storage.defaultClass, else Longhorn's class when Longhorn is on."""
        return self.storage.default_class or (LONGHORN_CLASS if self.components.longhorn.enabled else None)

    def rwx_storage_class(self) -> str | None:
        """storage.rwxClass, else Longhorn's ReadWriteMany class when Longhorn is on."""
        return self.storage.rwx_class or (LONGHORN_RWX_CLASS if self.components.longhorn.enabled else None)

    def secrets(self) -> list[tuple[str, Secret]]:
        """Every secret of the config, with its field path (for resolvability checks)."""
        found: list[tuple[str, Secret]] = []
        if self.offline.credentials is not None:
            found.append(("offline.credentials.password", self.offline.credentials.password))
        if self.offline.charts is not None and self.offline.charts.credentials is not None:
            found.append(("offline.charts.credentials.password", self.offline.charts.credentials.password))
        if self.image_pull_secret is not None:
            found.append(("imagePullSecret", self.image_pull_secret))
        if self.auth.basic.password is not None:
            found.append(("auth.basic.password", self.auth.basic.password))
        for i, client in enumerate(self.auth.static_clients):
            if client.secret is not None:
                found.append((f"auth.staticClients[{i}].secret", client.secret))
        for i, conn in enumerate(self.auth.oidc.connectors):
            if conn.client_secret is not None:
                found.append((f"auth.oidc.connectors[{i}].clientSecret", conn.client_secret))
            # References inside the connector's own settings (an LDAP bindPW, ...).
            for loc, secret in secret_refs(conn.config, ("auth", "oidc", "connectors", i, "config")):
                found.append((format_path(loc), secret))
        ca = self.components.cert_manager.ca
        if ca is not None:
            found.append(("components.certManager.ca.key", ca.key))
        for i, peer in enumerate(self.components.metallb.bgp_peers):
            if peer.password is not None:
                found.append((f"components.metallb.bgpPeers[{i}].password", peer.password))
        return found
