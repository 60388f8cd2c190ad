"""The admin API's OpenAPI document: served without a key, and in step with the routes."""
import requests

from cbgate.http.admin_routes import AdminRoutes
from tests.support.admin_plane import make_cast

METHODS = {"get", "post", "put", "delete", "patch"}


def test_every_route_is_documented_and_every_documented_path_is_routed(gateway):
    doc = requests.get(f"{gateway.url}/admin/v1/openapi.json", timeout=10).json()
    assert doc["openapi"].startswith("3.1")
    routed = set(AdminRoutes(None, None).route_templates())
    documented = {(m.upper(), path) for path, ops in doc["paths"].items() for m in ops if m in METHODS}
    assert routed == documented
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if op.get("security") == []:
                continue
            assert {"401", "403"} <= set(op["responses"]), (method, path)


def test_documented_schemas_resolve(gateway):
    doc = requests.get(f"{gateway.url}/admin/v1/openapi.json", timeout=10).json()
    text = requests.get(f"{gateway.url}/admin/v1/openapi.json", timeout=10).text
    for ref in {part.split('"')[0] for part in text.split('"$ref":"#/components/schemas/')[1:]}:
        assert ref in doc["components"]["schemas"], ref


def test_documented_key_fields_match_what_the_api_returns(gateway):
    cast = make_cast(gateway)
    doc = requests.get(f"{gateway.url}/admin/v1/openapi.json", timeout=10).json()
    made = cast.call("POST", f"/admin/v1/envs/{gateway.env_id}/keys", cast.operator,
                     json={"name": "doc", "kind": "publishable", "expires_days": 7}).json()
    schemas = doc["components"]["schemas"]
    assert set(made) == set(schemas["Key"]["properties"]) | {"key"}
    assert made["kind"] == "publishable" and made["expires_at"] > made["created_at"]
    listed = cast.call("GET", f"/admin/v1/envs/{gateway.env_id}/keys", cast.operator).json()["data"]
    assert all(set(k) == set(schemas["Key"]["properties"]) for k in listed)
    assert made["key"] not in str(listed)


def test_unknown_paths_and_methods_are_cloudbase_errors(gateway):
    resp = requests.get(f"{gateway.url}/admin/v1/nothing", timeout=10)
    assert resp.status_code == 404 and resp.json()["code"] == "INVALID_PATH"
    resp = requests.patch(f"{gateway.url}/admin/v1/envs", timeout=10)
    assert resp.status_code == 405 and resp.json()["code"] == "INVALID_PATH"


def test_bad_query_parameters_are_invalid_param(gateway):
    headers = gateway.headers()
    for query in ("requests?limit=nan", "requests?limit=inf", "usage?days=-1", "usage?since=x", "usage?by=color"):
        resp = requests.get(f"{gateway.url}/admin/v1/envs/{gateway.env_id}/{query}", headers=headers, timeout=10)
        assert resp.status_code == 400 and resp.json()["code"] == "INVALID_PARAM", query
