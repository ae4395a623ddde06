"""The data-path benchmark's pipeline part (b) on a short real clip: it runs both sides
through LLaMA-Factory's pairwise processor + collator and reports what it counted."""

from __future__ import annotations

import json

from tests.support.scripts import load_script


def _load_benchmark():
    return load_script("benchmarks/data_path.py")


def test_pipeline_part_counts_decodes_on_both_sides(shared_media, tiny_model_dir, tmp_path):
    bench = _load_benchmark()
    out = tmp_path / "data_path.json"
    out.write_text(json.dumps({"reader_speedup": 2.5}))  # results of other parts are kept
    clip = shared_media / "4_av.mp4"  # 5 s, 224x224, AAC stereo
    code = bench.main(
        [
            "--parts",
            "pipeline",
            "--pairs",
            "2",
            "--llamafactory-pairs",
            "2",
            "--batch-pairs",
            "2",
            "--clip",
            str(clip),
            "--model-dir",
            str(tiny_model_dir),
            "--work-dir",
            str(tmp_path / "work"),
            "--out",
            str(out),
        ]
    )
    assert code == 0
    result = json.loads(out.read_text())
    assert result["reader_speedup"] == 2.5
    for key in ("pipeline_speedup", "decodes_per_pair_ours", "decodes_per_pair_llamafactory", "pipeline"):
        assert key in result
    ours, lf = result["pipeline"]["ours"], result["pipeline"]["llamafactory"]
    assert ours["pairs"] == lf["pairs"] == 2 and ours["distinct_files"] == 2
    # ours: metadata only while preprocessing, then one decode per distinct file in the batch
    assert ours["decodes_preprocess"] == 0
    assert ours["decodes"] <= ours["distinct_files"]
    assert result["decodes_per_pair_ours"] <= 1
    # LLaMA-Factory: video + audio track decoded in both process_messages calls (chosen,
    # rejected) and again for both sequences in the collator
    assert lf["decodes_preprocess"] == 2 * 2 * 2
    assert result["decodes_per_pair_llamafactory"] == 8
    assert lf["av_open_calls_by_caller"] == {"_regularize_videos": 8} and lf["torchaudio_load_calls"] == 8
    # both collated batches carry the media: 2 pairs -> 4 sequences
    assert ours["first_batch"]["input_ids"][0] == 4 and ours["first_batch"]["audio_features"][0] == 4
    assert lf["first_batch"]["input_ids"][0] == 4 and "pixel_values_videos" in lf["first_batch"]
    assert "input_features" in lf["first_batch"] and "pixel_values_videos" in ours["first_batch"]
    assert result["pipeline_speedup"] > 0
