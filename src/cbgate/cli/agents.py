"""`cbgate agent`: the agents of an environment, ones the gateway runs on a model and AG-UI servers it
fronts. `create` prints the new agent's id on its last line, for scripts."""
from __future__ import annotations

from cbgate.cli.commands import add_command, add_group
from cbgate.cli.common import open_admin
from cbgate.cli.output import add_json_flag, print_json, print_object, print_rows
from cbgate.cli.tenants import ENV_HELP
from cbgate.core.agent_admin import AgentSpec, agent_view

LIST_HEADERS = ("id", "name", "kind", "runs_on", "created_at")
AGENT_HELP = "the agent's id (agent-...) or name"


def _runs_on(view: dict) -> str:
    if view["kind"] == "url":
        return view["url"]
    tools = f" + MCP {','.join(view['mcp_services'])}" if view["mcp_services"] else ""
    return f"{view['group']}/{view['model']}{tools}"


def _spec(args) -> AgentSpec:
    return AgentSpec(name=getattr(args, "name", None), model=args.model,
                     group=args.group, instructions=args.instructions, welcome=args.welcome,
                     introduction=args.introduction, questions=args.question, url=args.url,
                     mcp_services=[] if getattr(args, "no_mcp_services", False) else args.mcp_service)


def cmd_agent(args) -> None:
    agents = open_admin(args).agents
    if args.action == "create":
        agent = agents.create(args.env, _spec(args))
        if args.json:
            return print_json(agent_view(agent))
        what = f"fronts {agent.url}" if agent.url else f"runs on {agent.group_name}/{agent.model}"
        print(f"created agent {agent.name} in {args.env} ({what})")
        print(agent.id)  # the last line: scripts take the id from here
    elif args.action == "list":
        rows, _ = agents.list(args.env)
        views = [agent_view(a) for a in rows]
        print_rows(args, LIST_HEADERS, views, plain={"runs_on": _runs_on})
    elif args.action == "show":
        print_object(args, agent_view(agents.get(args.env, args.agent, by_name=True)))
    elif args.action == "update":
        spec = _spec(args)
        spec.name = args.rename
        agent = agents.update(args.env, args.agent, spec, by_name=True)
        if args.json:
            return print_json(agent_view(agent))
        print(f"updated agent {agent.name} ({agent.id}) in {args.env}")
    else:
        agent = agents.delete(args.env, args.agent, by_name=True)
        if args.json:
            return print_json({"id": agent.id, "deleted": True})
        print(f"deleted agent {agent.name} ({agent.id}) from {args.env}")


def _fields(parser, creating: bool) -> None:
    parser.add_argument("--model", help="the model it runs on, e.g. smollm2-135m-instruct")
    parser.add_argument("--group", help="the model's group (default: cloudbase)")
    parser.add_argument("--url", help="instead of a model: the URL of an AG-UI agent server it fronts")
    parser.add_argument("--instructions", metavar="TEXT", help="the system prompt of every run")
    parser.add_argument("--welcome", metavar="TEXT", help="the welcome message clients show")
    parser.add_argument("--introduction", metavar="TEXT", help="a line on what the agent does")
    parser.add_argument("--question", action="append", metavar="TEXT",
                        help="a recommended question (repeat for several)" + ("" if creating else "; replaces them"))
    parser.add_argument("--mcp-service", action="append", metavar="NAME",
                        help="an MCP service of the environment whose tools its runs may call server-side, within "
                             "the calling key's MCP permissions (repeat for several)"
                             + ("" if creating else "; replaces them"))
    if not creating:
        parser.add_argument("--no-mcp-services", action="store_true", help="its runs call no MCP tools")
    add_json_flag(parser)


def register(sub, common) -> None:
    agent = add_group(sub, "agent", "agents: run on a model by the gateway, or fronted AG-UI servers")
    create = add_command(agent, "create", "add an agent; prints its id on the last line",
                         ["cbgate agent create --env team-a helper --model smollm2-135m-instruct "
                          "--instructions 'Be brief.'",
                          "cbgate agent create --env team-a calc --model smollm2-135m-instruct --mcp-service tools",
                          "cbgate agent create --env team-a support --url https://agents.example.com/support"],
                         [common])
    create.add_argument("--env", required=True, help=ENV_HELP)
    create.add_argument("name", help="a display name, unique in the environment, e.g. helper")
    _fields(create, creating=True)
    listing = add_command(agent, "list", "list the environment's agents", "cbgate agent list --env team-a --json",
                          [common])
    listing.add_argument("--env", required=True, help=ENV_HELP)
    add_json_flag(listing)
    show = add_command(agent, "show", "one agent's settings", "cbgate agent show --env team-a helper", [common])
    show.add_argument("--env", required=True, help=ENV_HELP)
    show.add_argument("agent", help=AGENT_HELP)
    add_json_flag(show)
    update = add_command(agent, "update", "change an agent (what is not given stays as it is)",
                         ["cbgate agent update --env team-a helper --welcome 'Hi! Ask me anything.'",
                          "cbgate agent update --env team-a helper --rename assistant"], [common])
    update.add_argument("--env", required=True, help=ENV_HELP)
    update.add_argument("agent", help=AGENT_HELP)
    update.add_argument("--rename", metavar="NAME", help="a new display name")
    _fields(update, creating=False)
    delete = add_command(agent, "delete", "delete an agent with its conversations and records",
                         "cbgate agent delete --env team-a helper", [common])
    delete.add_argument("--env", required=True, help=ENV_HELP)
    delete.add_argument("agent", help=AGENT_HELP)
    add_json_flag(delete)
    for p in agent.choices.values():
        p.set_defaults(func=cmd_agent)
