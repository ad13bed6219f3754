"""Fuzzing the API from its own OpenAPI document (schemathesis) against a real ``camroll serve``.

Every operation gets generated requests, valid and invalid, once with a login session and once with
a device token; every answer must be no server error and must match the document: its status code,
its content type and its body schema.  A client generated from the document then understands every
answer the server gives.

Left out of the fuzz run, on purpose, and covered by ordinary tests instead:
- ``POST /me/password`` and ``POST /auth/logout`` end sessions (the run's own token would stop working
  half-way and the rest of the run would test nothing but 401s): tests/web/test_server.py;
- ``DELETE /devices/{device_id}`` could revoke the device whose token the run uses:
  tests/server/test_api.py, and test_bounds.py for ids past 2^63;
- ``POST /me/notifications`` would add alert URLs that the server then sends to, off this machine:
  tests/server/test_health.py and test_notify_cli.py.

``CAMROLL_FUZZ_EXAMPLES`` sets the examples per operation and generation mode (default 12, which keeps
the whole run under three minutes on a loaded 2-core machine).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from support.server import ServerProcess

from camroll import wire

from .conftest import jpeg, make_user, upload

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = int(os.environ.get("CAMROLL_FUZZ_EXAMPLES", "12"))
EXCLUDED = {
    ("POST", "/api/v1/me/password"),
    ("POST", "/api/v1/auth/logout"),
    ("DELETE", "/api/v1/devices/{device_id}"),
    ("POST", "/api/v1/me/notifications"),
    # A framed binary body (wire.BATCH_CONTENT_TYPE) that schemathesis cannot generate; its bounds and
    # refusals are tested byte by byte in test_batch.py.
    ("POST", wire.BATCH_PATH),
}


@dataclass
class Found:
    """Distinct failures by (operation, check failure title), each with one example to reproduce."""

    items: dict[tuple[str, str], str] = field(default_factory=dict)
    server_errors: set[str] = field(default_factory=set)

    def add(self, label: str, failure: Failure, status: int, curl: str) -> None:
        key = (label, f"{type(failure).__name__}: {failure.title}")
        self.items.setdefault(key, f"{status}: {failure.message[:300]}\n    {curl[:600]}")
        if status >= 500:
            self.server_errors.add(label)

    def report(self) -> str:
        lines = [f"{len(self.items)} distinct failures ({len(self.server_errors)} operations with server errors):"]
        lines += [f"- {op} {title}\n    {example}" for (op, title), example in sorted(self.items.items())]
        return "\n".join(lines)


@pytest.fixture(scope="module")
def fuzz_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    srv = ServerProcess(data=tmp_path_factory.mktemp("fuzz") / "server-data")
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def tokens(fuzz_server: ServerProcess) -> dict[str, str]:
    """A session token of one user and a device token of another, each with two photos stored, so the
    fuzzer's small ids reach real assets too."""
    session_user, device_user = make_user(fuzz_server), make_user(fuzz_server)
    for u in (session_user, device_user):
        for seed in range(2):
            upload(u.client, jpeg(2000, seed=seed + 100 * len(u.name)))
        u.client.close()
    return {"session": fuzz_server.login(session_user.name, session_user.password),
            "device": str(device_user.client.headers["Authorization"]).removeprefix("Bearer ")}


def _fuzz_operation(srv: ServerProcess, op: schemathesis.APIOperation, mode: GenerationMode, headers: dict[str, str],
                    found: Found) -> None:
    @settings(max_examples=EXAMPLES, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=op.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:
        response = case.call(base_url=srv.url, headers=headers, timeout=30)
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except FailureGroup as group:
            for failure in group.exceptions:
                found.add(op.label, failure, response.status_code, case.as_curl_command(headers=headers))
        except Failure as failure:
            found.add(op.label, failure, response.status_code, case.as_curl_command(headers=headers))

    try:
        run()
    except Unsatisfiable:
        # Nothing to make invalid (an operation without parameters or body).
        assert mode is GenerationMode.NEGATIVE, op.label


def _fuzz(srv: ServerProcess, token: str) -> Found:
    schema = schemathesis.openapi.from_url(f"{srv.url}{wire.API_PREFIX}/openapi.json")
    found = Found()
    headers = {"Authorization": f"Bearer {token}"}
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) > 25, "the OpenAPI document lost its operations"
    for op in operations:
        if (op.method.upper(), op.path) not in EXCLUDED:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                _fuzz_operation(srv, op, mode, headers, found)
    return found


@pytest.mark.timeout(600)
@pytest.mark.parametrize("principal", ["session", "device"])
def test_fuzz_openapi_no_server_error_and_conformance(fuzz_server: ServerProcess, tokens: dict[str, str],
                                                      principal: str) -> None:
    found = _fuzz(fuzz_server, tokens[principal])
    print(found.report())
    assert not found.items, found.report()
