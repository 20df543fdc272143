"""An AWX API double: the part of AWX 24.6.1's REST API (/api/v2/) that awx/configure.yml's modules call.

No AWX server can run on these machines (AWX is not on PyPI, and its container images and sources are out
of reach), so the real awx.awx modules talk to this in-memory server on 127.0.0.1 instead. It answers the
calls awx.awx's ControllerAPIModule makes (named lookups with the modules' filters, create, update,
associations, survey specs, project updates) with AWX's response shapes (``count/next/results`` lists,
``id``/``url``/``related``/``summary_fields`` objects, ``$encrypted$`` for secret inputs, the
``X-API-Product-*`` headers), and applies the server-side checks of AWX's serializers that matter for
this collection, reimplemented here (not AWX's code):

- every foreign key must name an existing object; names are unique per type (per organization or inventory
  where AWX scopes them); an OAuth2 bearer token is required;
- credential types: only ``cloud``/``net`` kinds can be created, field ids are identifiers and unique,
  ``required`` names defined fields, injector keys follow AWX's patterns (``template`` /
  ``template.<name>``, identifier env names, no ``ANSIBLE_*`` or blocked names), and every injector template
  renders in a sandbox against the type's own fields and ``tower.filename.<file>`` (StrictUndefined);
- credentials: inputs must be fields of their type, required inputs present, an owner set; secret inputs
  are stored and answered as ``$encrypted$``; managed types (Vault, Amazon Web Services, Source Control,
  Container Registry, Machine) carry AWX's input fields;
- projects: a git project needs ``scm_url``; saving one starts a project update that "syncs" the checkout
  the test registered for that URL (AWX would clone it) and discovers playbooks with AWX's rule (a
  ``.yml``/``.yaml`` file outside roles/, tasks/, group_vars/, host_vars/ and dot folders with a
  ``hosts:``, ``include:`` or ``import_playbook:`` line); an unknown URL fails the update like a clone would;
- job templates: ``job_type`` run/check, a project and an inventory (or asking for one), the playbook among
  the project's discovered playbooks, at most one credential per credential type (vault: per vault id),
  only ssh/vault/cloud/net/kubernetes credential kinds; survey specs are checked like AWX's SurveySpecView
  (name/description/spec, per question type/question_name/variable/required, unique variables, known
  types, default types, integer min/max, choices for (multi)choice questions, defaults among the choices);
- inventory sources: a known ``source``; ``scm`` needs ``source_project``.

It also records every field AWX would silently ignore (DRF drops unknown fields); the tests require none.
What it cannot tell: anything AWX checks that is not in this list, the job runtime (tests/support/awx_jobs.py
replays jobs the way AWX runs them), RBAC, and the UI.
"""

from __future__ import annotations

import copy
import itertools
import json
import os
import re
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from jinja2 import StrictUndefined
from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

AWX_VERSION = "24.6.1"
API_ROOT = "/api/v2/"
ENCRYPTED = "$encrypted$"
PAGE_SIZE = 25

# Field kinds: "str", "int", "bool", "dict", "list", "json" (any JSON), or "fk:<endpoint>" (an id or null).
UNSET = object()


@dataclass(frozen=True)
class Field:
    """One field of an AWX object as the API reads and writes it."""

    kind: str
    default: Any = None
    choices: tuple[Any, ...] | None = None
    required: bool = False
    read_only: bool = False


@dataclass
class Model:
    """What the API knows about one endpoint's objects."""

    type_name: str
    fields: dict[str, Field]
    # Names are unique within these fields' values (AWX's unique_together), () for globally unique names.
    unique_within: tuple[str, ...] = ()
    associations: tuple[str, ...] = ()
    validate: Callable[[ApiDouble, dict[str, Any], dict[str, Any] | None], None] | None = None


