"""`cbgate group`: model groups per environment (built-in vendor groups' keys, custom groups).

Secrets go in (from a prompt, stdin or a file) and are never printed back: `group list` shows only whether
a key is set.
"""
from __future__ import annotations

import argparse

from cbgate.cli.commands import add_command, add_group
from cbgate.cli.common import open_admin
from cbgate.cli.output import add_json_flag, print_rows
from cbgate.cli.secret_input import FILE_HELP, read_secret
from cbgate.cli.tenants import ENV_HELP
from cbgate.errors import InvalidParam
from cbgate.store.groups import GroupKind

TIMEOUTS_HELP = "seconds, e.g. connect=5,first_byte=30,idle=30,total=60 (any subset; `default` resets)"
GROUP_HEADERS = ("name", "kind", "protocol", "base_url", "status", "key", "models", "reads")
INPUT_FLAGS = (("vision", "--vision", "images (image_url parts, Messages image blocks, Responses input_image)"),
               ("audio_input", "--audio-input", "audio (input_audio parts)"))


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


def group_rows(admin, env_id: str) -> list[dict]:
    """Every group the env has, `cloudbase` first; a built-in group without the env's key is marked, and
    its models are not shown as enabled, since none of them can be called yet."""
    rows = []
    for g in admin.groups.list_groups(env_id):
        keyless = g.kind == GroupKind.VENDOR and not g.has_key
        status = "needs key" if keyless else "enabled" if g.enabled else "disabled"
        key = "operator" if g.kind == GroupKind.CATALOG else "set" if g.has_key else "missing" if keyless else "not set"
        row = {"name": g.name, "kind": "custom" if g.kind == GroupKind.CUSTOM else "built-in",
               "protocol": g.protocol, "base_url": g.base_url, "status": status, "key": key,
               "models": [{"name": m, "enabled": on and not keyless} for m, on in g.switches]}
        if g.kind != GroupKind.CATALOG:  # the catalog's deployments declare theirs in the config file
            row.update({field: getattr(g.inputs, field) for field, _, _ in INPUT_FLAGS})
        rows.append(row)
    return rows


def _reads_cell(row: dict) -> str:
    """What a custom group declared its upstream reads besides text: e.g. `vision,no audio_input`."""
    if "vision" not in row:
        return "per deployment"  # the catalog: see the config file
    said = [field if row[field] else f"no {field}" for field, _, _ in INPUT_FLAGS if row[field] is not None]
    return ",".join(said) or "as sent"


def declared_inputs(args) -> dict[str, bool | None]:
    """The capabilities the flags declare (--vision, --no-vision...); --undeclared forgets both."""
    if getattr(args, "undeclared", False):
        return {field: None for field, _, _ in INPUT_FLAGS}
    return {field: getattr(args, field) for field, _, _ in INPUT_FLAGS if getattr(args, field) is not None}


def _models_cell(row: dict) -> str:
    return ",".join(m["name"] for m in row["models"]) or "-"


def cmd_group(args) -> None:
    admin = open_admin(args)
    if args.action == "create":
        api_key = read_secret("upstream API key", from_file=args.api_key_file, given=args.api_key,
                              required=args.ask_api_key)
        view = admin.groups.create_group(args.env, args.name, args.base_url, args.models.split(","),
                                  api_key=api_key, protocol=args.protocol, check=not args.no_check,
                                  timeouts=parse_timeouts(args.timeouts), inputs=declared_inputs(args))
        checked = "not checked (--no-check)" if args.no_check else "checked: the base URL answered"
        print(f"created group {view.name} in {args.env} ({view.protocol}, {len(view.models)} models; {checked})")
    elif args.action == "list":
        print_rows(args, GROUP_HEADERS, group_rows(admin, args.env),
                   plain={"models": _models_cell, "reads": _reads_cell})
    elif args.action == "set-key":
        key = read_secret(f"API key for group {args.name}", from_file=args.key_file, given=args.key)
        admin.groups.set_group_key(args.env, args.name, key)
        print(f"key set for group {args.name} in {args.env}")
    elif args.action == "set-timeouts":
        admin.groups.set_group_timeouts(args.env, args.name, parse_timeouts(args.timeouts))
        print(f"timeouts set for group {args.name} in {args.env}")
    elif args.action == "set-capabilities":
        inputs = declared_inputs(args)
        if not inputs:
            raise InvalidParam("say what the upstream reads: --vision or --no-vision, --audio-input or "
                               "--no-audio-input, or --undeclared")
        admin.groups.set_group_inputs(args.env, args.name, inputs)
        said = ", ".join(f"{k} {'not declared' if v is None else 'yes' if v else 'no'}" for k, v in inputs.items())
        print(f"capabilities set for group {args.name} in {args.env}: {said}")
    elif args.action in ("enable", "disable"):
        admin.groups.set_group_enabled(args.env, args.name, args.action == "enable")
        print(f"group {args.name} in {args.env}: {args.action}d")
    else:
        admin.groups.delete_group(args.env, args.name)
        print(f"deleted group {args.name} from {args.env}")


