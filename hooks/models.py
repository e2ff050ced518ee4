"""The JupyterGateway and JupyterNotebook API: the single source of truth.

The CRD schemas in manifests/crds/ are generated from these models
(``python -m hooks crds``), and the hooks validate every parent's spec with them,
so what ``kubectl apply`` accepts and what the hooks accept cannot drift apart.
Each cross-field rule exists twice on purpose: as a CEL rule in the model's schema
(the API server enforces it) and as a validator here (for a parent that reached the
hooks without passing the schema); tests check that both say the same.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema, field_validator, model_validator
from pydantic.alias_generators import to_camel
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from . import podtemplate, structural
from .podtemplate import MAX_RESOURCES, QUANTITY_RULE
from .quantity import QUANTITY_PATTERN, canonical_quantity

GROUP = "kubeflow.tkestack.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

DEFAULT_GATEWAY_IMAGE = "elyra/enterprise-gateway:3.3.0"
DEFAULT_NOTEBOOK_IMAGE = "quay.io/jupyter/base-notebook:2025-03-14"
DEFAULT_KERNEL_CLUSTER_ROLE = "jupyter-gateway-kernels"
DEFAULT_KERNEL_PROFILE = "python_kubernetes"
DEFAULT_KERNEL_IMAGE = "elyra/kernel-py:3.3.0"

DNS_LABEL = r"^[a-z]([-a-z0-9]*[a-z0-9])?$"  # RFC 1035: what a Service name must be
NAMESPACE = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"  # RFC 1123 label
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
KERNEL_NAME = r"^[A-Za-z0-9._-]+$"  # the directory name of a kernelspec
# A kernel profile's name: a kernelspec directory, a ConfigMap key part and a label value.
PROFILE_NAME = r"^[a-z0-9]([-a-z0-9_.]*[a-z0-9])?$"


def _quantity_in_range(value):
    try:
        canonical_quantity(value)
    except ValueError as exc:
        raise PydanticCustomError("quantity", str(exc)) from None
    return value


def _valid_pod_template(value):
    value = structural.without_nulls(value)  # as the API server prunes them
    problems = structural.errors(podtemplate.schema(), value, "spec.template")
    if problems:
        raise PydanticCustomError("pod_template", "; ".join(problems))
    return value


Quantity = Annotated[
    int | Annotated[str, Field(pattern=QUANTITY_PATTERN, max_length=64)],
    AfterValidator(_quantity_in_range),
    Field(json_schema_extra={"x-kubernetes-int-or-string": True, "x-kubernetes-validations": [QUANTITY_RULE]}),
]


class _Spec(BaseModel):
    """camelCase on the wire; unknown fields and coercion ("yes" for true) refused, as by the CRD."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True, strict=True)


class Resources(_Spec):
    """Compute resources of a container, as in a Pod."""

    limits: dict[str, Quantity] | None = Field(None, max_length=MAX_RESOURCES, description="Maximum resources.")
    requests: dict[str, Quantity] | None = Field(None, max_length=MAX_RESOURCES, description="Guaranteed resources.")


class GatewayAuth(_Spec):
    """Enterprise Gateway's own token (auth_token), which only the gateway's front door sends;
    notebooks are identified by their ServiceAccount tokens either way."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "self.mode == 'token' || !has(self.secretRef)", "message": "secretRef needs mode token"}
            ]
        }
    )

    mode: Literal["token", "none"] = Field(
        "token",
        description="token: Enterprise Gateway requires an internal token that only the front door sends; "
        "none: it requires none (it listens on the pod's loopback). "
        "Callers are identified by the front door either way.",
    )
    secret_ref: SecretRef | None = Field(
        None, description="Secret of the gateway's namespace holding the internal token; one is generated when absent."
    )

    @model_validator(mode="after")
    def _secret_needs_token_mode(self):
        if self.mode != "token" and self.secret_ref is not None:
            raise ValueError("secretRef needs mode token")
        return self


class KernelQuantities(BaseModel):
    """What each kernel pod gets; Enterprise Gateway maps nvidia.com/gpu to KERNEL_GPUS."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, populate_by_name=True)

    cpu: Quantity | None = Field(None, description="CPU, e.g. 500m or 2.")
    memory: Quantity | None = Field(None, description="Memory, e.g. 4Gi.")
    gpu: Quantity | None = Field(None, alias="nvidia.com/gpu", description="NVIDIA GPUs.")