class ApiError(Exception):
    """An HTTP error answer: status and JSON body."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body


def bad(message: str, key: str = "__all__") -> ApiError:
    return ApiError(400, {key: [message]})


def _common() -> dict[str, Field]:
    return {"name": Field("str", required=True), "description": Field("str", "")}


NOTIFICATIONS = ("notification_templates_started", "notification_templates_success", "notification_templates_error")
CREDENTIAL_KINDS = (
    "ssh",
    "vault",
    "net",
    "scm",
    "cloud",
    "registry",
    "token",
    "insights",
    "external",
    "kubernetes",
    "galaxy",
    "cryptography",
)
SOURCES = (
    "file",
    "constructed",
    "scm",
    "ec2",
    "gce",
    "azure_rm",
    "vmware",
    "satellite6",
    "openstack",
    "rhv",
    "controller",
    "insights",
    "terraform",
    "openshift_virtualization",
)
# AWX's ENV_BLOCKLIST (settings) plus its rule that no injector may set ANSIBLE_* variables.
ENV_BLOCKLIST = frozenset(
    (
        "VIRTUAL_ENV",
        "PATH",
        "PYTHONPATH",
        "JOB_ID",
        "INVENTORY_ID",
        "INVENTORY_SOURCE_ID",
        "INVENTORY_UPDATE_ID",
        "AD_HOC_COMMAND_ID",
        "REST_API_URL",
        "REST_API_TOKEN",
        "MAX_EVENT_RES",
        "CALLBACK_QUEUE",
        "CALLBACK_CONNECTION",
        "CACHE",
        "JOB_CALLBACK_DEBUG",
        "INVENTORY_HOSTVARS",
        "AWX_HOST",
        "PROJECT_REVISION",
        "SUPERVISOR_CONFIG_PATH",
    )
)
IDENTIFIER = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
FILE_INJECTOR_KEY = re.compile(r"^template(\.[a-zA-Z_][a-zA-Z0-9_]*)?$")
SURVEY_TYPES: dict[str, type | tuple[type, ...]] = {
    "text": str,
    "textarea": str,
    "password": str,
    "multiplechoice": str,
    "multiselect": str,
    "integer": int,
    "float": (float, int),
}
# AWX's rule for what a project update lists as playbooks (awx/main/utils/ansible.py).
PLAYBOOK_LINE = re.compile(
    r"^\s*?-?\s*?(?:hosts|(ansible\.builtin\.)?include|(ansible\.builtin\.)?import_playbook):\s*?.*?$"
)


def _field(name: str, label: str, *, secret: bool = False, **extra: Any) -> dict[str, Any]:
    return {"id": name, "label": label, "type": "string", **({"secret": True} if secret else {}), **extra}


# The managed credential types AWX ships (ManagedCredentialType in awx/main/models/credential/), with the
# input fields the checks need; AWX's own injection of these kinds (env vars, vault prompts) is done by
# tests/support/awx_jobs.py.
MANAGED_CREDENTIAL_TYPES: list[dict[str, Any]] = [
    {
        "name": "Machine",
        "kind": "ssh",
        "namespace": "ssh",
        "inputs": {
            "fields": [
                _field("username", "Username"),
                _field("password", "Password", secret=True),
                _field("ssh_key_data", "SSH Private Key", secret=True, multiline=True),
            ]
        },
    },
    {
        "name": "Vault",
        "kind": "vault",
        "namespace": "vault",
        "inputs": {
            "fields": [
                _field("vault_password", "Vault Password", secret=True, ask_at_runtime=True),
                _field("vault_id", "Vault Identifier", format="vault_id"),
            ],
            "required": ["vault_password"],
        },
    },
    {
        "name": "Amazon Web Services",
        "kind": "cloud",
        "namespace": "aws",
        "inputs": {
            "fields": [
                _field("username", "Access Key"),
                _field("password", "Secret Key", secret=True),
                _field("security_token", "STS Token", secret=True),
            ],
            "required": ["username", "password"],
        },
    },
    {
        "name": "Source Control",
        "kind": "scm",
        "namespace": "scm",
        "inputs": {
            "fields": [
                _field("username", "Username"),
                _field("password", "Password", secret=True),
                _field("ssh_key_data", "SCM Private Key", secret=True, multiline=True),
                _field("ssh_key_unlock", "Private Key Passphrase", secret=True),
            ]
        },
    },
    {
        "name": "Container Registry",
        "kind": "registry",
        "namespace": "registry",
        "inputs": {
            "fields": [
                _field("host", "Authentication URL"),
                _field("username", "Username"),
                _field("password", "Password or Token", secret=True),
                {"id": "verify_ssl", "label": "Verify SSL", "type": "boolean", "default": True},
            ],
            "required": ["host"],
        },
    },
]


def _validate_credential_type(api: ApiDouble, data: dict[str, Any], old: dict[str, Any] | None) -> None:
    if old is not None and old.get("managed"):
        raise ApiError(403, {"detail": "Modifications not allowed for managed credential types"})
    if data["kind"] not in ("cloud", "net"):
        raise bad(f"Must be 'cloud' or 'net', not {data['kind']}", "kind")
    inputs = data.get("inputs") or {}
    fields = inputs.get("fields", [])
    if not isinstance(fields, list):
        raise bad("'fields' must be a list", "inputs")
    ids = []
    for index, item in enumerate(fields):
        if not isinstance(item, dict) or "id" not in item or "label" not in item:
            raise bad(f"inputs.fields[{index}] needs an id and a label", "inputs")
        if not IDENTIFIER.match(item["id"]):
            raise bad(f"{item['id']} is an invalid variable name", "inputs")
        if item.get("type", "string") not in ("string", "boolean"):
            raise bad(f"{item['type']} is not one of ['string', 'boolean'] ({item['id']})", "inputs")
        if item["id"] in ids:
            raise bad(f"field IDs must be unique ({item['id']})", "inputs")
        ids.append(item["id"])
    for name in inputs.get("required", []):
        if name not in ids:
            raise bad(f"required field {name} is not defined in fields", "inputs")
    injectors = data.get("injectors") or {}
    unknown = set(injectors) - {"file", "env", "extra_vars"}
    if unknown:
        raise bad(f"Additional properties are not allowed ({sorted(unknown)} unexpected)", "injectors")
    files = injectors.get("file", {})
    for key in files:
        if not FILE_INJECTOR_KEY.match(key):
            raise bad(f"{key} is not a valid file injector key (template or template.<name>)", "injectors")
    for key in injectors.get("env", {}):
        if not IDENTIFIER.match(key):
            raise bad(f"{key} is not a valid environment variable name", "injectors")
        if key in ENV_BLOCKLIST or key.startswith("ANSIBLE_"):
            raise bad(f"Environment variable {key} is not allowed to be used in credentials.", "injectors")
    # AWX renders every injector template against a namespace of the type's own fields (and the file
    # injectors' tower.filename) with StrictUndefined: a reference to anything else is refused.
    namespace: dict[str, Any] = {name: "EXAMPLE" for name in ids}
    file_names = [key.split(".", 1)[1] for key in files if "." in key]
    filename: Any = {name: "EXAMPLE_FILENAME" for name in file_names} if file_names else "EXAMPLE_FILENAME"
    namespace["tower"] = namespace["awx"] = {"filename": filename}
    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined)
    for kind in ("file", "env", "extra_vars"):
        for key, template in injectors.get(kind, {}).items():
            try:
                env.from_string(str(template)).render(**namespace)
            except TemplateError as error:
                raise bad(f"Valid template required for {kind}.{key}: {error}", "injectors") from error


def _validate_credential(api: ApiDouble, data: dict[str, Any], old: dict[str, Any] | None) -> None:
    ctype = api.get("credential_types", data["credential_type"])
    if old is None and not (data.get("organization") or data.get("user") or data.get("team")):
        raise bad("Missing 'user', 'team', or 'organization'.")
    fields = {item["id"]: item for item in ctype["inputs"].get("fields", [])}
    inputs = data.get("inputs") or {}
    unexpected = sorted(set(inputs) - set(fields))
    if unexpected:
        raise bad(f"Additional properties are not allowed ({', '.join(map(repr, unexpected))} unexpected)", "inputs")
    for name in ctype["inputs"].get("required", []):
        if inputs.get(name) in (None, "") and not fields[name].get("ask_at_runtime"):
            raise ApiError(400, {"inputs": {name: [f"required for {ctype['name']}"]}})
    for name, value in inputs.items():
        kind = fields[name].get("type", "string")
        if (kind == "boolean" and not isinstance(value, bool)) or (kind == "string" and not isinstance(value, str)):
            raise ApiError(400, {"inputs": {name: [f"{value!r} is not of type {kind!r}"]}})
        if fields[name].get("format") == "vault_id" and "@" in value:
            raise ApiError(400, {"inputs": {name: ["Vault IDs cannot contain @."]}})


def _validate_project(api: ApiDouble, data: dict[str, Any], old: dict[str, Any] | None) -> None:
    if data.get("scm_type") and not data.get("scm_url"):
        raise bad("SCM type requires a URL (scm_url).", "scm_url")
    if data.get("organization") is None:
        raise bad("This field may not be null.", "organization")
    if data.get("credential"):
        kind = api.get("credential_types", api.get("credentials", data["credential"])["credential_type"])["kind"]
        if kind != "scm":
            raise bad("Credential kind must be 'scm'.", "credential")


def _validate_execution_environment(api: ApiDouble, data: dict[str, Any], old: dict[str, Any] | None) -> None:
    if not data.get("image"):
        raise bad("This field may not be blank.", "image")
    if data.get("credential"):
        kind = api.get("credential_types", api.get("credentials", data["credential"])["credential_type"])["kind"]
        if kind != "registry":
            raise bad(
                "Only Container Registry credentials can be associated with an Execution Environment", "credential"
            )


def _validate_inventory(api: ApiDouble, data: dict[str, Any], old: dict[str, Any] | None) -> None:
    if data.get("organization") is None:
        raise bad("This field may not be null.", "organization")
    if data.get("kind") is None:
        data["kind"] = ""
    if old is not None and old["kind"] != data["kind"]:
        raise bad("Cannot change the kind of an inventory.", "kind")


def _validate_inventory_source(api: ApiDouble, data: dict[str, Any], old: dict[str, Any] | None) -> None:
    if data["source"] == "scm":
        if not data.get("source_project"):
            raise bad("Project required for scm type sources.", "source_project")
        if not data.get("source_path"):
            raise bad("This field is required for scm sources.", "source_path")


def validate_survey_spec(spec: Any) -> str | None:
    """AWX's SurveySpecView checks of a survey spec; the error message, or None when it is accepted."""
    if not isinstance(spec, dict):
        return "Survey spec must be a json object."
    for key, wanted, label in (
        ("name", str, "string"),
        ("description", str, "string"),
        ("spec", list, "list of items"),
    ):
        if key not in spec:
            return f"Field '{key}' is missing from survey spec."
        if not isinstance(spec[key], wanted):
            return f"Expected {label} for field '{key}', received {type(spec[key]).__name__} type."
    if not spec["spec"]:
        return "'spec' doesn't contain any items."
    seen: set[str] = set()
    for index, item in enumerate(spec["spec"]):
        if not isinstance(item, dict):
            return f"Survey question {index} is not a json object."
        for key in ("type", "question_name", "variable", "required"):
            if key not in item:
                return f"'{key}' missing from survey question {index}"
            wanted_type, label = (bool, "boolean") if key == "required" else (str, "string")
            if not isinstance(item[key], wanted_type):
                return f"'{key}' in survey question {index} expected to be {label}."
        if item["variable"] in seen:
            return f"'variable' '{item['variable']}' duplicated in survey question {index}."
        seen.add(item["variable"])
        qtype = item["type"]
        if qtype not in SURVEY_TYPES:
            allowed = ", ".join(SURVEY_TYPES)
            return f"'{qtype}' in survey question {index} is not one of '{allowed}' allowed question types."
        if item.get("default", "") != "" and not isinstance(item["default"], SURVEY_TYPES[qtype]):
            label = qtype if qtype in ("integer", "float") else "string"
            return f"Default value {item['default']} in survey question {index} expected to be {label}."
        for key in ("min", "max"):
            if item.get(key) is not None and not isinstance(item[key], int):
                return f"The {key} limit in survey question {index} expected to be integer."
        if qtype in ("multiplechoice", "multiselect"):
            if "choices" not in item:
                return f"Survey question {index} of type {qtype} must specify choices."
            choices = item["choices"]
            if isinstance(choices, str):
                choices = [c for c in choices.splitlines() if c.strip()]
            if "default" in item:
                defaults = item["default"].splitlines() if isinstance(item["default"], str) else item["default"]
                if qtype == "multiplechoice" and len(defaults) > 1:
                    return "Multiple Choice (Single Select) can only have one default value."
                if any(choice not in choices for choice in defaults):
                    return "Default choice must be answered from the choices listed."
    return None


