"""Build vs2_plugin/judge/data/rarity_en.json: Zipf frequencies of common English words.

The offline judge weights each word of an event by how rare it is in general English
(rare words carry the content: "saxophone" matters more than "person"). The table comes from
the ``wordfreq`` package (general-purpose English frequencies, not caption data), so nothing
here is tuned on evaluation data. Only needed to regenerate the table:

    .venv/bin/pip install wordfreq && .venv/bin/python benchmarks/build_rarity_table.py
"""

import json
from pathlib import Path

from wordfreq import top_n_list, zipf_frequency

N_WORDS = 40000
OUT = Path(__file__).resolve().parents[1] / "vs2_plugin" / "judge" / "data" / "rarity_en.json"


def main() -> None:
    table = {}
    for word in top_n_list("en", N_WORDS):
        if word.isascii() and any(ch.isalnum() for ch in word):
            table[word] = round(zipf_frequency(word, "en"), 1)
    payload = {"source": f"wordfreq top {N_WORDS} English words, Zipf scale", "zipf": table}
    OUT.write_text(json.dumps(payload, separators=(",", ":"), sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {len(table)} words to {OUT} ({OUT.stat().st_size // 1024} KiB)")


if __name__ == "__main__":
    main()
