"""Table definitions shared by SQLite and PostgreSQL."""
from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

meta = Table(
    "meta", metadata,
    Column("name", String(64), primary_key=True),
    Column("value", BigInteger, nullable=False),
)

migrations = Table(
    "schema_migrations", metadata,
    Column("name", String(128), primary_key=True),
    Column("applied_at", Float, nullable=False),
)

envs = Table(
    "envs", metadata,
    Column("id", String(64), primary_key=True),
    Column("created_at", Float, nullable=False),
)

api_keys = Table(
    "api_keys", metadata,
    Column("id", String(32), primary_key=True),
    Column("env_id", String(64), nullable=False, index=True),
    Column("digest", String(64), nullable=False, unique=True),
    Column("prefix", String(32), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("name", String(128), nullable=False, default=""),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float),
    Column("revoked_at", Float),
    Column("last_used_at", Float),
    Column("permissions", Text),  # JSON cbgate.core.permissions.KeyPermissions; NULL: the kind's defaults
)

model_switches = Table(
    "model_switches", metadata,
    Column("env_id", String(64), nullable=False),
    Column("group_name", String(64), nullable=False),
    Column("model", String(128), nullable=False),
    Column("enabled", Boolean, nullable=False),
    PrimaryKeyConstraint("env_id", "group_name", "model"),
)

# One row per chat request (the usage ledger). `request_id` is unique so a replayed spool cannot count
# a request twice; `day` (UTC, YYYY-MM-DD) lets SQLite and PostgreSQL group by day the same way.
usage_ledger = Table(
    "usage_ledger", metadata,
    Column("request_id", String(64), primary_key=True),
    Column("env_id", String(64), nullable=False),
    Column("key_id", String(32)),
    Column("group_name", String(64), nullable=False),
    Column("model", String(128), nullable=False),
    Column("deployment", String(256), nullable=False, default=""),
    Column("stream", Boolean, nullable=False, default=False),
    Column("prompt_tokens", BigInteger, nullable=False, default=0),
    Column("completion_tokens", BigInteger, nullable=False, default=0),
    Column("estimated", Boolean, nullable=False, default=False),
    Column("status", Integer, nullable=False),
    Column("code", String(64)),
    Column("latency_ms", Float, nullable=False),
    Column("ttft_ms", Float),
    Column("disconnected", Boolean, nullable=False, default=False),
    Column("created_at", Float, nullable=False),
    Column("day", String(10), nullable=False),
    Column("content", Text),  # JSON {messages, answer}, only when the operator turns content logging on
    # the API surface the request came in on (chat, messages, responses, images), and what is metered
    # beside tokens: the prompt tokens an upstream cache wrote and read (Anthropic), images generated
    Column("surface", String(16), nullable=False, default="chat", server_default="chat"),
    Column("cache_creation_tokens", BigInteger, nullable=False, default=0, server_default="0"),
    Column("cache_read_tokens", BigInteger, nullable=False, default=0, server_default="0"),
    Column("images", Integer, nullable=False, default=0, server_default="0"),
    # an MCP tool call (surface "mcp"): the service is in group_name, the tool in model; and how it ended
    Column("outcome", String(16)),
    Column("agent_id", String(64)),  # the agent a run was for (surface "agent"); NULL elsewhere
    # what the request cost, in micro-units of `currency`, under the price in force when it started;
    # currency "" means its model had no price (the cost is 0 and it is shown as unpriced)
    Column("cost_micros", BigInteger, nullable=False, default=0, server_default="0"),
    Column("currency", String(8), nullable=False, default="", server_default=""),
    Index("ix_usage_ledger_env_created", "env_id", "created_at"),
    Index("ix_usage_ledger_created", "created_at"),
    Index("ix_usage_ledger_key", "key_id", "created_at"),  # a key's quota reconciles from its rows
)

# The admin plane: operator tokens (see every environment; SHA-256 digest only) and the browser origins
# each environment lets its publishable keys be used from (CORS).
operator_tokens = Table(
    "operator_tokens", metadata,
    Column("id", String(32), primary_key=True),
    Column("digest", String(64), nullable=False, unique=True),
    Column("prefix", String(32), nullable=False),
    Column("name", String(128), nullable=False, default=""),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float),
)

env_origins = Table(
    "env_origins", metadata,
    Column("env_id", String(64), nullable=False),
    Column("origin", String(255), nullable=False),
    PrimaryKeyConstraint("env_id", "origin"),
)

# Admission limits per environment: NULL = the default, -1 = no limit (see cbgate.limits.base).
env_limits = Table(
    "env_limits", metadata,
    Column("env_id", String(64), primary_key=True),
    Column("concurrency", BigInteger),
    Column("rpm", BigInteger),
    Column("tpm", BigInteger),
    Column("token_quota", BigInteger),
)