def _validate_job_template(api: ApiDouble, data: dict[str, Any], old: dict[str, Any] | None) -> None:
    if not data.get("inventory") and not data.get("ask_inventory_on_launch"):
        raise bad("Job Templates must have an inventory or allow prompting for it.", "inventory")
    if not data.get("project"):
        raise bad("Job Templates must have a project.", "project")
    project = api.get("projects", data["project"])
    if data.get("playbook") not in project["playbooks"]:
        raise bad("Playbook not found for project.", "playbook")


def _validate_job_template_credential(api: ApiDouble, parent: dict[str, Any], credential: dict[str, Any]) -> None:
    """AWX's JobTemplateCredentialsList.is_valid_relation."""
    ctype = api.get("credential_types", credential["credential_type"])

    def unique_hash(cred: dict[str, Any]) -> tuple[Any, ...]:
        vault_id = (
            cred["inputs"].get("vault_id")
            if api.get("credential_types", cred["credential_type"])["kind"] == "vault"
            else None
        )
        return (cred["credential_type"], vault_id)

    attached = [api.get("credentials", cid) for cid in parent["_associations"]["credentials"]]
    if unique_hash(credential) in {unique_hash(cred) for cred in attached}:
        raise ApiError(400, {"error": f"Cannot assign multiple {ctype['name']} credentials."})
    if ctype["kind"] not in ("ssh", "vault", "cloud", "net", "kubernetes"):
        raise ApiError(400, {"error": f"Cannot assign a Credential of kind `{ctype['kind']}`"})


