"""`cbgate mcp`: the MCP services an environment fronts at /v1/cloudrun/{service}/messages.

A service's own headers (its credentials) go in with --header and are never printed back: listings show
only whether it has some. `create` prints the service name last, for scripts.
"""
from __future__ import annotations

from cbgate.cli.commands import add_command, add_group
from cbgate.cli.common import iso, open_admin
from cbgate.cli.output import add_json_flag, print_object, print_rows
from cbgate.cli.tenants import ENV_HELP
from cbgate.core.mcp_admin import TRANSPORTS, parse_header_lines

HEADERS = ("name", "url", "transport", "timeout", "enabled", "has_headers", "created")


def _shown(view) -> dict:
    return {**view.as_dict(), "created": iso(view.created_at), "updated": iso(view.updated_at)}


def _timeout(value: str | None) -> float | None:
    return None if value in (None, "default") else float(value)


def cmd_mcp(args) -> None:
    admin = open_admin(args)
    if args.action == "create":
        view = admin.mcp.create(args.env, args.name, args.url, args.transport,
                                parse_header_lines(args.header or []), _timeout(args.timeout))
        print(f"created MCP service {view.name} in {args.env}: clients use "
              f"/v1/cloudrun/{view.name}/messages with an API key of {args.env}")
        print(view.name)
    elif args.action == "list":
        print_rows(args, HEADERS, [_shown(v) for v in admin.mcp.list(args.env)])
    elif args.action == "show":
        print_object(args, _shown(admin.mcp.show(args.env, args.name)))
    elif args.action == "update":
        enabled = {"on": True, "off": False}.get(args.enabled) if args.enabled else None
        headers = parse_header_lines(args.header) if args.header else ({} if args.clear_headers else None)
        view = admin.mcp.update(args.env, args.name, url=args.url, transport=args.transport, headers=headers,
                                timeout=_timeout(args.timeout), reset_timeout=args.timeout == "default",
                                enabled=enabled)
        print_object(args, _shown(view))
    else:
        admin.mcp.delete(args.env, args.name)
        print(f"deleted MCP service {args.name} from {args.env}")


def register(sub, common) -> None:
    mcp = add_group(sub, "mcp", "MCP services: upstream MCP servers clients reach at /v1/cloudrun/{service}/messages")
    create = add_command(mcp, "create", "register an MCP server; prints the service name last",
                         ["cbgate mcp create --env team-a search --url https://search.example.com/mcp",
                          "cbgate mcp create --env team-a legacy --url https://old.example.com/sse --transport sse "
                          "--header 'Authorization: Bearer s3cret'"], [common])
    _service_args(create)
    create.add_argument("--url", required=True, help="its Streamable HTTP endpoint (or its SSE endpoint with "
                                                     "--transport sse), e.g. https://search.example.com/mcp")
    create.add_argument("--transport", choices=TRANSPORTS, default="streamable-http",
                        help="how the gateway talks to it (default: streamable-http)")
    _common_options(create)
    listing = add_command(mcp, "list", "list an environment's MCP services", "cbgate mcp list --env team-a --json",
                          [common])
    listing.add_argument("--env", required=True, help=ENV_HELP)
    add_json_flag(listing)
    show = add_command(mcp, "show", "show one MCP service (never its headers)",
                       "cbgate mcp show --env team-a search --json", [common])
    _service_args(show)
    add_json_flag(show)
    update = add_command(mcp, "update", "change an MCP service; what is not given stays",
                         ["cbgate mcp update --env team-a search --timeout 30",
                          "cbgate mcp update --env team-a search --enabled off"], [common])
    _service_args(update)
    update.add_argument("--url", help="a new endpoint URL")
    update.add_argument("--transport", choices=TRANSPORTS, help="a new transport")
    update.add_argument("--enabled", choices=("on", "off"), help="switch the service on or off")
    update.add_argument("--clear-headers", action="store_true", help="remove the service's headers")
    _common_options(update)
    add_json_flag(update)
    delete = add_command(mcp, "delete", "delete an MCP service", "cbgate mcp delete --env team-a search", [common])
    _service_args(delete)
    for p in mcp.choices.values():
        p.set_defaults(func=cmd_mcp)


def _service_args(parser) -> None:
    parser.add_argument("--env", required=True, help=ENV_HELP)
    parser.add_argument("name", help="the service name, e.g. search (lower-case letters, digits, '-')")


def _common_options(parser) -> None:
    parser.add_argument("--header", action="append", metavar="'NAME: VALUE'",
                        help="a header the gateway sends to this server (its credentials; repeatable; stored "
                             "encrypted, never shown). On update, replaces all of them")
    parser.add_argument("--timeout", metavar="SECONDS",
                        help="how long one call may take, e.g. 30 (`default` resets; default 60)")
