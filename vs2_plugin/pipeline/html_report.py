"""``report.html``: the run's captions read against the video, one self-contained file.

Written next to ``report.md`` by ``vs2 demo``, ``vs2 mrdpo``, ``vs2 rebirth`` and ``vs2 eval``.
On top: the per-stage table (the same numbers as ``report.md``) and ``rounds.png``. Then one
section per held-out video: a strip of frame thumbnails with their times and the audio
waveform (decoded with :func:`vs2_plugin.data.media.read_media`), the reference caption, and the
caption of every stage with the judge's verdict: missed reference events listed, incorrect
events listed, hallucinated statements highlighted in the caption (``<mark class="hall">``;
a statement the judge names but that cannot be found verbatim in the caption is listed
instead). Local captions are shown under their interval, with the interval's reference.

Everything is embedded (images as ``data:`` URIs, the waveform as inline SVG, no script, no
external stylesheet), so the file works offline, attached to a message or opened from disk.
A video that cannot be decoded gets a one-line note instead of thumbnails; the report is
still written.
"""

from __future__ import annotations

import base64
import html
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vs2_plugin.gdpo.rounds import atomic_write_text
from vs2_plugin.judge.report import percent

#: Frame thumbnails per video (uniform over the clip, sec. 3.1 slot centres).
THUMBNAILS = 8
#: Thumbnail size limit in pixels (aspect kept).
THUMB_PIXELS = 160 * 90
#: Columns of the audio waveform.
WAVE_COLUMNS = 480
#: Videos shown with frames and waveform; later ones get their captions only (keeps a report of
#: a large labelling run quick to write and small).
MAX_MEDIA_VIDEOS = 100

CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 6px;vertical-align:top}
table.stages td{text-align:right}table.stages td:first-child{text-align:left}
section.video{border-top:2px solid #888;margin-top:2em;padding-top:.5em}
.strip{display:flex;gap:4px;overflow-x:auto}.strip figure{margin:0;text-align:center;font-size:11px}
.strip figure.in-interval img{outline:3px solid #3a7}
.strip img{display:block;height:72px}
svg.wave{background:#f4f6fa;width:100%;height:60px;display:block}
.reference{background:#eef6ee;padding:4px 8px}
mark.hall{background:#f8c4c4;border-bottom:2px solid #c00}
li.missed{color:#8a5a00}li.incorrect{color:#a00}li.hall-unlocated{color:#c00}
td.caption{max-width:560px}.rates{font-size:11px;color:#555;white-space:nowrap}
.note{color:#777;font-style:italic}
"""


# ---------------------------------------------------------------------------------- model
@dataclass
class CaptionView:
    """One stage's caption of one video (or interval) with the judge's verdict (``Judgment.to_dict()``)."""

    stage: str
    caption: str | None
    judgment: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class IntervalView:
    start: float
    end: float
    reference: str | None = None
    captions: list[CaptionView] = field(default_factory=list)


@dataclass
class VideoView:
    id: str
    video: str | None
    reference: str | None = None
    captions: list[CaptionView] = field(default_factory=list)
    intervals: list[IntervalView] = field(default_factory=list)


# ------------------------------------------------------------------------- highlighting
def locate_spans(text: str, phrases: list[str]) -> tuple[list[tuple[int, int]], list[str]]:
    """Character spans of ``phrases`` in ``text`` (merged, sorted) and the phrases not found.

    A phrase is looked up verbatim, then case-insensitively with any run of spaces and
    punctuation between its words (judges trim and re-punctuate the clauses they quote).

    >>> locate_spans("A dog runs. The sky is green, and it rains.", ["the sky is green", "a cat"])
    ([(12, 28)], ['a cat'])
    """
    spans, missing = [], []
    for phrase in phrases:
        core = phrase.strip().strip(".,;:!?").strip()
        if not core:
            continue
        at = text.find(core)
        if at >= 0:
            spans.append((at, at + len(core)))
            continue
        words = re.findall(r"\w+", core)
        found = re.search(r"\W+".join(map(re.escape, words)), text, re.IGNORECASE) if words else None
        if found:
            spans.append(found.span())
        else:
            missing.append(phrase)
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged, missing


def highlighted(text: str, spans: list[tuple[int, int]], css_class: str = "hall", title: str = "") -> str:
    """``text`` as HTML with each span wrapped in ``<mark class=...>``.

    >>> highlighted("a <b> c", [(2, 5)], title="x")
    'a <mark class="hall" title="x">&lt;b&gt;</mark> c'
    """
    out, pos = [], 0
    for start, end in spans:
        out.append(html.escape(text[pos:start]))
        out.append(f'<mark class="{css_class}" title="{html.escape(title)}">{html.escape(text[start:end])}</mark>')
        pos = end
    out.append(html.escape(text[pos:]))
    return "".join(out)


# ------------------------------------------------------------------------------- media
def _png_data_uri(data: bytes, mime: str = "image/png") -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def media_strip(video: str) -> tuple[str, list[tuple[float, str]]]:
    """Thumbnails with times and the audio waveform of ``video`` as HTML (a note if it cannot be
    read), and the thumbnails as ``(time, data URI)`` for the local intervals' strips."""
    from PIL import Image

    from vs2_plugin.data.media import probe, read_media
    from vs2_plugin.errors import MediaError

    try:
        info = probe(video)
        decoded = read_media(
            video,
            fps_phi=max(THUMBNAILS / info.duration_s, 0.01),
            max_frames_m=THUMBNAILS,
            max_pixels=THUMB_PIXELS,
            group_size=1,
            min_duration_s=0.0,
        )
    except (MediaError, OSError) as exc:
        return f'<p class="note">media not shown: {html.escape(str(exc))}</p>', []
    thumbs = []
    for frame, t in zip(decoded.frames if decoded.frames is not None else [], decoded.frame_pts_s):
        buf = io.BytesIO()
        Image.fromarray(frame).save(buf, format="JPEG", quality=80)
        thumbs.append((float(t), _png_data_uri(buf.getvalue(), "image/jpeg")))
    strip = thumb_strip(thumbs) if thumbs else '<p class="note">no video stream</p>'
    return strip + waveform_svg(decoded.audio, decoded.sample_rate, info.duration_s), thumbs


def thumb_strip(thumbs: list[tuple[float, str]], css_class: str = "thumb") -> str:
    return (
        '<div class="strip">'
        + "".join(
            f'<figure class="{css_class}" data-time="{t:.2f}"><img alt="frame at {t:.1f} s" src="{uri}">'
            f"<figcaption>{t:.1f} s</figcaption></figure>"
            for t, uri in thumbs
        )
        + "</div>"
    )


def waveform_svg(audio, sample_rate: int, duration_s: float, columns: int = WAVE_COLUMNS) -> str:
    """The min/max envelope of ``audio`` as an inline SVG, with a tick every second."""
    import numpy as np

    if audio is None or len(audio) == 0:
        return '<p class="note audio">no audio track</p>'
    chunks = np.array_split(np.asarray(audio, dtype=np.float32), columns)
    peak = max(float(np.abs(audio).max()), 1e-6)
    bars = []
    for x, chunk in enumerate(chunks):
        if len(chunk):
            lo, hi = float(chunk.min()) / peak, float(chunk.max()) / peak
            bars.append(f"M{x} {30 - 28 * hi:.1f}V{30 - 28 * lo + 0.5:.1f}")
    ticks = "".join(
        f'<line x1="{columns * s / duration_s:.1f}" y1="0" x2="{columns * s / duration_s:.1f}" y2="4" stroke="#888"/>'
        for s in range(int(duration_s) + 1)
    )
    return (
        f'<svg class="wave" viewBox="0 0 {columns} 60" preserveAspectRatio="none" role="img" '
        f'aria-label="audio waveform, {len(audio) / sample_rate:.1f} s">{ticks}'
        f'<path d="{"".join(bars)}" stroke="#2a5db0" stroke-width="1"/></svg>'
    )


# ------------------------------------------------------------------------------ render
def stage_table(rows: list[dict[str, Any]]) -> str:
    """The per-stage table of ``report.md`` (:func:`vs2_plugin.pipeline.report.markdown_table`) as HTML."""
    from vs2_plugin.pipeline.report import COLUMNS

    head = (
        "<tr><th>Stage</th>"
        + "".join(f"<th>G {n}</th>" for _, n in COLUMNS)
        + "".join(f"<th>L {n}</th>" for _, n in COLUMNS[1:4])
        + "<th>pairs</th></tr>"
    )
    body = []
    for row in rows:
        g, loc = row.get("global") or {}, row.get("local") or {}
        cells = [percent(g.get(k)) for k, _ in COLUMNS] + [percent(loc.get(k)) for k, _ in COLUMNS[1:4]]
        body.append(
            f"<tr><td>{html.escape(str(row['stage']))}</td>"
            + "".join(f"<td>{c}</td>" for c in cells)
            + f"<td>{html.escape(str(row.get('pairs', '-')))}</td></tr>"
        )
    return f'<table class="stages">{head}{"".join(body)}</table>'


def markdown_table_html(markdown: str) -> str:
    """The pipe tables of ``markdown`` as HTML tables, other lines as paragraphs (headings as ``h2``).

    >>> markdown_table_html("### T\\n| a | b |\\n|---|---|\\n| 1 | 2 |")
    '<h2>T</h2><table class="stages"><tr><th>a</th><th>b</th></tr><tr><td>1</td><td>2</td></tr></table>'
    """
    out, rows = [], []

    def flush() -> None:
        if rows:
            head, *body = rows
            out.append(
                '<table class="stages"><tr>'
                + "".join(f"<th>{html.escape(c)}</th>" for c in head)
                + "</tr>"
                + "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in r) + "</tr>" for r in body)
                + "</table>"
            )
            rows.clear()

    for line in markdown.splitlines():
        text = line.strip()
        if text.startswith("|"):
            cells = [c.strip() for c in text.strip("|").split("|")]
            if not all(set(c) <= set("-: ") for c in cells):
                rows.append(cells)
            continue
        flush()
        if text.startswith("#"):
            out.append(f"<h2>{html.escape(text.lstrip('#').strip())}</h2>")
        elif text:
            out.append(f"<p>{html.escape(text)}</p>")
    flush()
    return "".join(out)


def caption_row(view: CaptionView) -> str:
    j = view.judgment or {}
    caption = view.caption
    if caption is None:
        text, errors = '<span class="note">no caption (the video could not be read)</span>', []
    elif j.get("status") == "failed":
        text = html.escape(caption)
        errors = [f'<li class="note">judgment failed: {html.escape(str(j.get("error")))}</li>']
    else:
        spans, unlocated = locate_spans(caption, list(j.get("hallucinated") or []))
        text = highlighted(caption, spans, "hall", "hallucinated: not supported by the reference")
        errors = [f'<li class="missed">missed: {html.escape(e)}</li>' for e in j.get("missed") or []]
        errors += [f'<li class="incorrect">incorrect: {html.escape(e)}</li>' for e in j.get("incorrect") or []]
        errors += [f'<li class="hall-unlocated">hallucinated: {html.escape(e)}</li>' for e in unlocated]
        errors += [f'<li class="unnatural">unnatural: {html.escape(e)}</li>' for e in j.get("unnatural") or []]
    errors += [f'<li class="note">{html.escape(n)}</li>' for n in view.notes]
    rates = ""
    if j.get("status") == "ok":
        rates = (
            f'<div class="rates">miss {percent(j.get("miss_rate"), "%")} · hall {percent(j.get("hall_rate"), "%")} · '
            f"total {percent(j.get('total_rate'), '%')} · events {j.get('n_events', '?')}</div>"
        )
    counts = (
        f' data-missed="{len(j.get("missed") or [])}" data-hallucinated="{len(j.get("hallucinated") or [])}"'
        if j
        else ""
    )
    return (
        f'<tr class="stage-caption" data-stage="{html.escape(view.stage)}"{counts}>'
        f'<th>{html.escape(view.stage)}{rates}</th><td class="caption">{text}</td>'
        f"<td><ul>{''.join(errors)}</ul></td></tr>"
    )


def video_section(v: VideoView, with_media: bool = True) -> str:
    parts = [
        f'<section class="video" id="video-{html.escape(v.id)}" data-video="{html.escape(v.id)}">',
        f"<h2>{html.escape(v.id)}</h2>",
    ]
    thumbs: list[tuple[float, str]] = []
    if v.video:
        parts.append(f'<div class="path note">{html.escape(v.video)}</div>')
        if with_media:
            strip, thumbs = media_strip(v.video)
            parts.append(strip)
    if v.reference:
        parts.append(f'<div class="reference"><b>Reference:</b> {html.escape(v.reference)}</div>')
    if v.captions:
        parts.append('<table class="captions">' + "".join(caption_row(c) for c in v.captions) + "</table>")
    for iv in v.intervals:
        parts.append(
            f'<h3 class="interval" data-start="{iv.start:g}" data-end="{iv.end:g}">'
            f"Local caption, {iv.start:g}–{iv.end:g} s</h3>"
        )
        inside = [(t, uri) for t, uri in thumbs if iv.start <= t < iv.end]
        if inside:
            parts.append(thumb_strip(inside, "thumb in-interval"))
        if iv.reference:
            parts.append(
                f'<div class="reference"><b>Reference ({iv.start:g}–{iv.end:g} s):</b> '
                f"{html.escape(iv.reference)}</div>"
            )
        parts.append('<table class="captions local">' + "".join(caption_row(c) for c in iv.captions) + "</table>")
    parts.append("</section>")
    return "".join(parts)


def render(
    title: str,
    videos: list[VideoView],
    *,
    table_html: str = "",
    rounds_png: Path | None = None,
    notes: list[str] | None = None,
    with_media: bool = True,
) -> str:
    """The whole page as one string."""
    top = [f"<h1>{html.escape(title)}</h1>", table_html]
    if rounds_png is not None and rounds_png.is_file():
        top.append(
            f'<img id="rounds" alt="rounds" style="max-width:100%" src="{_png_data_uri(rounds_png.read_bytes())}">'
        )
    if notes:
        top.append("<ul class='notes'>" + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul>")
    legend = (
        '<p><mark class="hall">highlighted</mark> = hallucinated or incorrect statement (not supported by the '
        'reference); <span style="color:#8a5a00">missed</span> = reference event the caption does not cover. '
        "Rates in % of the reference events.</p>"
    )
    index = "".join(f'<li><a href="#video-{html.escape(v.id)}">{html.escape(v.id)}</a></li>' for v in videos)
    body = "".join(video_section(v, with_media and k < MAX_MEDIA_VIDEOS) for k, v in enumerate(videos))
    if with_media and len(videos) > MAX_MEDIA_VIDEOS:
        legend += f'<p class="note">frames and audio shown for the first {MAX_MEDIA_VIDEOS} of {len(videos)} videos</p>'

    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{CSS}</style></head><body>{''.join(top)}{legend}<h2>Videos</h2><ul>{index}</ul>{body}"
        "</body></html>\n"
    )


# ------------------------------------------------------------------------------ sources
def videos_from_judged(stages: list[tuple[str, Path]], entries: list | None = None) -> list[VideoView]:
    """Per-video views from held-out ``*_judged.jsonl`` files, one per stage (in stage order).

    ``entries`` (:class:`vs2_plugin.pipeline.videos.VideoEntry`) give references and local
    intervals; without them only the captions are shown.
    """
    from vs2_plugin.pipeline.records import JsonlLog

    by_id: dict[str, VideoView] = {}
    for e in entries or []:
        view = VideoView(e.id, e.video, e.reference)
        view.intervals = [IntervalView(iv.start, iv.end, iv.reference) for iv in e.local]
        by_id[e.id] = view
    for stage, path in stages:
        for row in JsonlLog(path).rows():
            vid = str(row.get("video_id"))
            view = by_id.setdefault(vid, VideoView(vid, row.get("video")))
            caption = CaptionView(
                stage,
                row.get("caption"),
                row.get("judgment"),
                [f"sampling error: {row['error']}"] if row.get("error") else [],
            )
            if row.get("task") == "local" and row.get("start") is not None:
                start, end = float(row["start"]), float(row["end"])
                iv = next((i for i in view.intervals if abs(i.start - start) < 1e-6 and abs(i.end - end) < 1e-6), None)
                if iv is None:
                    iv = IntervalView(start, end)
                    view.intervals.append(iv)
                iv.captions.append(caption)
            else:
                view.captions.append(caption)
    for view in by_id.values():
        view.intervals = sorted((iv for iv in view.intervals if iv.captions), key=lambda iv: iv.start)
    return [v for v in by_id.values() if v.captions or v.intervals]


def heldout_entries(run_dir: Path) -> list:
    """The held-out video list named in ``run_dir/config.json`` (empty if it cannot be read)."""
    from vs2_plugin.errors import Vs2Error
    from vs2_plugin.pipeline.videos import load_videos

    try:
        cfg = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
        return load_videos(cfg.get("heldout_videos") or cfg["train_videos"])
    except (OSError, KeyError, ValueError, Vs2Error):
        return []


def mrdpo_stages(run_dir: Path, rows: list[dict[str, Any]], labels: list[str] | None = None) -> list[tuple[str, Path]]:
    """``(label, judged file)`` per row of an mrDPO report: "start" is round 0, "round t" round t."""
    out = []
    for k, row in enumerate(rows):
        name = str(row["stage"])
        index = 0 if name == "start" else int(name.split()[-1])
        out.append(((labels or [])[k] if labels else name, run_dir / f"round-{index:03d}" / "heldout_judged.jsonl"))
    return out


def write_html(
    out_dir: Path,
    title: str,
    videos: list[VideoView],
    *,
    rows: list[dict[str, Any]] | None = None,
    table_html: str = "",
    notes: list[str] | None = None,
    name: str = "report.html",
) -> Path:
    """Write ``out_dir/name`` (``rounds.png`` of ``out_dir`` embedded when present)."""
    page = render(
        title,
        videos,
        table_html=table_html or (stage_table(rows) if rows else ""),
        rounds_png=out_dir / "rounds.png",
        notes=notes,
    )
    path = out_dir / name
    atomic_write_text(path, page)
    return path


def write_run_html(run_dir: Path, rows: list[dict[str, Any]], title: str, notes: list[str] | None = None) -> Path:
    """``report.html`` of an mrDPO run directory (the rows of its ``report.md``)."""
    videos = videos_from_judged(mrdpo_stages(run_dir, rows), heldout_entries(run_dir))
    return write_html(run_dir, title, videos, rows=rows, notes=notes)


def write_eval_html(
    path: Path,
    title: str,
    summary_md: str,
    items: list,
    judged: list[dict[str, Any]],
    inputs: list[dict[str, Any]],
    input_path: Path,
) -> Path:
    """``report.html`` of ``vs2 eval``: one section per item (frames when its row names a ``video``)."""
    views = []
    for item, row, raw in zip(items, judged, inputs):
        video = raw.get("video")
        if video and not Path(video).is_absolute():
            video = str(input_path.parent / video)
        reference = item.reference or ("Events: " + " | ".join(item.events) if item.events else None)
        caption = CaptionView(f"{title} ({item.task})", item.caption, row)
        view = VideoView(item.id, video, reference, [caption])
        if item.task == "local" and raw.get("start") is not None and raw.get("end") is not None:
            view = VideoView(
                item.id, video, None, [], [IntervalView(float(raw["start"]), float(raw["end"]), reference, [caption])]
            )
        views.append(view)
    page = render(title, views, table_html=markdown_table_html(summary_md))
    atomic_write_text(path, page)
    return path


def write_labels_report(
    out_dir: Path,
    labels: list[dict[str, Any]],
    dropped: list[dict[str, Any]],
    entries: list,
    title: str = "rebirth labels",
) -> Path:
    """``report.md`` and ``report.html`` of a rebirth run: each labelled video's caption, kept or
    dropped (with the unnatural patterns found), against its reference when it has one."""
    reasons = {d["key"]: d.get("reasons") or [] for d in dropped}
    by_id = {e.id: e for e in entries}
    views: dict[str, VideoView] = {}
    for row in labels:
        entry = by_id.get(row["video_id"])
        view = views.setdefault(
            row["video_id"], VideoView(row["video_id"], row.get("video"), entry.reference if entry else None)
        )
        why = reasons.get(row["key"])
        note = "dropped: " + "; ".join(why) if why else "kept for rebirth tuning"
        caption = CaptionView("label", row.get("caption"), None, [note])
        if row.get("task") == "local":
            view.intervals.append(IntervalView(float(row["start"]), float(row["end"]), None, [caption]))
        else:
            view.captions.append(caption)
    kept = len(labels) - len(dropped)
    md = "\n".join(
        [
            f"# {title}",
            "",
            f"{len(labels)} captions labelled, {kept} kept, {len(dropped)} dropped.",
            "",
            *[f"- dropped {d['key']}: {'; '.join(d.get('reasons') or [])}" for d in dropped],
            "",
        ]
    )
    atomic_write_text(out_dir / "report.md", md)
    return write_html(out_dir, title, list(views.values()), table_html=markdown_table_html(md))