class KernelResources(_Spec):
    """Resources of each kernel pod the notebook starts on its gateway (held only while the kernel lives)."""

    requests: KernelQuantities | None = Field(None, description="Guaranteed to each kernel pod.")
    limits: KernelQuantities | None = Field(None, description="Maximum of each kernel pod.")


class Toleration(_Spec):
    """A toleration of the kernel pods, as in a Pod (GPU nodes are often tainted)."""

    key: str | None = Field(None, max_length=317, description="Taint key; empty with Exists matches every taint.")
    operator: Literal["Exists", "Equal"] | None = Field(None, description="Exists or Equal (the default).")
    value: str | None = Field(None, max_length=63, description="Taint value for Equal.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(
        None, description="Taint effect to tolerate; empty tolerates every effect."
    )
    toleration_seconds: int | None = Field(None, description="How long a NoExecute taint is tolerated.")


class KernelProfile(_Spec):
    """One kernel the gateway offers: a kernelspec, its image and what its pods may hold."""

    name: str = Field(pattern=PROFILE_NAME, max_length=63, description="Kernelspec name clients ask for.")
    display_name: str | None = Field(None, min_length=1, max_length=128, description="Name shown in JupyterLab.")
    image: str = Field(DEFAULT_KERNEL_IMAGE, min_length=1, max_length=512, description="Kernel image.")
    resources: KernelResources | None = Field(
        None, description="Requests and limits of a kernel pod when the client asks for none."
    )
    max_resources: KernelQuantities | None = Field(
        None,
        description="Most a client may ask for (KERNEL_CPUS, KERNEL_MEMORY, KERNEL_GPUS and their _LIMIT "
        "forms); absent means no maximum, except GPUs: none unless given here.",
    )
    node_selector: dict[str, Annotated[str, Field(max_length=63)]] | None = Field(
        None, description="Node labels kernel pods must run on (e.g. GPU nodes)."
    )
    tolerations: Annotated[list[Toleration] | None, Field(max_length=32)] = Field(
        None, description="Taints kernel pods tolerate."
    )
    priority_class_name: str | None = Field(
        None,
        pattern=DNS_SUBDOMAIN,
        max_length=253,
        description="PriorityClass of kernel pods: a low one lets higher-priority work preempt idle kernels.",
    )


_PROFILES = "has(self.kernelProfiles) && size(self.kernelProfiles) > 0"