MODELS: dict[str, Model] = {
    "organizations": Model(
        "organization",
        {
            **_common(),
            "max_hosts": Field("int", 0),
            "custom_virtualenv": Field("str"),
            "default_environment": Field("fk:execution_environments"),
        },
        associations=("instance_groups", "galaxy_credentials", *NOTIFICATIONS, "notification_templates_approvals"),
    ),
    "execution_environments": Model(
        "execution_environment",
        {
            **_common(),
            "image": Field("str", required=True),
            "organization": Field("fk:organizations"),
            "credential": Field("fk:credentials"),
            "pull": Field("str", "", choices=("", "always", "missing", "never")),
            "managed": Field("bool", False, read_only=True),
        },
        validate=_validate_execution_environment,
    ),
    "projects": Model(
        "project",
        {
            **_common(),
            "organization": Field("fk:organizations"),
            "local_path": Field("str", ""),
            "scm_type": Field("str", "", choices=("", "git", "svn", "insights", "archive")),
            "scm_url": Field("str", ""),
            "scm_branch": Field("str", ""),
            "scm_refspec": Field("str", ""),
            "scm_clean": Field("bool", False),
            "scm_track_submodules": Field("bool", False),
            "scm_delete_on_update": Field("bool", False),
            "credential": Field("fk:credentials"),
            "timeout": Field("int", 0),
            "scm_revision": Field("str", "", read_only=True),
            "scm_update_on_launch": Field("bool", False),
            "scm_update_cache_timeout": Field("int", 0),
            "allow_override": Field("bool", False),
            "custom_virtualenv": Field("str"),
            "default_environment": Field("fk:execution_environments"),
            "signature_validation_credential": Field("fk:credentials"),
            "status": Field("str", "never updated", read_only=True),
            "playbooks": Field("list", [], read_only=True),
            "inventory_files": Field("list", [], read_only=True),
        },
        unique_within=("organization",),
        associations=NOTIFICATIONS,
        validate=_validate_project,
    ),
    "project_updates": Model(
        "project_update",
        {
            "name": Field("str", read_only=True),
            "project": Field("fk:projects", read_only=True),
            "status": Field("str", read_only=True),
            "failed": Field("bool", read_only=True),
            "finished": Field("str", read_only=True),
            "scm_revision": Field("str", read_only=True),
            "result_traceback": Field("str", "", read_only=True),
        },
    ),
    "credential_types": Model(
        "credential_type",
        {
            **_common(),
            "kind": Field("str", required=True, choices=CREDENTIAL_KINDS),
            "namespace": Field("str", read_only=True),
            "managed": Field("bool", False, read_only=True),
            "inputs": Field("dict", {}),
            "injectors": Field("dict", {}),
        },
        validate=_validate_credential_type,
    ),
    "credentials": Model(
        "credential",
        {
            **_common(),
            "organization": Field("fk:organizations"),
            "credential_type": Field("fk:credential_types", required=True),
            "inputs": Field("dict", {}),
            "user": Field("fk:users"),
            "team": Field("fk:teams"),
            "kind": Field("str", read_only=True),
            "managed": Field("bool", False, read_only=True),
        },
        unique_within=("organization", "credential_type"),
        validate=_validate_credential,
    ),
    "inventories": Model(
        "inventory",
        {
            **_common(),
            "organization": Field("fk:organizations", required=True),
            "kind": Field("str", "", choices=("", "smart", "constructed", None)),
            "host_filter": Field("str"),
            "variables": Field("str", ""),
            "prevent_instance_group_fallback": Field("bool", False),
        },
        unique_within=("organization",),
        associations=("instance_groups", "input_inventories"),
        validate=_validate_inventory,
    ),
    "inventory_sources": Model(
        "inventory_source",
        {
            **_common(),
            "inventory": Field("fk:inventories", required=True),
            "source": Field("str", "", choices=SOURCES),
            "source_path": Field("str", ""),
            "source_vars": Field("str", ""),
            "scm_branch": Field("str", ""),
            "credential": Field("fk:credentials"),
            "enabled_var": Field("str", ""),
            "enabled_value": Field("str", ""),
            "host_filter": Field("str", ""),
            "limit": Field("str", ""),
            "overwrite": Field("bool", False),
            "overwrite_vars": Field("bool", False),
            "custom_virtualenv": Field("str"),
            "timeout": Field("int", 0),
            "verbosity": Field("int", 1, choices=(0, 1, 2)),
            "execution_environment": Field("fk:execution_environments"),
            "source_project": Field("fk:projects"),
            "update_on_launch": Field("bool", False),
            "update_cache_timeout": Field("int", 0),
        },
        unique_within=("inventory",),
        associations=NOTIFICATIONS,
        validate=_validate_inventory_source,
    ),
    "job_templates": Model(
        "job_template",
        {
            **_common(),
            "organization": Field("fk:organizations"),
            "job_type": Field("str", "run", choices=("run", "check")),
            "inventory": Field("fk:inventories"),
            "project": Field("fk:projects"),
            "playbook": Field("str", ""),
            "scm_branch": Field("str", ""),
            "forks": Field("int", 0),
            "limit": Field("str", ""),
            "verbosity": Field("int", 0, choices=(0, 1, 2, 3, 4, 5)),
            "extra_vars": Field("str", ""),
            "job_tags": Field("str", ""),
            "force_handlers": Field("bool", False),
            "skip_tags": Field("str", ""),
            "start_at_task": Field("str", ""),
            "timeout": Field("int", 0),
            "use_fact_cache": Field("bool", False),
            "execution_environment": Field("fk:execution_environments"),
            "host_config_key": Field("str", ""),
            **{
                f"ask_{name}_on_launch": Field("bool", False)
                for name in (
                    "scm_branch",
                    "diff_mode",
                    "variables",
                    "limit",
                    "tags",
                    "skip_tags",
                    "job_type",
                    "verbosity",
                    "inventory",
                    "credential",
                    "execution_environment",
                    "labels",
                    "forks",
                    "job_slice_count",
                    "timeout",
                    "instance_groups",
                )
            },
            "survey_enabled": Field("bool", False),
            "become_enabled": Field("bool", False),
            "diff_mode": Field("bool", False),
            "allow_simultaneous": Field("bool", False),
            "custom_virtualenv": Field("str"),
            "job_slice_count": Field("int", 1),
            "webhook_service": Field("str", "", choices=("", "github", "gitlab", "bitbucket_dc")),
            "webhook_credential": Field("fk:credentials"),
            "prevent_instance_group_fallback": Field("bool", False),
        },
        unique_within=("organization",),
        associations=("credentials", "labels", "instance_groups", *NOTIFICATIONS),
        validate=_validate_job_template,
    ),
    "instance_groups": Model("instance_group", _common()),
    "labels": Model("label", {**_common(), "organization": Field("fk:organizations", required=True)}),
    "notification_templates": Model("notification_template", _common()),
    "users": Model("user", {"username": Field("str", required=True)}),
    "teams": Model("team", {**_common(), "organization": Field("fk:organizations", required=True)}),
}


