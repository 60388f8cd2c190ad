"""The admin API's OpenAPI 3.1 document, served at `/admin/v1/openapi.json`. A test checks that every
route in admin_routes.py is described here and that nothing here is unrouted."""
from __future__ import annotations

from copy import deepcopy


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _obj(required: list[str] | None = None, description: str | None = None, **props) -> dict:
    schema = {"type": "object", "properties": props}
    if description:
        schema["description"] = description
    if required:
        schema["required"] = required
    return schema


def _list_of(name: str) -> dict:
    return _obj(["data"], data={"type": "array", "items": _ref(name)})


STR, NUM, INT, BOOL = {"type": "string"}, {"type": "number"}, {"type": "integer"}, {"type": "boolean"}
NULLABLE_NUM = {"type": ["number", "null"]}
NULLABLE_STR = {"type": ["string", "null"]}
COUNTS = {"requests": INT, "errors": INT, "prompt_tokens": INT, "completion_tokens": INT, "total_tokens": INT,
          "images": INT, "cache_read_tokens": INT, "cache_creation_tokens": INT,
          "cost_micros": {"type": "object", "additionalProperties": {"type": "integer"},
                          "description": "cost per currency in millionths (micro-units), e.g. {\"CNY\": 12345}"},
          "unpriced_requests": {"type": "integer", "description": "requests whose model had no price"}}
KEY_MODELS = {
    "models": {"type": ["array", "null"], "items": STR,
               "description": "group/model names the key may call, on every surface; null: every model of its env"},
    **{name: {"type": ["integer", "null"], "minimum": 1, "description": f"the key's own {text}, under its "
              "environment's; null: none of its own"}
       for name, text in (("concurrency", "requests at once"), ("rpm", "requests per minute"),
                          ("token_quota", "tokens in all"))}}
BUDGET_AMOUNT = {"type": ["string", "integer"], "description": "money as a decimal string (\"12.50\"), tokens as an integer"}
INPUTS = {  # what a custom group's upstream reads besides text (README, "What a deployment reads")
    "vision": {"type": ["boolean", "null"], "description": (
        "whether the upstream reads images (image_url parts, Messages image blocks, Responses input_image). "
        "false: requests with images are refused with AI_MODEL_PARAM_INVALID; null: not declared, sent as is")},
    "audio_input": {"type": ["boolean", "null"], "description": (
        "whether the upstream reads input_audio parts; false: refused; null: not declared, sent as is")}}
PRICE_TEXT = {"type": ["string", "number"], "description": "currency units per 1,000 tokens, e.g. \"0.0008\""}