# Model groups an environment configures: its custom groups (URL, protocol, secret) and the rows that give a
# built-in vendor group (kind "vendor", URL from cbgate.core.vendors) the env's own key. The secret is
# encrypted with the operator key (cbgate.core.secrets); a custom group's models are its model_switches rows.
model_groups = Table(
    "model_groups", metadata,
    Column("env_id", String(64), nullable=False),
    Column("name", String(64), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("base_url", String(1024), nullable=False, default=""),
    Column("protocol", String(16), nullable=False, default="openai"),
    Column("secret", String(4096)),
    Column("enabled", Boolean, nullable=False, default=True),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("timeouts", String(512)),  # JSON {connect, first_byte, idle, total}; NULL: the defaults
    # what the group's upstream reads besides text (providers/base.py Inputs); NULL: not declared, sent as is
    Column("vision", Boolean),
    Column("audio_input", Boolean),
    PrimaryKeyConstraint("env_id", "name"),
)

# Stored Responses (the Responses API's `store`), scoped by environment: a key of another environment
# never sees one. `context` is the conversation a later turn continues from (canonical chat messages,
# the instructions excluded), `input_items` what this request sent, `body` the Response object.
stored_responses = Table(
    "stored_responses", metadata,
    Column("id", String(64), primary_key=True),
    Column("env_id", String(64), nullable=False),
    Column("model", String(128), nullable=False),
    Column("previous_response_id", String(64)),
    Column("created_at", Float, nullable=False),
    Column("expires_at", Float, nullable=False),
    Column("body", Text, nullable=False),
    Column("input_items", Text, nullable=False),
    Column("context", Text, nullable=False),
    Index("ix_stored_responses_env", "env_id", "id"),
    Index("ix_stored_responses_expires", "expires_at"),
)

# MCP services an environment fronts (cbgate.store.mcp): an upstream MCP server's URL, its transport and its
# own headers (encrypted with the operator key, like group secrets; never shown).
mcp_services = Table(
    "mcp_services", metadata,
    Column("env_id", String(64), nullable=False),
    Column("name", String(64), nullable=False),
    Column("url", String(2048), nullable=False),
    Column("transport", String(16), nullable=False),
    Column("headers", Text),
    Column("timeout", Float),
    Column("enabled", Boolean, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    PrimaryKeyConstraint("env_id", "name"),
)

# Agents (the Agent API, /v1/aibot): `kind` "model" is run by the gateway on its model service (model,
# group, instructions, the MCP services whose tools it calls); "url" fronts an AG-UI server at `url`.
# `questions` and `mcp_services` are JSON lists of strings. The id is unique across environments, yet every
# query names the environment too: another env's agent is a 404.
agents = Table(
    "agents", metadata,
    Column("id", String(64), primary_key=True),
    Column("env_id", String(64), nullable=False),
    Column("name", String(128), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("model", String(128)),
    Column("group_name", String(64)),
    Column("instructions", Text),
    Column("welcome", Text),
    Column("introduction", Text),
    Column("questions", Text),
    Column("url", String(2048)),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    Column("mcp_services", Text),  # a JSON list of the env's MCP services whose tools its runs may call
    Index("ix_agents_env", "env_id", "created_at"),
)

# A conversation (an AG-UI thread, or a legacy conversationId) and its records: the messages of each
# run, in order, so that a later turn sees the earlier ones and `GET .../records` lists them.
agent_conversations = Table(
    "agent_conversations", metadata,
    Column("id", String(128), nullable=False),
    Column("env_id", String(64), nullable=False),
    Column("agent_id", String(64), nullable=False),
    Column("title", String(256), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    PrimaryKeyConstraint("env_id", "agent_id", "id"),
    Index("ix_agent_conversations_agent", "env_id", "agent_id", "updated_at"),
)

agent_records = Table(
    "agent_records", metadata,
    Column("id", String(64), primary_key=True),
    Column("env_id", String(64), nullable=False),
    Column("agent_id", String(64), nullable=False),
    Column("conversation_id", String(128), nullable=False),
    Column("role", String(16), nullable=False),
    Column("content", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("seq", Integer, nullable=False),
    Index("ix_agent_records_thread", "env_id", "agent_id", "conversation_id", "created_at"),
)

# Prices an environment sets for a model of one of its groups (README, "Costs and budgets"); the `cloudbase`
# catalog's prices come from the config file, and a row here for it overrides them for that environment.
# `tiers` is JSON: [[from, to|null, input, output, cache|null], ...] in micro-units per 1,000 tokens.
model_prices = Table(
    "model_prices", metadata,
    Column("env_id", String(64), nullable=False),
    Column("group_name", String(64), nullable=False),
    Column("model", String(128), nullable=False),
    Column("currency", String(8), nullable=False),
    Column("tiers", Text, nullable=False),
    Column("updated_at", Float, nullable=False),
    PrimaryKeyConstraint("env_id", "group_name", "model"),
)

# Budgets (issue 21): what an environment, or one key of it (key_id; "" for the whole environment), may spend
# per day, per month (UTC) or in total: money in micro-units of `currency` (kind "money") or tokens (kind
# "tokens", currency ""). One budget per (env, key, period).
budgets = Table(
    "budgets", metadata,
    Column("id", String(32), primary_key=True),
    Column("env_id", String(64), nullable=False),
    Column("key_id", String(32), nullable=False),
    Column("period", String(8), nullable=False),
    Column("kind", String(8), nullable=False),
    Column("limit_amount", BigInteger, nullable=False),
    Column("currency", String(8), nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    UniqueConstraint("env_id", "key_id", "period", name="uq_budgets_scope"),
)
