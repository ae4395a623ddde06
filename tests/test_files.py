"""vs2_plugin.files: the one JSONL reader and the one YAML/JSON mapping reader."""

from __future__ import annotations

import pytest

from vs2_plugin.errors import ConfigError, DataError
from vs2_plugin.files import load_mapping, read_jsonl


def test_read_jsonl_rows_skip_blank_lines(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"id": 1}\n\n  \n{"id": 2, "caption": "a dog"}\n', encoding="utf-8")
    assert read_jsonl(path) == [{"id": 1}, {"id": 2, "caption": "a dog"}]
    assert read_jsonl(str(path)) == read_jsonl(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"id": 1}\n{"id": 2\n', r"rows.jsonl:2: not valid JSON"),
        ('{"id": 1}\n[1, 2]\n', r"rows.jsonl:2: not a JSON object \(a list\)"),
        ("\n\n", r"rows.jsonl: no rows"),
    ],
)
def test_read_jsonl_names_the_file_and_line(tmp_path, text, message):
    path = tmp_path / "rows.jsonl"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=message):
        read_jsonl(path)


def test_a_caption_holding_a_unicode_line_separator_is_one_row(tmp_path):
    # written unescaped (ensure_ascii=False, as vs2 caption and LLaMA-Factory write predictions):
    # JSON lines end at "\n" only, str.splitlines would cut the row in two
    import json

    rows = [{"id": "a", "caption": f"A man walks a dog.{sep}The dog barks."} for sep in ("\u2028", "\u2029", "\x85")]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\r\n" for r in rows), encoding="utf-8")
    assert read_jsonl(path) == rows


def test_half_a_surrogate_pair_is_named_by_key_and_an_array_file_gets_a_hint(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text(
        '{"id": "a", "caption": "A dog. \\ud83d\\ude00 fine"}\n{"id": "b", "events": ["ok", "cut \\ud83d"]}\n'
    )
    with pytest.raises(DataError, match=r"rows.jsonl:2: 'events'\[1\] holds \\ud83d at character 4: half of a UTF-16"):
        read_jsonl(path)
    array = tmp_path / "array.jsonl"
    array.write_text('[\n {"id": "a"}\n]\n')
    with pytest.raises(DataError, match=r"array.jsonl:1: not valid JSON .*one object per line, not an array"):
        read_jsonl(array)


def test_a_mapping_file_with_a_byte_order_mark_is_read(tmp_path):
    for suffix, text in ((".json", '{"judge": "offline"}'), (".yaml", "judge: offline\n")):
        path = tmp_path / f"judge{suffix}"
        path.write_bytes(b"\xef\xbb\xbf" + text.encode())
        assert load_mapping(path) == {"judge": "offline"}


def test_read_jsonl_empty_allowed_missing_and_binary_refused(tmp_path):
    empty = tmp_path / "dropped.jsonl"
    empty.write_text("", encoding="utf-8")
    assert read_jsonl(empty, allow_empty=True) == []
    with pytest.raises(DataError, match="missing.jsonl: cannot read"):
        read_jsonl(tmp_path / "missing.jsonl", allow_empty=True)
    binary = tmp_path / "latin1.jsonl"
    binary.write_bytes('{"caption": "caf\xe9"}\n'.encode("latin-1"))
    with pytest.raises(DataError, match="latin1.jsonl: not UTF-8 text"):
        read_jsonl(binary)


def test_load_mapping_yaml_json_and_errors(tmp_path):
    (tmp_path / "a.yaml").write_text("judge: offline\noptions:\n  encoder: minilm\n", encoding="utf-8")
    assert load_mapping(tmp_path / "a.yaml") == {"judge": "offline", "options": {"encoder": "minilm"}}
    (tmp_path / "b.json").write_text('{"judge": "openai"}', encoding="utf-8")
    assert load_mapping(tmp_path / "b.json") == {"judge": "openai"}
    (tmp_path / "c.json").write_text('{"judge": ', encoding="utf-8")
    with pytest.raises(ConfigError, match=r"c.json: not valid JSON"):
        load_mapping(tmp_path / "c.json")
    (tmp_path / "d.yaml").write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"d.yaml: expected a mapping"):
        load_mapping(tmp_path / "d.yaml")


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_a_mapping_file_that_is_not_utf8_is_one_line(tmp_path, suffix):
    from vs2_plugin.errors import ConfigError
    from vs2_plugin.files import load_mapping

    path = tmp_path / f"judge{suffix}"
    path.write_bytes(b"judge: offline\nname: caf\xe9\n")
    with pytest.raises(
        ConfigError, match=r"judge\.(yaml|json): not UTF-8 text \(invalid continuation byte at byte 24\)"
    ):
        load_mapping(path)


def test_yaml_errors_are_one_line_saying_where(tmp_path):
    from vs2_plugin.errors import ConfigError
    from vs2_plugin.pipeline.config import load_yaml

    tabbed = tmp_path / "tabbed.yaml"
    tabbed.write_text("stage: sft\n\tlearning_rate: 1.0e-4\n", encoding="utf-8")
    twice = tmp_path / "twice.yaml"
    twice.write_text("stage: sft\nlearning_rate: 1\nlearning_rate: 2\n", encoding="utf-8")
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"run_name: caf\xe9\n")
    cases = [
        (load_mapping, tabbed, r"tabbed.yaml: not valid YAML \(found character '\\t' .* at line 2, column 1\)"),
        (load_yaml, tabbed, r"tabbed.yaml: not valid YAML \(found character '\\t' .* at line 2, column 1\)"),
        (load_yaml, twice, r"twice.yaml: not valid YAML \(found duplicate key 'learning_rate' at line 3, column 1\)"),
        (load_yaml, latin, r"latin.yaml: not UTF-8 text"),
    ]
    for load, path, message in cases:
        with pytest.raises(ConfigError, match=message) as info:
            load(path)
        assert "\n" not in str(info.value), str(info.value)
