"""``vs2 check-recipe RECIPE [key=value ...]``: check a recipe before a GPU is booked.

Training recipes (``llamafactory-cli train``), inference recipes (``llamafactory-cli api`` /
``chat``) and mrDPO driver configs (``vs2 mrdpo``) are read as their command reads them, with
the same ``key=value`` overrides: every key and type through LLaMA-Factory's own parser and
the plugin's rules, then the files the recipe names (model, adapters, DeepSpeed config,
datasets and their files, chat template, video lists). ``--keys-only`` skips the files (a
recipe for a machine whose models are elsewhere); ``--data`` also runs the bad-sample pass a
training run starts with, over every row and media file of its datasets.

Every problem is reported, not only the first; prints one line per problem or note and exits 0
when nothing is wrong, 1 when something is, 2 when the recipe cannot be read at all (no file, not
YAML, not a mapping, empty, a key given twice).

    vs2 check-recipe recipes/av_sft.yaml --keys-only
    vs2 check-recipe recipes/tiny/av_sft.yaml model_name_or_path=outputs/tiny-model --data
"""

from __future__ import annotations

import argparse

from vs2_plugin.pipeline.recipe_check import check_recipe

WHAT = {"train": "training recipe", "infer": "inference recipe", "mrdpo": "mrDPO driver config"}


#: flags may follow the key=value overrides (vs2 check-recipe R a=1 --data)
INTERMIXED = True


def configure_parser(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recipe", help="the YAML file")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="overrides, as the recipe's command takes")
    parser.add_argument("--keys-only", action="store_true", help="check keys and types, not the files named")
    parser.add_argument("--data", action="store_true", help="also check every row and media file of the datasets")


def run(args: argparse.Namespace) -> int:
    kind, findings = check_recipe(args.recipe, args.overrides, files=not args.keys_only, data=args.data)
    for finding in findings:
        print(f"{finding.level}: {finding.text}")
    problems = sum(f.level == "problem" for f in findings)
    verdict = f"{problems} problem(s)" if problems else "ok"
    print(f"{args.recipe} ({WHAT[kind]}): {verdict}")
    return 1 if problems else 0