def register(sub, common) -> None:
    group = add_group(sub, "group", "model groups: cloudbase, the vendor groups and custom upstreams")
    _register_create(group, common)
    listing = add_command(group, "list", "list every group with its status, key and models",
                          "cbgate group list --env team-a --json", [common])
    listing.add_argument("--env", required=True, help=ENV_HELP)
    add_json_flag(listing)
    set_key = add_command(group, "set-key", "set a group's upstream key (asked for, or read from stdin or a file)",
                          ["cbgate group set-key --env team-a deepseek            # prompts for the key",
                           "printf %s \"$DEEPSEEK_KEY\" | cbgate group set-key --env team-a deepseek",
                           "cbgate group set-key --env team-a deepseek --key-file ~/.deepseek-key"], [common])
    set_key.add_argument("--env", required=True, help=ENV_HELP)
    set_key.add_argument("name", help="the group, e.g. deepseek or hunyuan")
    set_key.add_argument("key", nargs="?", help="(discouraged: lands in shell history) the key itself")
    set_key.add_argument("--key-file", metavar="FILE", help=FILE_HELP)
    set_timeouts = add_command(group, "set-timeouts", "timeouts for calls to a group",
                               "cbgate group set-timeouts --env team-a vllm connect=5,total=90", [common])
    set_timeouts.add_argument("--env", required=True, help=ENV_HELP)
    set_timeouts.add_argument("name", help="the group, e.g. vllm")
    set_timeouts.add_argument("timeouts", help=TIMEOUTS_HELP)
    _register_set_capabilities(group, common)
    for action, summary in (("enable", "switch a group on"), ("disable", "switch a group off"),
                            ("delete", "delete a custom group")):
        p = add_command(group, action, summary, f"cbgate group {action} --env team-a vllm", [common])
        p.add_argument("--env", required=True, help=ENV_HELP)
        p.add_argument("name", help="the group, e.g. vllm")
    for p in group.choices.values():
        p.set_defaults(func=cmd_group)


def _register_create(group, common) -> None:
    create = add_command(group, "create", "add a custom group (an OpenAI or Anthropic protocol upstream)",
                         ["cbgate group create --env team-a vllm --base-url http://10.0.0.5:8000/v1 "
                          "--models qwen3-8b --ask-api-key",
                          "cbgate group create --env team-a ollama --base-url http://127.0.0.1:11434/v1 "
                          "--models llama3 --no-check"], [common])
    create.add_argument("--env", required=True, help=ENV_HELP)
    create.add_argument("name", help="1-64 of a-z, 0-9, '_' and '-', starting with a letter, not starting with "
                                      "cloudbase nor a built-in group's name (hunyuan, deepseek), e.g. vllm")
    create.add_argument("--base-url", required=True, help="e.g. http://10.0.0.5:8000/v1")
    create.add_argument("--ask-api-key", action="store_true",
                        help="prompt for the upstream's secret (or read it from piped stdin)")
    create.add_argument("--api-key-file", metavar="FILE", help=FILE_HELP)
    create.add_argument("--api-key", help="(discouraged: lands in shell history) the upstream's secret")
    create.add_argument("--protocol", choices=("openai", "anthropic"), default="openai",
                        help="the upstream's wire protocol (default: openai)")
    create.add_argument("--models", required=True, help="comma-separated model names, e.g. qwen3-8b,llama3")
    create.add_argument("--no-check", action="store_true", help="skip checking that the base URL answers")
    create.add_argument("--timeouts", help=TIMEOUTS_HELP)
    add_input_flags(create)


def add_input_flags(parser) -> None:
    """--vision/--no-vision and --audio-input/--no-audio-input; neither given: not declared."""
    for field, flag, what in INPUT_FLAGS:
        parser.add_argument(flag, dest=field, action=argparse.BooleanOptionalAction, default=None,
                            help=f"the upstream reads {what}, or (--no-{flag[2:]}) does not: such requests "
                                 "are refused with AI_MODEL_PARAM_INVALID; neither: not declared, sent as is")


def _register_set_capabilities(group, common) -> None:
    caps = add_command(group, "set-capabilities", "declare what a custom group's upstream reads besides text",
                       ["cbgate group set-capabilities --env team-a vllm --vision --no-audio-input",
                        "cbgate group set-capabilities --env team-a vllm --undeclared"], [common])
    caps.add_argument("--env", required=True, help=ENV_HELP)
    caps.add_argument("name", help="the custom group, e.g. vllm")
    add_input_flags(caps)
    caps.add_argument("--undeclared", action="store_true",
                      help="declare nothing: image and audio parts go up as sent, as before declarations")