class JupyterGatewaySpec(_Spec):
    """A Jupyter Enterprise Gateway that launches each kernel as a pod and culls idle ones."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.kernels) || size(self.kernels) == 0 "
                    "|| !has(self.defaultKernel) || self.defaultKernel in self.kernels",
                    "message": "defaultKernel must be one of kernels",
                    "fieldPath": ".defaultKernel",
                },
                {
                    "rule": f"!has(self.defaultKernel) || ({_PROFILES} ? "
                    "self.kernelProfiles.exists(p, p.name == self.defaultKernel) "
                    f": self.defaultKernel == '{DEFAULT_KERNEL_PROFILE}')",
                    "message": "defaultKernel must name one of kernelProfiles",
                    "fieldPath": ".defaultKernel",
                },
                {
                    "rule": f"!has(self.kernels) || self.kernels.all(k, {_PROFILES} ? "
                    "self.kernelProfiles.exists(p, p.name == k) "
                    f": k == '{DEFAULT_KERNEL_PROFILE}')",
                    "message": "every kernels entry must name one of kernelProfiles",
                    "fieldPath": ".kernels",
                },
            ]
        }
    )

    kernels: Annotated[
        list[Annotated[str, Field(pattern=KERNEL_NAME, max_length=128)]] | None,
        Field(max_length=64, json_schema_extra={"x-kubernetes-list-type": "set"}),
    ] = Field(None, description="Names of the kernelProfiles the gateway serves; empty serves all of them.")
    default_kernel: str = Field(
        DEFAULT_KERNEL_PROFILE,
        pattern=KERNEL_NAME,
        max_length=128,
        description="Kernel profile started when a client names none.",
    )
    kernel_profiles: Annotated[
        list[KernelProfile] | None,
        Field(
            max_length=32, json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["name"]}
        ),
    ] = Field(
        None,
        description=f"The kernels the gateway offers, each a kernelspec of its own; none offers "
        f"{DEFAULT_KERNEL_PROFILE} ({DEFAULT_KERNEL_IMAGE}, no GPU).",
    )
    cull_idle_timeout: int = Field(
        3600, ge=0, le=2**31 - 1, description="Seconds a kernel may idle before it is culled; 0 disables culling."
    )
    cull_interval: int = Field(60, ge=1, le=2**31 - 1, description="Seconds between two checks for idle kernels.")
    cull_connected: bool = Field(
        False, description="Also cull idle kernels that still have a client (an open browser tab) connected."
    )
    cull_busy: bool = Field(False, description="Also cull kernels that are busy executing.")
    kernel_launch_timeout: int = Field(
        60, ge=1, le=3600, description="Seconds a kernel pod may take to start; notebooks wait as long."
    )
    log_level: Literal["DEBUG", "INFO", "WARN", "WARNING", "ERROR", "CRITICAL"] = Field(
        "INFO", description="Log level of the gateway."
    )
    image: str = Field(DEFAULT_GATEWAY_IMAGE, min_length=1, max_length=512, description="Enterprise Gateway image.")
    resources: Resources | None = Field(None, description="Resources of the gateway container.")
    cluster_role: str = Field(
        DEFAULT_KERNEL_CLUSTER_ROLE,
        pattern=DNS_SUBDOMAIN,
        max_length=253,
        description="ClusterRole bound to the gateway in its namespace: what it may do to run kernel pods.",
    )

    auth: GatewayAuth | None = Field(None, description="Client authentication; a generated token when absent.")
    allowed_namespaces: Annotated[
        list[Annotated[str, Field(pattern=r"^(\*|[a-z0-9]([-a-z0-9]*[a-z0-9])?)$", max_length=63)]] | None,
        Field(max_length=256, json_schema_extra={"x-kubernetes-list-type": "set"}),
    ] = Field(
        None,
        description="Namespaces whose notebooks the gateway's front door lets in besides its own; * for all.",
    )

    @model_validator(mode="after")
    def _default_kernel_is_offered(self):
        if self.kernels and self.default_kernel not in self.kernels:
            raise ValueError("defaultKernel must be one of kernels")
        names = [p.name for p in self.kernel_profiles] if self.kernel_profiles else [DEFAULT_KERNEL_PROFILE]
        if len(set(names)) != len(names):
            raise ValueError("kernelProfiles: names must be unique")
        if self.default_kernel not in names:
            raise ValueError("defaultKernel must name one of kernelProfiles")
        if any(k not in names for k in self.kernels or []):
            raise ValueError("every kernels entry must name one of kernelProfiles")
        return self


class GatewayRef(_Spec):
    """The JupyterGateway whose kernels the notebook uses."""

    name: str = Field(pattern=DNS_LABEL, max_length=63, description="Name of the JupyterGateway.")
    namespace: str | None = Field(
        None, pattern=NAMESPACE, max_length=63, description="Its namespace; the notebook's if empty."
    )


class SecretRef(_Spec):
    """A Secret of the notebook's namespace holding the access token."""

    name: str = Field(pattern=DNS_SUBDOMAIN, max_length=253, description="Name of the Secret.")
    key: str = Field("token", pattern=r"^[-._a-zA-Z0-9]+$", max_length=253, description="Key holding the token.")