def discover_playbooks(checkout: Path) -> list[str]:
    """The playbooks AWX's project update lists for a checkout (awx.main.utils.ansible.could_be_playbook)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(checkout):
        relative = Path(dirpath).relative_to(checkout)
        parts = relative.parts
        if {"roles", "tasks", "group_vars", "host_vars"} & set(parts) or any(p.startswith(".") for p in parts):
            dirnames[:] = []
            continue
        for name in filenames:
            if Path(name).suffix not in (".yml", ".yaml"):
                continue
            with (Path(dirpath) / name).open(encoding="utf-8", errors="ignore") as handle:
                for number, line in enumerate(handle):
                    if PLAYBOOK_LINE.match(line) or (number == 0 and line.startswith("$ANSIBLE_VAULT;")):
                        found.append(str(relative / name))
                        break
    return sorted(found)


def git_revision(checkout: Path) -> str:
    """The commit a checkout is at (what AWX records as scm_revision), or a fixed stand-in outside git."""
    proc = subprocess.run(["git", "rev-parse", "HEAD"], cwd=checkout, capture_output=True, text=True, check=False)
    return proc.stdout.strip() if proc.returncode == 0 else "0" * 40


@dataclass
class Call:
    """One request the double answered."""

    method: str
    path: str
    status: int
    body: Any = None


@dataclass
class ApiDouble:
    """The in-memory AWX. ``checkouts`` maps an SCM URL to the local tree a project update "clones"."""

    token: str
    checkouts: dict[str, Path] = field(default_factory=dict)
    objects: dict[str, dict[int, dict[str, Any]]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    ignored_fields: list[tuple[str, str]] = field(default_factory=list)
    settings: dict[str, dict[str, Any]] = field(default_factory=lambda: {"jobs": {"AWX_TASK_ENV": {}}})
    ids: itertools.count = field(default_factory=lambda: itertools.count(1))
    lock: threading.RLock = field(default_factory=threading.RLock)
    url: str = ""

    def __post_init__(self) -> None:
        for endpoint in MODELS:
            self.objects.setdefault(endpoint, {})
        for definition in MANAGED_CREDENTIAL_TYPES:
            self._insert("credential_types", {**definition, "managed": True, "description": "", "injectors": {}})

    # ------------------------------------------------------------------ objects

    def get(self, endpoint: str, object_id: int) -> dict[str, Any]:
        try:
            return self.objects[endpoint][int(object_id)]
        except (KeyError, ValueError):
            raise ApiError(404, {"detail": "Not found."}) from None

    def find(self, endpoint: str, **filters: Any) -> list[dict[str, Any]]:
        """Objects of an endpoint whose fields equal ``filters`` (for tests)."""
        return [obj for obj in self.objects[endpoint].values() if all(obj.get(k) == v for k, v in filters.items())]

    def one(self, endpoint: str, **filters: Any) -> dict[str, Any]:
        (found,) = self.find(endpoint, **filters)
        return found

    def associated(self, endpoint: str, obj: dict[str, Any], name: str) -> list[dict[str, Any]]:
        target = "credentials" if name in ("galaxy_credentials", "credentials") else name
        if name.startswith("notification_templates"):
            target = "notification_templates"
        if name == "input_inventories":
            target = "inventories"
        return [self.get(target, oid) for oid in obj["_associations"][name]]

    def _insert(self, endpoint: str, data: dict[str, Any]) -> dict[str, Any]:
        model = MODELS[endpoint]
        object_id = next(self.ids)
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        obj = {name: copy.deepcopy(spec.default) for name, spec in model.fields.items()}
        obj.update(data)
        obj.update(id=object_id, type=model.type_name, created=now, modified=now)
        obj["_associations"] = {name: [] for name in model.associations}
        self.objects[endpoint][object_id] = obj
        return obj

    def _url(self, endpoint: str, object_id: int, sub: str = "") -> str:
        return f"{API_ROOT}{endpoint}/{object_id}/{sub + '/' if sub else ''}"

    def render(self, endpoint: str, obj: dict[str, Any]) -> dict[str, Any]:
        """The JSON the API answers for an object."""
        model = MODELS[endpoint]
        out = {key: copy.deepcopy(value) for key, value in obj.items() if not key.startswith("_")}
        out["url"] = self._url(endpoint, obj["id"])
        related: dict[str, str] = {name: self._url(endpoint, obj["id"], name) for name in model.associations}
        summary: dict[str, Any] = {}
        for name, spec in model.fields.items():
            if spec.kind.startswith("fk:") and obj.get(name) is not None:
                target = spec.kind[3:]
                related[name] = self._url(target, obj[name])
                ref = self.objects[target].get(obj[name], {})
                summary[name] = {"id": obj[name], "name": ref.get("name", ref.get("username"))}
        if endpoint == "job_templates":
            related["survey_spec"] = self._url(endpoint, obj["id"], "survey_spec")
            related["launch"] = self._url(endpoint, obj["id"], "launch")
            summary["credentials"] = [
                {"id": c["id"], "name": c["name"], "kind": self.get("credential_types", c["credential_type"])["kind"]}
                for c in self.associated(endpoint, obj, "credentials")
            ]
        if endpoint == "projects":
            related["update"] = self._url(endpoint, obj["id"], "update")
            related["playbooks"] = self._url(endpoint, obj["id"], "playbooks")
            if obj.get("_current_update"):
                summary["current_update"] = {"id": obj["_current_update"], "status": "successful"}
            if obj.get("_last_update"):
                summary["last_update"] = {"id": obj["_last_update"], "status": obj["status"]}
        if endpoint == "credentials":
            ctype = self.get("credential_types", obj["credential_type"])
            secret = {f["id"] for f in ctype["inputs"].get("fields", []) if f.get("secret")}
            out["inputs"] = {
                k: (ENCRYPTED if k in secret and v not in ("", None) else v) for k, v in obj["inputs"].items()
            }
            out["kind"] = ctype["kind"]
        out["related"] = related
        out["summary_fields"] = summary
        return out

    def secret_inputs(self, credential: dict[str, Any]) -> dict[str, Any]:
        """A credential's inputs decrypted (what AWX hands to a job)."""
        return copy.deepcopy(credential["inputs"])

    # ------------------------------------------------------------------ writes

    def _clean(self, endpoint: str, body: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
        model = MODELS[endpoint]
        data = {} if old is None else {k: copy.deepcopy(v) for k, v in old.items() if k in model.fields}
        errors: dict[str, list[str]] = {}
        for key, value in body.items():
            spec = model.fields.get(key)
            if spec is None or spec.read_only:
                self.ignored_fields.append((endpoint, key))
                continue
            problem = self._check_value(key, spec, value)
            if problem:
                errors[key] = [problem]
            data[key] = value
        for key, spec in model.fields.items():
            if spec.required and data.get(key) in (None, "") and not spec.read_only:
                errors.setdefault(key, ["This field is required."])
        if errors:
            raise ApiError(400, errors)
        scope = {key: data.get(key) for key in model.unique_within}
        name_key = "username" if endpoint == "users" else "name"
        for other in self.objects[endpoint].values():
            if old is not None and other["id"] == old["id"]:
                continue
            if other.get(name_key) == data.get(name_key) and all(other.get(k) == v for k, v in scope.items()):
                raise bad(f"{model.type_name.replace('_', ' ').title()} with this Name already exists.")
        if model.validate:
            model.validate(self, data, old)
        return data

    def _check_value(self, key: str, spec: Field, value: Any) -> str | None:
        if spec.choices is not None and value not in spec.choices:
            return f'"{value}" is not a valid choice.'
        if value is None:
            return None
        kind = spec.kind
        if kind.startswith("fk:"):
            if not isinstance(value, int) or isinstance(value, bool) or value not in self.objects[kind[3:]]:
                return f'Invalid pk "{value}" - object does not exist.'
            return None
        expected = {"str": str, "int": int, "bool": bool, "dict": dict, "list": list}.get(kind)
        if expected is None:
            return None
        if expected is int and isinstance(value, bool):
            return "A valid integer is required."
        if not isinstance(value, expected):
            return f"Expected a {kind}, got {type(value).__name__}."
        return None

    def create(self, endpoint: str, body: dict[str, Any]) -> dict[str, Any]:
        data = self._clean(endpoint, body, None)
        obj = self._insert(endpoint, data)
        if endpoint == "projects" and obj["scm_type"]:
            self.project_update(obj)
        return obj

    def update(self, endpoint: str, object_id: int, body: dict[str, Any]) -> dict[str, Any]:
        obj = self.get(endpoint, object_id)
        data = self._clean(endpoint, body, obj)
        if endpoint == "credentials":
            # Secret inputs sent back as $encrypted$ keep their stored value (AWX's behaviour).
            for key, value in list(data.get("inputs", {}).items()):
                if value == ENCRYPTED:
                    data["inputs"][key] = obj["inputs"].get(key)
        scm_changed = endpoint == "projects" and any(
            obj.get(k) != data.get(k) for k in ("scm_type", "scm_url", "scm_branch", "scm_refspec")
        )
        obj.update(data)
        obj["modified"] = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        if scm_changed and obj["scm_type"]:
            self.project_update(obj)
        else:
            obj.pop("_current_update", None)
        return obj

    def project_update(self, project: dict[str, Any]) -> dict[str, Any]:
        checkout = self.checkouts.get(project["scm_url"])
        ok = checkout is not None and checkout.is_dir()
        update = self._insert(
            "project_updates",
            {
                "name": project["name"],
                "project": project["id"],
                "status": "successful" if ok else "failed",
                "failed": not ok,
                "finished": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
                "scm_revision": git_revision(checkout) if ok and checkout else "",
                "result_traceback": "" if ok else f"fatal: unable to access '{project['scm_url']}'",
            },
        )
        project["_current_update"] = project["_last_update"] = update["id"]
        project["status"] = update["status"]
        if ok and checkout:
            project["scm_revision"] = update["scm_revision"]
            project["playbooks"] = discover_playbooks(checkout)
        return update

    def associate(self, endpoint: str, object_id: int, name: str, body: dict[str, Any]) -> None:
        obj = self.get(endpoint, object_id)
        if name not in obj["_associations"]:
            raise ApiError(404, {"detail": "Not found."})
        target_id = body.get("id")
        target = self.associated_target(name)
        if not isinstance(target_id, int) or target_id not in self.objects[target]:
            raise ApiError(400, {"msg": f'Invalid pk "{target_id}" - object does not exist.'})
        current = obj["_associations"][name]
        if body.get("disassociate"):
            if target_id in current:
                current.remove(target_id)
            return
        if endpoint == "job_templates" and name == "credentials" and target_id not in current:
            _validate_job_template_credential(self, obj, self.get("credentials", target_id))
        if target_id not in current:
            current.append(target_id)

    @staticmethod
    def associated_target(name: str) -> str:
        if name in ("credentials", "galaxy_credentials"):
            return "credentials"
        if name.startswith("notification_templates"):
            return "notification_templates"
        return "inventories" if name == "input_inventories" else name

    # ------------------------------------------------------------------ HTTP

    def handle(self, method: str, raw_path: str, headers: dict[str, str], body: Any) -> tuple[int, Any]:
        """Answer one request: (status, JSON body or None)."""
        if headers.get("authorization") != f"Bearer {self.token}":
            return 401, {"detail": "Authentication credentials were not provided."}
        parts = urlsplit(raw_path)
        path = parts.path
        if not path.startswith(API_ROOT):
            return 404, {"detail": "Not found."}
        segments = [s for s in path[len(API_ROOT) :].split("/") if s]
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        with self.lock:
            try:
                return self._route(method, segments, query, body)
            except ApiError as error:
                return error.status, error.body

    def _route(self, method: str, segments: list[str], query: dict[str, str], body: Any) -> tuple[int, Any]:
        if segments in (["ping"], ["config"]):
            return 200, {"version": AWX_VERSION, "ha": False, "active_node": "awx-double"}
        if segments == ["me"]:
            return 200, {"count": 1, "next": None, "previous": None, "results": [{"id": 1, "username": "admin"}]}
        if len(segments) == 2 and segments[0] == "settings":
            category = self.settings.setdefault(segments[1], {})
            if method == "PATCH":
                category.update(body or {})
            return 200, category
        if not segments or segments[0] not in MODELS:
            raise ApiError(404, {"detail": "Not found."})
        endpoint = segments[0]
        if len(segments) == 1:
            if method == "GET":
                return 200, self._list(endpoint, query)
            if method == "POST":
                return 201, self.render(endpoint, self.create(endpoint, body or {}))
            raise ApiError(405, {"detail": f'Method "{method}" not allowed.'})
        object_id = int(segments[1]) if segments[1].isdigit() else -1
        if len(segments) == 2:
            if method == "GET":
                return 200, self.render(endpoint, self.get(endpoint, object_id))
            if method in ("PATCH", "PUT"):
                return 200, self.render(endpoint, self.update(endpoint, object_id, body or {}))
            if method == "DELETE":
                self.get(endpoint, object_id)
                del self.objects[endpoint][object_id]
                return 204, None
            raise ApiError(405, {"detail": f'Method "{method}" not allowed.'})
        sub = segments[2]
        obj = self.get(endpoint, object_id)
        if endpoint == "job_templates" and sub == "survey_spec":
            return self._survey(obj, method, body)
        if endpoint == "projects" and sub == "playbooks":
            return 200, list(obj["playbooks"])
        if endpoint == "projects" and sub == "update" and method == "POST":
            update = self.project_update(obj)
            return 202, {**self.render("project_updates", update), "project_update": update["id"]}
        if sub in obj["_associations"]:
            if method == "GET":
                target = self.associated_target(sub)
                items = [self.render(target, self.get(target, i)) for i in obj["_associations"][sub]]
                return 200, {"count": len(items), "next": None, "previous": None, "results": items}
            if method == "POST":
                self.associate(endpoint, object_id, sub, body or {})
                return 204, None
        raise ApiError(404, {"detail": "Not found."})

    def _survey(self, template: dict[str, Any], method: str, body: Any) -> tuple[int, Any]:
        if method == "GET":
            return 200, copy.deepcopy(template.get("_survey_spec", {}))
        if method == "DELETE":
            template["_survey_spec"] = {}
            return 200, None
        if method == "POST":
            error = validate_survey_spec(body)
            if error:
                return 400, {"error": error}
            spec = copy.deepcopy(body)
            for item in spec["spec"]:
                if item["type"] in ("multiplechoice", "multiselect") and isinstance(item.get("choices"), str):
                    item["choices"] = "\n".join(c for c in item["choices"].splitlines() if c.strip())
            template["_survey_spec"] = spec
            return 200, None
        raise ApiError(405, {"detail": f'Method "{method}" not allowed.'})

    def _list(self, endpoint: str, query: dict[str, str]) -> dict[str, Any]:
        page = int(query.pop("page", "1"))
        size = int(query.pop("page_size", str(PAGE_SIZE)))
        query.pop("order_by", None)
        alternatives = {k[4:]: v for k, v in query.items() if k.startswith("or__")}
        required = {k: v for k, v in query.items() if not k.startswith("or__")}

        def matches(obj: dict[str, Any], key: str, value: str) -> bool:
            if key.endswith("__iexact"):
                return str(obj.get(key[:-8], "")).lower() == value.lower()
            return str(obj.get(key)) == value or (obj.get(key) is None and value in ("", "null", "None"))

        found = [
            obj
            for obj in self.objects[endpoint].values()
            if all(matches(obj, k, v) for k, v in required.items())
            and (not alternatives or any(matches(obj, k, v) for k, v in alternatives.items()))
        ]
        chunk = found[(page - 1) * size : page * size]
        has_next = page * size < len(found)
        next_url = f"{API_ROOT}{endpoint}/?page={page + 1}&page_size={size}" if has_next else None
        return {
            "count": len(found),
            "next": next_url,
            "previous": None,
            "results": [self.render(endpoint, o) for o in chunk],
        }

    # ------------------------------------------------------------------ server

    def serve(self) -> ThreadingHTTPServer:
        """Start answering on 127.0.0.1 (a free port) in a thread; sets ``url``; stop with ``shutdown()``."""
        double = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    self._send(400, {"detail": "JSON parse error"})
                    return
                headers = {k.lower(): v for k, v in self.headers.items()}
                status, answer = double.handle(self.command, self.path, headers, body)
                with double.lock:
                    double.calls.append(Call(self.command, self.path, status, body))
                self._send(status, answer)

            def _send(self, status: int, answer: Any) -> None:
                payload = b"" if answer is None else json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("X-API-Product-Name", "AWX")
                self.send_header("X-API-Product-Version", AWX_VERSION)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                if payload:
                    self.wfile.write(payload)

            do_GET = do_POST = do_PATCH = do_PUT = do_DELETE = _answer

            def log_message(self, format: str, *args: Any) -> None:  # pylint: disable=redefined-builtin
                """Requests are kept in ``calls``, not printed."""

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{server.server_address[1]}"
        threading.Thread(target=server.serve_forever, name="awx-api-double", daemon=True).start()
        return server