SCHEMAS = {
    "Error": _obj(["code", "message", "requestId"], code=STR, message=STR, requestId=STR),
    "Me": _obj(["kind", "envs"], kind={"enum": ["operator", "server"]}, env=NULLABLE_STR,
               envs={"type": "array", "items": STR},
               busiest={"type": ["string", "null"],
                        "description": "the visible environment with the most requests in 30 days"}),
    "Env": _obj(["id"], id=STR, created_at=NULLABLE_NUM, origins={"type": "array", "items": STR}),
    "Key": _obj(["id", "env_id", "prefix", "kind"], id=STR, env_id=STR, prefix=STR,
                kind={"enum": ["server", "publishable"]}, name=STR, created_at=NUM, expires_at=NULLABLE_NUM,
                revoked_at=NULLABLE_NUM, last_used_at=NULLABLE_NUM, mcp=_ref("McpGrants"), **KEY_MODELS),
    "McpGrants": {"type": ["object", "null"], "description": (
        "MCP tools the key may call: service -> tool names or \"*\". null: the default (a server key every "
        "service of its environment, a publishable key none). Replaced whole: what it leaves out is revoked."),
        "additionalProperties": {"oneOf": [{"const": "*"}, {"type": "array", "items": STR, "minItems": 1}]}},
    "KeyPermissions": _obj(["id", "mcp"], id=STR, mcp=_ref("McpGrants"), **KEY_MODELS),
    "McpService": _obj(["name", "url", "transport"], name=STR, url=STR,
                       transport={"enum": ["streamable-http", "sse"]},
                       timeout={"type": "number", "description": "seconds one call may take"}, enabled=BOOL,
                       has_headers={"type": "boolean", "description": "whether it has headers (never their values)"},
                       created_at=NUM, updated_at=NUM),
    "NewMcpService": _obj(["name", "url"], name=STR, url={"type": "string", "description": (
        "its Streamable HTTP endpoint, or its SSE endpoint with transport sse; checked under the egress policy")},
        transport={"enum": ["streamable-http", "sse"]},
        headers={"type": "object", "writeOnly": True, "additionalProperties": STR,
                 "description": "the server's own credentials, stored encrypted"},
        timeout={"type": ["number", "null"], "exclusiveMinimum": 0}),
    "KeyCreated": {"allOf": [_ref("Key"), _obj(["key"], key={"type": "string", "description": "shown only once"})]},
    "Model": _obj(["name", "enabled"], name=STR, enabled=BOOL),
    "ModelGroup": _obj(["name", "models"], name=STR, type={"enum": ["builtin", "custom"]}, enabled=BOOL,
                       protocol={"enum": ["catalog", "openai", "anthropic"]}, base_url=NULLABLE_STR,
                       has_key={"type": "boolean", "description": "whether a secret is set (never the secret)"},
                       timeouts={"type": ["object", "null"], "description": "seconds; null: the defaults"},
                       models={"type": "array", "items": _ref("Model")}, **INPUTS),
    "NewGroup": _obj(["name", "base_url", "models"], name=STR, base_url=STR,
                     models={"type": "array", "items": STR}, api_key={"type": "string", "writeOnly": True},
                     protocol={"enum": ["openai", "anthropic"]},
                     check={"type": "boolean", "description": "ask the upstream first (default true)"},
                     timeouts={"type": "object", "description": "seconds: connect, first_byte, idle, total",
                               "additionalProperties": {"type": "number", "exclusiveMinimum": 0}}, **INPUTS),
    "Agent": _obj(["id", "name", "kind"], id=STR, env=STR, name=STR,
                  kind={"enum": ["model", "url"], "description": "model: run by the gateway on its model "
                        "service; url: an AG-UI server it fronts"},
                  model=NULLABLE_STR, group=NULLABLE_STR, url=NULLABLE_STR, instructions=NULLABLE_STR,
                  welcome=NULLABLE_STR, introduction=NULLABLE_STR, questions={"type": "array", "items": STR},
                  mcp_services={"type": "array", "items": STR, "description": "MCP services of the environment "
                                "whose tools its runs call server-side (within the calling key's permissions)"},
                  created_at=STR, updated_at=STR),
    "AgentFields": _obj(name=STR, model=STR, group={"type": "string", "description": "default: cloudbase"},
                        url={"type": "string", "description": "instead of a model: an AG-UI server to front, "
                             "checked under the egress policy"},
                        instructions=STR, welcome=STR, introduction=STR,
                        questions={"type": "array", "items": STR, "maxItems": 10},
                        mcp_services={"type": "array", "items": STR, "maxItems": 16,
                                      "description": "the environment's MCP services whose tools the agent's runs "
                                      "may call server-side; [] for none (model agents only)"}),
    "Usage": _obj(["requests", "total_tokens"], env=STR, since=NULLABLE_NUM, until=NULLABLE_NUM, key=NULLABLE_STR,
                  by=NULLABLE_STR, **COUNTS,
                  rows={"type": "array", "items": {"type": "object", "properties": {
                      "model": STR, "key": NULLABLE_STR, "group": STR, "day": STR, "surface": STR, "service": STR,
                      "tool": STR, "outcome": NULLABLE_STR, "agent": NULLABLE_STR, **COUNTS}}}),
    "Price": _obj(["group", "model", "type", "tiers"], group=STR, model=STR, currency=NULLABLE_STR,
                  type={"enum": ["Uniform", "Tiered", "Unpriced"]},
                  source={"type": ["string", "null"], "enum": ["env", "config", None],
                          "description": "env: set for this environment; config: the catalog's; null: unpriced"},
                  tiers={"type": "array", "items": _obj(
                      ["tier", "input", "output"], tier={"type": "string", "description": "prompt tokens, e.g. 0-16k"},
                      **{"from": INT}, to={"type": ["integer", "null"]}, input=STR, output=STR, cache=NULLABLE_STR)}),
    "PriceChange": _obj(["input", "output"], input=PRICE_TEXT, output=PRICE_TEXT, cache=PRICE_TEXT,
                        tier={"type": "string", "description": "FROM-TO prompt tokens, e.g. 16k-128k; absent: uniform"},
                        currency={"type": "string", "description": "e.g. CNY (default: the model's, or CNY)"}),
    "Budget": _obj(
        ["id", "env", "key_id", "kind", "period", "limit", "currency", "spent", "reserved", "resets_at"], id=STR,
        env=STR, key_id={"type": ["string", "null"], "description": "null: the whole environment"},
        kind={"enum": ["money", "tokens"]}, period={"enum": ["day", "month", "total"]},
        limit=BUDGET_AMOUNT, currency={"type": ["string", "null"], "description": "null for a token budget"},
        spent={**BUDGET_AMOUNT, "description": "spent in the current period (settled requests)"},
        reserved={**BUDGET_AMOUNT, "description": "held by requests running now (their worst case)"},
        resets_at={"type": ["string", "null"], "description": "ISO 8601 UTC start of the next period; null: total"}),
    "BudgetChange": _obj(
        ["period"], key_id={"type": ["string", "null"], "description": "an API key's id; null: the whole environment"},
        period={"enum": ["day", "month", "total"]},
        amount={"type": ["string", "number"], "description": "money, e.g. \"12.50\" (at most 6 decimals)"},
        currency={"type": "string", "description": "with amount; default CNY"},
        tokens={"type": "integer", "minimum": 1, "description": "a token budget instead of money"},
        description="one of amount and tokens; one budget per (env, key_id, period): PUT again replaces it"),
    "Limits": _obj(**{name: {"type": ["integer", "null"], "minimum": 1, "description": text} for name, text in (
        ("concurrency", "requests in flight at once"), ("rpm", "requests per minute"), ("tpm", "tokens per minute"),
        ("token_quota", "tokens the environment may use in all"))},
        description="null means no limit; 0 is refused (it would refuse every request)"),
    "UsagePoint": _obj(["day", "model"], day=STR, model=STR, **COUNTS),
    "RequestRecord": _obj(
        ["request_id", "model", "status"], request_id=STR, env_id=STR, key_id=NULLABLE_STR, group_name=STR,
        model=STR, deployment=STR, stream=BOOL, prompt_tokens=INT, completion_tokens=INT, estimated=BOOL,
        status=INT, code=NULLABLE_STR, latency_ms=NUM, ttft_ms=NULLABLE_NUM, disconnected=BOOL, created_at=NUM,
        surface={"enum": ["chat", "messages", "responses", "images", "mcp", "agent"]}, cache_creation_tokens=INT,
        outcome={"type": ["string", "null"], "description": "how an MCP tool call ended (surface mcp only)"},
        agent_id={"type": ["string", "null"], "description": "the agent a run was for (surface agent), or whose "
                  "run called the tool (surface mcp)"},
        cache_read_tokens=INT, images=INT, cost_micros=INT,
        currency={"type": "string", "description": "empty: the model had no price"}, content={"type": ["string", "null"],
                 "description": "JSON {messages, answer}; null unless the operator turned content logging on"}),
    "OperatorToken": _obj(["id", "prefix"], id=STR, prefix=STR, name=STR, created_at=NUM, revoked_at=NULLABLE_NUM),
    "OperatorTokenCreated": {"allOf": [_ref("OperatorToken"),
                                       _obj(["token"], token={"type": "string", "description": "shown only once"})]},
}

