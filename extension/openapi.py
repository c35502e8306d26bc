"""The OpenAPI 3.0 description of the extension API, in one place (served at /openapi.json).

A test walks the Flask routes of the blueprint and this dict both ways, so an endpoint cannot be
added without being described, nor described without existing.
"""

from __future__ import annotations

import copy
from typing import Any

from extension import aggregated
from extension.actions import ACTIONS
from extension.status import ABORTABLE_PHASES

VERSION = "1.0.0"


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict, description: str) -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict:
    return _json(_ref("Error"), description)


_PATH_PARAMS = [
    {
        "name": "namespace",
        "in": "path",
        "required": True,
        "description": "Namespace of the VirtualMachine.",
        "schema": {"type": "string"},
    },
    {
        "name": "name",
        "in": "path",
        "required": True,
        "description": "Name of the VirtualMachine (its VMI has the same name).",
        "schema": {"type": "string"},
    },
]

_COMMON_ERRORS = {
    "401": _error("No bearer token, or the API server did not accept it (TokenReview)."),
    "403": _error("The caller lacks the permission in the VM's namespace (SubjectAccessReview)."),
    "404": _error("The VirtualMachine does not exist (only said after the permission check)."),
    "502": _error("The Kubernetes API answered with an unexpected error."),
    "503": _error("The Kubernetes API is unreachable, or the cluster cache is still loading."),
}

_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {"type": "string", "description": "What is wrong, for a person."},
            "kind": {"type": "string", "enum": ["Status"], "description": "A Kubernetes Status."},
            "apiVersion": {"type": "string"},
            "status": {"type": "string", "enum": ["Failure"]},
            "code": {"type": "integer", "description": "The HTTP status."},
            "reason": {"type": "string", "description": "Kubernetes' reason, e.g. Forbidden."},
            "message": {"type": "string", "description": "The same text as error."},
            "causes": {"type": "array", "items": _ref("Cause")},
            "target": {"type": "string", "description": "The refused target node."},
            "targetReasons": {
                "type": "array",
                "items": _ref("Problem"),
                "description": "Every reason the refused target node cannot receive the VM.",
            },
        },
    },
    "Cause": {
        "type": "object",
        "required": ["code", "message"],
        "properties": {
            "code": {"type": "string", "example": "CDROMVolume"},
            "message": {"type": "string"},
            "field": {
                "type": "string",
                "nullable": True,
                "example": "spec.domain.devices.disks[1]",
            },
        },
    },
    "Problem": {
        "type": "object",
        "required": ["code", "message"],
        "properties": {
            "code": {"type": "string", "example": "NodeCordoned"},
            "message": {"type": "string"},
            "field": {"type": "string"},
        },
    },
    "NodeVerdict": {
        "type": "object",
        "required": ["name", "eligible", "reasons"],
        "properties": {
            "name": {"type": "string"},
            "eligible": {"type": "boolean"},
            "reasons": {"type": "array", "items": _ref("Problem")},
        },
    },
    "Timeouts": {
        "type": "object",
        "properties": {
            "dataBytes": {"type": "integer"},
            "dataGiB": {"type": "integer"},
            "completionTimeoutSeconds": {"type": "integer"},
            "progressTimeoutSeconds": {"type": "integer"},
            "kubevirt": {
                "type": "object",
                "description": "KubeVirt's own limits (its launcher aborts by them): completion "
                "per decimal GB, progress, allowPostCopy/allowWorkloadDisruption, and their source "
                "(default, kubevirt, policy, migrationState).",
            },
            "firesFirst": {
                "type": "object",
                "description": "per limit (completion, progress): migration-guard, kubevirt or same",
            },
        },
    },
    "Report": {
        "type": "object",
        "description": "The rule engine's decision for the VM (the webhook decides the same).",
        "required": ["vm", "allowed", "blockers", "nodes", "eligibleNodes"],
        "properties": {
            "vm": {"type": "string", "example": "default/vm1"},
            "sourceNode": {"type": "string", "nullable": True},
            "target": {"type": "string", "nullable": True},
            "allowed": {"type": "boolean"},
            "blockers": {"type": "array", "items": _ref("Problem")},
            "nodes": {"type": "array", "items": _ref("NodeVerdict")},
            "eligibleNodes": {"type": "array", "items": {"type": "string"}},
            "timeouts": {"allOf": [_ref("Timeouts")], "nullable": True},
            "problems": {"type": "array", "items": _ref("Problem")},
            "notes": {
                "type": "array",
                "items": {"type": "string"},
                "description": "What the decision could not judge, and why.",
            },
            "nodesEvaluated": {
                "type": "boolean",
                "description": "False when no node was judged (the VM is not running, ...).",
            },
        },
    },
    "Nodes": {
        "type": "object",
        "required": ["nodes"],
        "properties": {
            "nodes": {
                "type": "array",
                "items": {"type": "string"},
                "description": "Nodes the VM may migrate to; empty when the VM has blockers.",
            }
        },
    },
    "MigrateRequest": {
        "type": "object",
        "properties": {
            "nodeName": {
                "type": "string",
                "nullable": True,
                "description": "Target node; empty or missing lets KubeVirt pick any node.",
            }
        },
    },
    "Migration": {
        "type": "object",
        "description": "The VMIM created by the migrate action.",
        "properties": {
            "name": {"type": "string"},
            "namespace": {"type": "string"},
            "uid": {"type": "string"},
            "vmiName": {"type": "string"},
            "targetNode": {"type": "string", "nullable": True},
            "timeouts": {"allOf": [_ref("Timeouts")], "nullable": True},
        },
    },
    "Aborted": {
        "type": "object",
        "properties": {
            "aborted": {"type": "string", "description": "Name of the deleted VMIM."},
            "uid": {"type": "string"},
            "phase": {"type": "string", "enum": list(ABORTABLE_PHASES)},
            "vm": {"type": "string"},
        },
    },
    "ActionResult": {"oneOf": [_ref("Nodes"), _ref("Aborted")]},
    "MigrationStatus": {
        "type": "object",
        "required": ["vm", "migration"],
        "properties": {
            "vm": {"type": "string"},
            "migration": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "nullable": True},
                    "uid": {"type": "string", "nullable": True},
                    "phase": {"type": "string", "nullable": True},
                    "final": {"type": "boolean", "nullable": True},
                    "sourceNode": {"type": "string", "nullable": True},
                    "targetNode": {"type": "string", "nullable": True},
                    "startTimestamp": {"type": "string", "format": "date-time", "nullable": True},
                    "endTimestamp": {"type": "string", "format": "date-time", "nullable": True},
                    "elapsedSeconds": {"type": "integer", "nullable": True},
                    "completionDeadline": {
                        "type": "string",
                        "format": "date-time",
                        "nullable": True,
                    },
                    "completionTimeoutSeconds": {"type": "integer", "nullable": True},
                    "progressTimeoutSeconds": {"type": "integer", "nullable": True},
                    "dataRemainingBytes": {"type": "integer", "nullable": True},
                    "requestedBy": {"type": "string", "nullable": True},
                    "failureReason": {"type": "string", "nullable": True},
                    "abortStatus": {"type": "string", "nullable": True},
                    "abort": {
                        "type": "object",
                        "nullable": True,
                        "description": "The enforcer's migration-guard.io/abort record.",
                    },
                    "conditions": {"type": "array", "items": {"type": "object"}},
                    "why": {
                        "type": "string",
                        "nullable": True,
                        "description": "Why it failed or was aborted, for a person.",
                    },
                },
            },
        },
    },
}