class PasswordSecretRef(_Spec):
    """A Secret of the notebook's namespace holding the login password or its Jupyter hash."""

    name: str = Field(pattern=DNS_SUBDOMAIN, max_length=253, description="Name of the Secret.")
    key: str = Field(
        "password",
        pattern=r"^[-._a-zA-Z0-9]+$",
        max_length=253,
        description="Key holding a password or a Jupyter hash (argon2:... or sha256:salt:hash).",
    )


# Credentials that a CR spec once held: a CR is readable with the view role, a Secret is not.
REMOVED_CREDENTIALS = {
    "token": "a token in a CR is readable by every viewer; put it in a Secret and name it in spec.auth.secretRef",
    "password": "a password in a CR is readable by every viewer; "
    "put it (or its hash) in a Secret and name it in spec.auth.passwordSecretRef",
}


class Auth(_Spec):
    """How users log in to the notebook: a token (generated, or from secretRef) and optionally a
    password (from passwordSecretRef). No credential is ever part of the CR itself."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.mode == 'enable' || (!has(self.secretRef) && !has(self.passwordSecretRef))",
                    "message": "secretRef and passwordSecretRef need mode enable",
                },
            ]
        }
    )

    mode: Literal["enable", "disable"] = Field(
        "enable", description="disable turns authentication off (anyone reaching the Service gets a shell)."
    )
    secret_ref: SecretRef | None = Field(None, description="Secret holding the access token; generated when absent.")
    password_secret_ref: PasswordSecretRef | None = Field(
        None, description="Secret holding a login password or its Jupyter hash; no password login when absent."
    )

    # Removed from the API (and the CRD): a stored CR that still has them is refused by name.
    token: SkipJsonSchema[Any] = None
    password: SkipJsonSchema[Any] = None

    @field_validator("token", "password")
    @classmethod
    def _no_credentials(cls, value, info):
        if value is not None:
            raise PydanticCustomError("removed_credential", REMOVED_CREDENTIALS[info.field_name])
        return value

    @model_validator(mode="after")
    def _consistent(self):
        if self.mode == "disable" and (self.secret_ref or self.password_secret_ref):
            raise ValueError("secretRef and passwordSecretRef need mode enable")
        return self


# A notebook without authentication that can reach a gateway would give anyone on the pod network
# the gateway's token (or, with an open gateway, its kernels in this notebook's name).
AUTH_DISABLED_WITH_GATEWAY = (
    "disable is refused with spec.gateway: anyone on the pod network could open the notebook and use the gateway as it"
)

# A PodTemplateSpec, checked against Kubernetes' own schema (hooks.podtemplate), which the
# CRD embeds; the notebook container is the one named notebook, else the first.
PodTemplate = Annotated[Any, AfterValidator(_valid_pod_template), WithJsonSchema(podtemplate.schema())]


class Workspace(_Spec):
    """The user's files: mounted in the notebook pod and in each of its kernel pods at the same path."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {"rule": "has(self.claimName) != has(self.size)", "message": "give claimName or size, not both"},
                {"rule": "!has(self.storageClassName) || has(self.size)", "message": "storageClassName needs size"},
                {
                    "rule": "!has(self.size) || (string(self.size) != '0' && !string(self.size).startsWith('-'))",
                    "message": "size must be positive",
                },
            ]
        }
    )

    claim_name: str | None = Field(
        None, pattern=DNS_SUBDOMAIN, max_length=253, description="An existing PersistentVolumeClaim of the namespace."
    )
    size: Quantity | None = Field(None, description="Size of a new claim <name>-workspace, deleted with the notebook.")
    storage_class_name: str | None = Field(
        None, pattern=DNS_SUBDOMAIN, max_length=253, description="StorageClass of the new claim; the default if empty."
    )
    access_mode: Literal["ReadWriteOnce", "ReadWriteMany"] = Field(
        "ReadWriteOnce",
        description="ReadWriteOnce runs every kernel on the notebook's node; ReadWriteMany lets them run anywhere.",
    )

    @model_validator(mode="after")
    def _one_source(self):
        if (self.claim_name is None) == (self.size is None):
            raise ValueError("give claimName or size, not both")
        if self.storage_class_name is not None and self.size is None:
            raise ValueError("storageClassName needs size")
        if self.size is not None and (str(self.size) == "0" or str(self.size).startswith("-")):
            raise ValueError("size must be positive")
        return self