ERRORS = {
    "400": "bad input (INVALID_PARAM, AI_MODEL_NOT_SUPPORTED)",
    "401": "no credentials (MISSING_CREDENTIALS), unknown, revoked or expired token (INVALID_ACCESS_TOKEN, "
           "ACCESS_TOKEN_EXPIRED)",
    "403": "PERMISSION_DENIED: another environment, an operator setting, or a publishable key; INVALID_ENV",
}


def _param(name: str, where: str = "path", schema: dict = STR, description: str = "") -> dict:
    return {"name": name, "in": where, "required": where == "path", "schema": schema, "description": description}


ENV = _param("env", description="environment id")
SINCE = [_param("since", "query", NUM, "epoch seconds"), _param("days", "query", NUM, "the last N days"),
         _param("until", "query", NUM, "epoch seconds, exclusive (default: now)"),
         _param("key", "query", STR, "only this API key's requests (its id)")]


def _op(summary: str, reply: dict | None, status: str = "200", params: list | None = None,
        body: dict | None = None, auth: bool = True) -> dict:
    op = {"summary": summary, "responses": {status: {"description": "OK"}}}
    if reply is not None:
        op["responses"][status]["content"] = {"application/json": {"schema": reply}}
    if auth:
        for code, text in ERRORS.items():
            op["responses"][code] = {"description": text,
                                     "content": {"application/json": {"schema": _ref("Error")}}}
    else:
        op["security"] = []
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


