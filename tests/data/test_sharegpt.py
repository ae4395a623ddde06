"""The caption datasets the pipeline writes read back through LLaMA-Factory's dataset checks."""

from __future__ import annotations

import json

from vs2_plugin.data import dataset_rows, validate
from vs2_plugin.data.sharegpt import caption_row, write_caption_dataset


def test_a_written_caption_dataset_is_one_registered_sharegpt_set(tmp_path):
    rows = [caption_row("<video>Describe.", "A red circle appears.", "videos", "/m/a.mp4")]
    write_caption_dataset(tmp_path, "caps", rows)
    info = json.loads((tmp_path / "dataset_info.json").read_text())
    assert list(info) == ["caps"] and info["caps"]["file_name"] == "caps.json"
    assert info["caps"]["columns"] == {"messages": "messages", "videos": "videos"}
    assert json.loads((tmp_path / "caps.json").read_text()) == [
        {
            "messages": [
                {"role": "user", "content": "<video>Describe."},
                {"role": "assistant", "content": "A red circle appears."},
            ],
            "videos": ["/m/a.mp4"],
        }
    ]
    (spec,) = dataset_rows.dataset_specs(["caps"], str(tmp_path))
    checker = dataset_rows.RowChecker(spec, validate.MediaLimits(), {})
    assert checker.check(rows[0]) == [("/m/a.mp4", "file not found")]  # rows are read as LLaMA-Factory reads them