_SPEC: dict[str, Any] = {
    "openapi": "3.0.3",
    "info": {
        "title": "migration-guard extension API",
        "version": VERSION,
        "description": (
            "Live-migration actions and reports for the Harvester UI. Every call needs "
            "'Authorization: Bearer <token>' (checked with a TokenReview), or comes through "
            "kube-apiserver's aggregator (the /apis/" + aggregated.GROUP_VERSION + " paths; "
            "kube-apiserver authenticates the user and authorizes the subresource, then proxies "
            "with a front-proxy client certificate), and is authorized with a "
            "SubjectAccessReview in the VM's namespace."
        ),
    },
    "security": [{"bearer": []}],
    "paths": {
        "/v1/harvester/kubevirt.io.virtualmachines/{namespace}/{name}": {
            "post": {
                "operationId": "vmAction",
                "summary": "Harvester VM actions: findMigratableNodes, migrate, abortMigration",
                "description": (
                    "findMigratableNodes (needs get virtualmachines) returns the nodes the VM may "
                    "move to. migrate (needs create virtualmachineinstancemigrations) evaluates "
                    "the rules, then creates a VMIM; refused -> 422 with the webhook's causes. "
                    "abortMigration (needs delete virtualmachineinstancemigrations) deletes the "
                    "VMIM in progress when its phase is one of "
                    + ", ".join(ABORTABLE_PHASES)
                    + "; otherwise 409 naming the phase."
                ),
                "parameters": [
                    *_PATH_PARAMS,
                    {
                        "name": "action",
                        "in": "query",
                        "required": True,
                        "schema": {"type": "string", "enum": list(ACTIONS)},
                    },
                ],
                "requestBody": {
                    "required": False,
                    "description": "Only for action=migrate.",
                    "content": {"application/json": {"schema": _ref("MigrateRequest")}},
                },
                "responses": {
                    "200": _json(
                        _ref("ActionResult"),
                        "findMigratableNodes: the nodes; abortMigration: the deleted VMIM.",
                    ),
                    "201": _json(_ref("Migration"), "migrate: the VMIM was created."),
                    "400": _error("Unknown or missing action, or a malformed JSON body."),
                    **_COMMON_ERRORS,
                    "409": _error("abortMigration: no migration in progress, or a final phase."),
                    "413": _error("The request body is larger than 64 KiB."),
                    "422": _error("migrate: refused by the rules or the admission webhook."),
                },
            }
        },
        "/v1/namespaces/{namespace}/virtualmachines/{name}/migration-targets": {
            "get": {
                "operationId": "migrationTargets",
                "summary": "Every node with the reasons it can or cannot receive the VM",
                "parameters": _PATH_PARAMS,
                "responses": {
                    "200": _json(_ref("Report"), "The report."),
                    **_COMMON_ERRORS,
                    "422": _error("A cluster object the rules read is malformed."),
                },
            }
        },
        "/v1/namespaces/{namespace}/virtualmachines/{name}/migration": {
            "get": {
                "operationId": "migrationStatus",
                "summary": "The current or last migration of the VM",
                "parameters": _PATH_PARAMS,
                "responses": {
                    "200": _json(_ref("MigrationStatus"), "The migration."),
                    **{k: v for k, v in _COMMON_ERRORS.items() if k != "404"},
                    "404": _error("The VM does not exist, or it never migrated."),
                },
            }
        },
        "/v1/nodes/{name}/drain-plan": {
            "get": {
                "operationId": "drainPlan",
                "summary": "Every VM of the node and what draining it does: where each goes, or "
                "what holds the drain (needs list virtualmachineinstances in every namespace)",
                "parameters": [
                    {
                        "name": "name",
                        "in": "path",
                        "required": True,
                        "description": "Name of the Node.",
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {
                    "200": {"description": "The drain plan (migration-guard drain-plan -o json)."},
                    **{k: v for k, v in _COMMON_ERRORS.items() if k != "404"},
                    "404": _error(
                        "The node does not exist (only said after the permission check)."
                    ),
                    "422": _error("A cluster object the rules read is malformed."),
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "security": [],
                "responses": {"200": {"description": "The OpenAPI document."}},
            }
        },
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": _SCHEMAS,
    },
}


def _aggregated_paths() -> dict[str, Any]:
    """The aggregated API's paths: the same operations as the direct ones they share views with."""
    direct = _SPEC["paths"]
    vm_path = "/v1/namespaces/{namespace}/virtualmachines/{name}"
    action = direct["/v1/harvester/kubevirt.io.virtualmachines/{namespace}/{name}"]["post"]
    responses = action["responses"]
    operations = {
        "migration_targets": direct[f"{vm_path}/migration-targets"]["get"],
        "migration": direct[f"{vm_path}/migration"]["get"],
        "drain_plan": direct["/v1/nodes/{name}/drain-plan"]["get"],
        "migrate": {
            "summary": "Evaluate the rules, then create a VMIM (body: MigrateRequest)",
            "requestBody": action["requestBody"] | {"description": "The target, if any."},
            "responses": {k: responses[k] for k in ("201", "400", *_COMMON_ERRORS, "413", "422")},
        },
        "abort": {
            "summary": "Delete the VMIM in progress (phases " + ", ".join(ABORTABLE_PHASES) + ")",
            "responses": {
                "200": _json(_ref("ActionResult"), "The deleted VMIM."),
                **_COMMON_ERRORS,
                "409": responses["409"],
            },
        },
    }
    paths: dict[str, Any] = {
        aggregated.PREFIX: {
            "get": {
                "operationId": "apiResources",
                "summary": "Discovery: the subresources and their verbs (an APIResourceList)",
                "security": [],
                "responses": {"200": {"description": "The APIResourceList."}},
            }
        }
    }
    for sub in aggregated.SUBRESOURCES:
        path = aggregated.route(sub).replace("<", "{").replace(">", "}")
        operation = copy.deepcopy(operations[sub.view])
        operation["operationId"] = f"api{sub.kind}"
        if sub.namespaced:
            operation["parameters"] = _PATH_PARAMS
        operation["description"] = (
            f"RBAC: {sub.verb} on {sub.parent}/{sub.name} in {aggregated.GROUP}, checked by "
            "kube-apiserver; the backend checks the KubeVirt permission as on the direct path."
        )
        paths[path] = {sub.method.lower(): operation}
    return paths


_SPEC["paths"].update(_aggregated_paths())


def build_spec() -> dict:
    """A fresh copy of the document (callers may modify it)."""
    return copy.deepcopy(_SPEC)