PATHS = {
    "/admin/v1/openapi.json": {"get": _op("This document", {"type": "object"}, auth=False)},
    "/admin/v1/me": {"get": _op("Who the token is and which environments it sees", _ref("Me"))},
    "/admin/v1/envs": {
        "get": _op("Environments (an operator sees all, a server key its own)", _list_of("Env")),
        "post": _op("Create an environment (operator only)", _ref("Env"), "201",
                    body=_obj(id={"type": "string", "description": "optional; generated when absent"})),
    },
    "/admin/v1/envs/{env}": {"get": _op("One environment with its allowed origins", _ref("Env"), params=[ENV])},
    "/admin/v1/envs/{env}/origins": {
        "put": _op("Replace the browser origins that may use this environment's publishable keys", _ref("Env"),
                   params=[ENV], body=_obj(["origins"], origins={"type": "array", "items": STR}))},
    "/admin/v1/envs/{env}/keys": {
        "get": _op("API keys: prefix, name, kind, created, last used, expiry", _list_of("Key"), params=[ENV]),
        "post": _op("Create an API key; the plain key is in this reply only", _ref("KeyCreated"), "201",
                    params=[ENV], body=_obj(kind={"enum": ["server", "publishable"]}, name=STR,
                                            expires_days={"type": ["number", "null"]}, mcp=_ref("McpGrants"))),
    },
    "/admin/v1/envs/{env}/keys/{key_id}": {
        "delete": _op("Revoke a key", _obj(id=STR, revoked=BOOL), params=[ENV, _param("key_id")])},
    "/admin/v1/envs/{env}/keys/{key_id}/permissions": {
        "get": _op("A key's permissions", _ref("KeyPermissions"), params=[ENV, _param("key_id")]),
        "put": _op("Replace the parts of a key's permissions given, each whole (a grant left out of a list is "
                   "revoked; parts not sent stay). Not by a key that has permissions of its own.",
                   _ref("KeyPermissions"), params=[ENV, _param("key_id")],
                   body=_obj(mcp=_ref("McpGrants"), **KEY_MODELS))},
    "/admin/v1/envs/{env}/mcp": {
        "get": _op("MCP services (reached at /v1/cloudrun/{service}/messages)", _list_of("McpService"),
                   params=[ENV]),
        "post": _op("Register an MCP server", _ref("McpService"), "201", params=[ENV], body=_ref("NewMcpService")),
    },
    "/admin/v1/envs/{env}/mcp/{service}": {
        "get": _op("One MCP service", _ref("McpService"), params=[ENV, _param("service")]),
        "put": _op("Change an MCP service; fields left out stay (headers: replaced whole, null removes them)",
                   _ref("McpService"), params=[ENV, _param("service")],
                   body=_obj(url=STR, transport={"enum": ["streamable-http", "sse"]},
                             headers={"type": ["object", "null"], "writeOnly": True, "additionalProperties": STR},
                             timeout={"type": ["number", "null"], "exclusiveMinimum": 0}, enabled=BOOL)),
        "delete": _op("Delete an MCP service", _obj(name=STR, deleted=BOOL), params=[ENV, _param("service")]),
    },
    "/admin/v1/envs/{env}/groups": {
        "get": _op("Model groups with their models and switches", _list_of("ModelGroup"), params=[ENV]),
        "post": _op("Add a custom group (OpenAI or Anthropic protocol); its URL is checked under the egress policy",
                    _ref("ModelGroup"), "201", params=[ENV], body=_ref("NewGroup")),
    },
    "/admin/v1/envs/{env}/groups/{group}": {
        "put": _op("Change a group: switch it, set its key or timeouts; a custom group's URL, models (models "
                   "kept keep their switch) and what its upstream reads (vision, audio_input) too. Send at "
                   "least one field.", _ref("ModelGroup"),
                   params=[ENV, _param("group")],
                   body=_obj(enabled=BOOL, api_key={"type": "string", "writeOnly": True}, base_url=STR,
                             models={"type": "array", "items": STR},
                             timeouts={"type": ["object", "null"], "description": "null: back to the defaults",
                                       "additionalProperties": {"type": "number", "exclusiveMinimum": 0}},
                             **INPUTS)),
        "delete": _op("Delete a custom group", _obj(name=STR, deleted=BOOL), params=[ENV, _param("group")]),
    },
    "/admin/v1/envs/{env}/groups/{group}/test": {
        "post": _op("Test a saved group: ask its upstream, under the egress policy, with its saved key",
                    _obj(["ok"], ok=BOOL, latency_ms=NUM, code=STR, message=STR), params=[ENV, _param("group")])},
    "/admin/v1/envs/{env}/groups/{group}/models/{model}": {
        "put": _op("Switch a model on or off", _obj(group=STR, name=STR, enabled=BOOL),
                   params=[ENV, _param("group"), _param("model")], body=_obj(["enabled"], enabled=BOOL))},
    "/admin/v1/envs/{env}/agents": {
        "get": _op("The environment's agents", _list_of("Agent"), params=[ENV]),
        "post": _op("Add an agent: `model` (and `group`) to run it on the model service, or `url` to front "
                    "an AG-UI server", _ref("Agent"), "201", params=[ENV], body=_ref("AgentFields")),
    },
    "/admin/v1/envs/{env}/agents/{agent}": {
        "get": _op("One agent", _ref("Agent"), params=[ENV, _param("agent")]),
        "put": _op("Change an agent; fields left out stay as they are", _ref("Agent"),
                   params=[ENV, _param("agent")], body=_ref("AgentFields")),
        "delete": _op("Delete an agent with its conversations and records", _obj(id=STR, deleted=BOOL),
                      params=[ENV, _param("agent")]),
    },
    "/admin/v1/envs/{env}/limits": {
        "get": _op("The admission limits in force for the environment's server keys", _ref("Limits"), params=[ENV]),
        "put": _op("Change some limits (operator only); fields left out stay as they are", _ref("Limits"),
                   params=[ENV], body=_ref("Limits")),
    },
    "/admin/v1/envs/{env}/prices": {
        "get": _op("Every model the environment can call, with its price (or Unpriced)", _list_of("Price"),
                   params=[ENV, _param("group", "query", STR, "only this group's models")])},
    "/admin/v1/envs/{env}/prices/{group}/{model}": {
        "put": _op("Set a model's price, or one tier of it (operator only)", _ref("Price"),
                   params=[ENV, _param("group"), _param("model")], body=_ref("PriceChange")),
        "delete": _op("Delete the environment's price of a model, or one tier (operator only); the config's "
                      "price applies again", _ref("Price"),
                      params=[ENV, _param("group"), _param("model"), _param("tier", "query", STR, "e.g. 16k-128k")]),
    },
    "/admin/v1/envs/{env}/budgets": {
        "get": _op("The environment's budgets (its own and its keys'), with the current period's spend",
                   _list_of("Budget"), params=[ENV]),
        "put": _op("Set a budget (operator only): money or tokens per day, month (UTC) or in total, for the "
                   "environment or one key; replaces the budget of the same key and period", _ref("Budget"),
                   params=[ENV], body=_ref("BudgetChange"))},
    "/admin/v1/envs/{env}/budgets/{budget_id}": {
        "delete": _op("Delete a budget (operator only)", _ref("Budget"), params=[ENV, _param("budget_id")])},
    "/admin/v1/envs/{env}/usage": {
        "get": _op("Usage totals and cost, of one key or the whole environment, optionally one row per model, key, group, day or surface (or MCP "
                   "tool calls by service, tool and outcome; or agent runs by agent)", _ref("Usage"),
                   params=[ENV, *SINCE, _param("by", "query", {"enum": ["model", "key", "group", "day", "surface",
                                                                        "mcp", "agent"]})])},
    "/admin/v1/envs/{env}/usage/series": {
        "get": _op("Requests, errors and tokens per day and model (charts)", _list_of("UsagePoint"),
                   params=[ENV, *SINCE])},
    "/admin/v1/envs/{env}/requests": {
        "get": _op("The newest requests from the ledger (message contents only with content logging on)",
                   _list_of("RequestRecord"),
                   params=[ENV, _param("limit", "query", INT, "at most 1000; default 50")])},
    "/admin/v1/operator/tokens": {
        "get": _op("Operator tokens (operator only)", _list_of("OperatorToken")),
        "post": _op("Create an operator token; the plain token is in this reply only",
                    _ref("OperatorTokenCreated"), "201", body=_obj(name=STR)),
    },
    "/admin/v1/operator/tokens/{token_id}": {
        "delete": _op("Revoke an operator token", _obj(id=STR, revoked=BOOL), params=[_param("token_id")])},
}


def openapi_document() -> dict:
    return {
        "openapi": "3.1.0",
        "info": {"title": "cbgate admin API", "version": "1",
                 "description": "Manage environments, API keys, model groups, agents, limits and usage. Send "
                                "`Authorization: Bearer <operator token or server API key>`; errors are "
                                "CloudBase bodies `{code, message, requestId}`."},
        "servers": [{"url": "/"}],
        "security": [{"bearer": []}],
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
                       "schemas": deepcopy(SCHEMAS)},
        "paths": deepcopy(PATHS),
    }
