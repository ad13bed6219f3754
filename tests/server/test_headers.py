"""No docs page loading scripts from a CDN, and security headers on every answer (issue 8, defect 11)."""

from __future__ import annotations

import httpx
from support.server import ServerProcess

from camroll.server.headers import SECURITY_HEADERS
from camroll.server.web.assets import bundle
from camroll.server.web.routes import CSP

from .conftest import TUS, assert_problem, jpeg, make_user, upload

DATA_CSP = dict(SECURITY_HEADERS)[b"content-security-policy"].decode()


def _secured(r: httpx.Response, csp: str = DATA_CSP) -> None:
    assert r.headers["x-content-type-options"] == "nosniff", (r.url, r.headers)
    assert r.headers["x-frame-options"] == "DENY"
    assert r.headers["referrer-policy"] == "no-referrer"
    assert r.headers.get_list("content-security-policy") == [csp], (r.url, r.headers)


def test_no_docs_page_but_the_openapi_document_stays(shared_server: ServerProcess) -> None:
    assert_problem(httpx.get(shared_server.url + "/api/v1/docs"), 404, "not_found")
    assert httpx.get(shared_server.url + "/api/v1/docs/oauth2-redirect").status_code == 404
    spec = httpx.get(shared_server.url + "/api/v1/openapi.json")
    assert spec.status_code == 200 and spec.json()["info"]["title"] == "camroll"
    _secured(spec)


def test_every_kind_of_answer_carries_the_headers(shared_server: ServerProcess) -> None:
    u = make_user(shared_server)
    asset = upload(u.client, jpeg(500, seed=4242), filename="page.html")
    base = shared_server.url
    answers = [
        httpx.get(base + "/api/v1/server"),
        httpx.get(base + "/api/v1/me"),                                        # 401 problem
        httpx.get(base + "/nowhere"),                                           # 404 problem
        u.client.get("/api/v1/devices"),                                        # 403 problem
        u.session.get(f"/api/v1/assets/{asset}/original"),                      # a user's file
        u.client.post("/api/v1/uploads/", headers={**TUS, "Upload-Length": "x"}),  # a tus error
        u.client.options("/api/v1/uploads/", headers=TUS),
        httpx.post(base + "/api/v1/auth/login", content=b"{" * 100_000,         # refused by the body limit
                   headers={"Content-Type": "application/json"}),
    ]
    assert [r.status_code for r in answers][:5] == [200, 401, 404, 403, 200]
    assert answers[-1].status_code == 413
    for r in answers:
        _secured(r)
    # The web UI keeps its own policy, once.
    version = bundle().version
    for path in ("/", "/index.html", f"/static/{version}/app.css"):
        r = httpx.get(base + path)
        assert r.status_code == 200
        _secured(r, CSP)
    u.close()
