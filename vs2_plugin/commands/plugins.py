"""``vs2 plugins``: every discovered plugin with its hooks, and our LLaMA-Factory registrations."""

from __future__ import annotations

import json


def configure_parser(parser) -> None:
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON")


def collect() -> dict:
    from vs2_plugin import autoload
    from vs2_plugin.integrations import llamafactory as lf_integration
    from vs2_plugin.plugins import get_plugin_manager, judge_registry, load_failures

    pm = get_plugin_manager()
    # first: a plugin whose judge registration fails (a name already taken, an exception) is
    # unregistered and becomes a failure here, so it is neither listed as loaded nor passes the check
    judges = judge_registry(pm)
    plugins = []
    for name, plugin in pm.list_name_plugin():
        hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
        plugins.append({"name": name, "hooks": hooks, "builtin": name.startswith("vs2_plugin.")})
    lf_integration.installed_version()  # imports LLaMA-Factory, which fires its llamafactory.plugins entry points

    return {
        "vs2_plugins": plugins,
        "vs2_plugin_failures": load_failures(),
        "judges": {name: judge.description for name, judge in judges.items()},
        "judge_options": {name: judge.option_defaults() for name, judge in judges.items()},
        "llamafactory_plugins": autoload.loaded_plugins(),
        "llamafactory": lf_integration.describe(),
    }


def run(args) -> int:
    """Exit 2 when LLaMA-Factory is not a supported version, 1 when a plugin failed to load, else 0:
    the install check of a CI job or a container build."""
    info = collect()
    failed = bool(info["vs2_plugin_failures"]) or any(
        str(status).startswith("error") for status in info["llamafactory_plugins"].values()
    )
    if args.json:
        print(json.dumps(info, indent=2, default=str))  # an option's default may be a Path, an enum, ...
        return 2 if "error" in info["llamafactory"] else int(failed)
    print("vs2 plugins (entry-point group 'vs2' + built-ins):")
    for p in info["vs2_plugins"]:
        kind = "built-in" if p["builtin"] else "installed"
        print(f"  {p['name']} [{kind}]: {', '.join(p['hooks']) or '(no hooks)'}")
    for name, err in info["vs2_plugin_failures"].items():
        print(f"  {name} [FAILED]: {err}")
    print("judges: " + (", ".join(info["judges"]) or "(none)"))
    for name, options in info["judge_options"].items():  # what `--judge-option KEY=VALUE` / `options:` accept
        print(f"  {name} options: " + (", ".join(f"{k}={v}" for k, v in options.items()) or "(none)"))
    print("LLaMA-Factory plugins (entry-point group 'llamafactory.plugins'):")
    for name, status in info["llamafactory_plugins"].items() or [("(none loaded)", "")]:
        print(f"  {name}: {status}")
    lf = info["llamafactory"]
    print(f"LLaMA-Factory {lf['llamafactory_version']} (supported: {', '.join(lf['supported'])})")
    if "error" in lf:
        print(f"  error: {lf['error']}")
        return 2
    for kind, names in sorted(lf["registrations"].items()):
        print(f"  {kind}: {', '.join(names)}")
    return int(failed)
