"""Fixtures shared by all tests: the real control plane (once per session) and fresh namespaces."""

from __future__ import annotations

import uuid

import pytest

from tests.harness.controlplane import ControlPlane, running_controlplane


@pytest.fixture(scope="session")
def controlplane() -> ControlPlane:
    with running_controlplane() as plane:
        yield plane


@pytest.fixture
def namespace(controlplane: ControlPlane) -> str:
    """A new namespace for one test (namespaces never finish deleting here: no controllers run)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    result = controlplane.kubectl("create", "namespace", name)
    assert result.returncode == 0, result.stderr
    return name