class JupyterNotebookSpec(_Spec):
    """A Jupyter server for one user, whose kernels run on a JupyterGateway."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "!has(self.kernelResources) || has(self.gateway)",
                    "message": "kernelResources need a gateway: without one kernels run in the notebook pod",
                    "fieldPath": ".kernelResources",
                },
                {
                    "rule": "!has(self.gateway) || !has(self.auth) || self.auth.mode != 'disable'",
                    "message": AUTH_DISABLED_WITH_GATEWAY,
                    "fieldPath": ".auth.mode",
                },
            ]
        }
    )

    gateway: GatewayRef | None = Field(None, description="Gateway to run kernels on; none runs them locally.")
    auth: Auth | None = Field(None, description="Authentication; a generated token when absent.")
    template: PodTemplate | None = Field(None, description="Pod template replacing the default notebook pod.")
    kernel_resources: KernelResources | None = Field(
        None, description="CPU, memory and GPUs of each kernel pod; the notebook pod holds none of them."
    )
    suspend: bool = Field(False, description="Scale the notebook to zero, keeping its Service and Secret.")
    workspace: Workspace | None = Field(
        None, description="Persistent files at /home/jovyan/work, shared by the notebook and its kernels."
    )

    @model_validator(mode="after")
    def _kernel_resources_need_a_gateway(self):
        if self.kernel_resources is not None and self.gateway is None:
            raise ValueError("kernelResources need a gateway: without one kernels run in the notebook pod")
        return self

    @model_validator(mode="after")
    def _gateway_needs_auth(self):
        if self.gateway is not None and self.auth is not None and self.auth.mode == "disable":
            raise PydanticCustomError("named_field", f"spec.auth.mode: {AUTH_DISABLED_WITH_GATEWAY}")
        return self


# --- status: what the hooks write (declared in the CRDs, so nothing is pruned) ---


class Condition(_Spec):
    model_config = ConfigDict(extra="forbid")

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str
    last_transition_time: str = Field(json_schema_extra={"format": "date-time"})


class _Status(_Spec):
    model_config = ConfigDict(extra="forbid")

    observed_generation: int | None = Field(None, description="Generation of the spec this status describes.")
    conditions: Annotated[
        list[Condition] | None,
        Field(
            json_schema_extra={
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["type"],
            }
        ),
    ] = None
    url: str | None = Field(None, description="In-cluster URL of the server.")
    replicas: int | None = Field(None, description="Pods of the Deployment.")
    ready_replicas: int | None = Field(None, description="Ready pods of the Deployment.")


class JupyterGatewayStatus(_Status):
    token_secret: str | None = Field(None, description="Secret holding the token clients send (key: token).")


class KernelEnd(_Spec):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(description="oom-killed, preempted, evicted, exited or deleted (culled, shut down).")
    message: str = Field(description="Why, in the user's words.")
    at: str = Field(json_schema_extra={"format": "date-time"})


class KernelStatus(_Spec):
    model_config = ConfigDict(extra="forbid")

    id: str
    profile: str = Field(description="The gateway's kernel profile (kernelspec).")
    pod: str
    phase: str = Field(description="The kernel pod's phase; Ended when the pod is gone.")
    started: str = Field(json_schema_extra={"format": "date-time"})
    waiting: str | None = Field(None, description="Why a Pending kernel pod does not run.")
    last_end: KernelEnd | None = Field(None, description="Why the kernel's pod last ended, when not by its user.")


class JupyterNotebookStatus(_Status):
    kernels: list[KernelStatus] | None = Field(None, description="The notebook's kernels, from their pods.")
    gateway_url: str | None = Field(None, description="URL of the gateway the notebook uses.")
    token_secret: str | None = Field(None, description="Secret holding the access token (key: token).")
