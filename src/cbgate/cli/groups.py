"""`cbgate group`: model groups per environment (built-in vendor groups' keys, custom groups).

Secrets go in and are never printed back: `group list` shows only whether a key is set.
"""
from __future__ import annotations

from cbgate.cli.common import open_admin
from cbgate.errors import InvalidParam

TIMEOUTS_HELP = "seconds, e.g. connect=5,first_byte=30,idle=30,total=60 (any subset; `default` resets)"


def parse_timeouts(spec: str | None) -> dict[str, float] | None:
    """`connect=5,first_byte=30,idle=30,total=60` (seconds; any subset) -> a dict; `default` -> None."""
    if not spec or spec == "default":
        return None
    timeouts = {}
    for part in spec.split(","):
        name, _, value = part.partition("=")
        try:
            timeouts[name.strip()] = float(value)
        except ValueError:
            raise InvalidParam(f"timeouts: {part!r} is not name=seconds (e.g. connect=5,total=60)") from None
    return timeouts


def cmd_group(args) -> None:
    admin = open_admin(args)
    if args.action == "create":
        view = admin.create_group(args.env, args.name, args.base_url, args.models.split(","),
                                  api_key=args.api_key, protocol=args.protocol, check=not args.no_check,
                                  timeouts=parse_timeouts(args.timeouts))
        checked = "not checked (--no-check)" if args.no_check else "checked: the base URL answered"
        print(f"created group {view.name} in {args.env} ({view.protocol}, {len(view.models)} models; {checked})")
    elif args.action == "list":
        print("name\tkind\tprotocol\tbase_url\tstatus\tkey\tmodels")
        for g in admin.list_groups(args.env):
            print(f"{g.name}\t{g.kind}\t{g.protocol}\t{g.base_url}\t{'enabled' if g.enabled else 'disabled'}\t"
                  f"{'set' if g.has_key else 'not set'}\t{','.join(g.models)}")
    elif args.action == "set-key":
        admin.set_group_key(args.env, args.name, args.key)
        print(f"key set for group {args.name} in {args.env}")
    elif args.action == "set-timeouts":
        admin.set_group_timeouts(args.env, args.name, parse_timeouts(args.timeouts))
        print(f"timeouts set for group {args.name} in {args.env}")
    elif args.action in ("enable", "disable"):
        admin.set_group_enabled(args.env, args.name, args.action == "enable")
        print(f"group {args.name} in {args.env}: {args.action}d")
    else:
        admin.delete_group(args.env, args.name)
        print(f"deleted group {args.name} from {args.env}")


def register(sub, common) -> None:
    group = sub.add_parser("group", help="model groups").add_subparsers(dest="action", required=True)
    create = group.add_parser("create", parents=[common], help="add a custom group (OpenAI or Anthropic protocol)")
    create.add_argument("--env", required=True)
    create.add_argument("name")
    create.add_argument("--base-url", required=True, help="e.g. http://10.0.0.5:8000/v1")
    create.add_argument("--api-key", help="the upstream's secret (stored encrypted, never shown again)")
    create.add_argument("--protocol", choices=("openai", "anthropic"), default="openai")
    create.add_argument("--models", required=True, help="comma-separated model names, e.g. qwen3-8b,llama3")
    create.add_argument("--no-check", action="store_true", help="skip checking that the base URL answers")
    create.add_argument("--timeouts", help=TIMEOUTS_HELP)
    group.add_parser("list", parents=[common]).add_argument("--env", required=True)
    set_key = group.add_parser("set-key", parents=[common], help="set a group's key (e.g. hunyuan, deepseek)")
    set_key.add_argument("--env", required=True)
    set_key.add_argument("name")
    set_key.add_argument("key")
    set_timeouts = group.add_parser("set-timeouts", parents=[common], help="timeouts for calls to a group")
    set_timeouts.add_argument("--env", required=True)
    set_timeouts.add_argument("name")
    set_timeouts.add_argument("timeouts", help=TIMEOUTS_HELP)
    for action in ("enable", "disable", "delete"):
        p = group.add_parser(action, parents=[common])
        p.add_argument("--env", required=True)
        p.add_argument("name")
    for p in group.choices.values():
        p.set_defaults(func=cmd_group)
