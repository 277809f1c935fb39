"""The selection sheet: one row per person in rank order with crops across their presence,
as a PNG (Pillow) or a self-contained HTML page (crops embedded as data URIs).

Example::

    rows = sheet_rows(store, video, store.persons(video.id)[:20], k=8)
    write_png(rows, video, out / "selection_table.png", k=8)
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ptrack.views.samples import Sample, load_crops, sample_person, sample_persons_from_store

TILE_W, TILE_H = 80, 160  # pixels per crop cell; crops are fitted inside, aspect kept
GAP = 6
PAD = 10
FONT_SIZE = 17
SMALL_SIZE = 13
COLORS = {"bg": (255, 255, 255), "alt": (243, 245, 248), "head": (40, 44, 52),
          "head_fg": (255, 255, 255), "fg": (20, 20, 20), "dim": (110, 110, 110),
          "tile": (225, 228, 232), "rule": (205, 208, 214)}


@dataclass
class SheetRow:
    """One person's row of the sheet."""

    person: dict
    crops: list[tuple[Sample, bytes]] = field(default_factory=list)
    suggested: list[dict] = field(default_factory=list)
    """Open suggested merges naming this person (``other``, ``k``, ``appearance``), best first."""


def sheet_rows(store: Any, video: Any, persons: Sequence[dict], k: int,
               detections: Any | None = None) -> list[SheetRow]:
    """Sample ``k`` crops across each person's presence and fetch their JPEG bytes.

    Without ``detections`` only a shortlist of each person's boxes and the detections of those
    frames are read (:func:`sample_persons_from_store`): a table of a 30-minute video reads a
    few thousand rows, not every box of the video.
    """
    ids = [int(p["id"]) for p in persons]
    if detections is None:
        picks = sample_persons_from_store(store, video.id, ids, k, per_bin=3)
    else:
        allboxes = store.person_boxes(video.id, ids)
        picks = {}
        for pid in ids:
            picks[pid] = sample_person(allboxes[allboxes["person"] == pid], detections, k,
                                       per_bin=3)
    suggested: dict[int, list[dict]] = {}
    for s in store.suggestions(video.id):
        for me, other in ((s["a"], s["b"]), (s["b"], s["a"])):
            suggested.setdefault(int(me), []).append(
                {"other": int(other), "k": s["k"], "appearance": s.get("appearance")})
    return [SheetRow(p, load_crops(store, video.id, picks[int(p["id"])], decode=False),
                     suggested.get(int(p["id"]), []))
            for p in persons]


def _fonts():
    from PIL import ImageFont

    def get(names: Sequence[str], size: int):
        for name in names:
            try:
                return ImageFont.truetype(name, size)
            except OSError:
                continue
        return ImageFont.load_default(size=size)

    regular = ("DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", "Arial.ttf")
    bold = ("DejaVuSans-Bold.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf",
            "Arial Bold.ttf")
    return get(regular, FONT_SIZE), get(bold, FONT_SIZE), get(regular, SMALL_SIZE)


def _time(frame: int, fps: float) -> str:
    from ptrack.views.terminal import fmt_time

    return fmt_time(frame / fps) if fps else ""


def _tile(jpeg: bytes):
    """A TILE_W x TILE_H PIL tile with the crop fitted inside, centred."""
    from PIL import Image

    from ptrack.detect.crops import decodable

    if not decodable(jpeg):  # checked before decoding: a header may claim 16000x16000
        raise OSError("not a crop-sized JPEG")
    img = Image.open(io.BytesIO(jpeg))
    img.draft("RGB", (TILE_W * 2, TILE_H * 2))
    img = img.convert("RGB")
    scale = min(TILE_W / img.width, TILE_H / img.height)
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    img = img.resize(size, Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC)
    tile = Image.new("RGB", (TILE_W, TILE_H), COLORS["tile"])
    tile.paste(img, ((TILE_W - size[0]) // 2, (TILE_H - size[1]) // 2))
    return tile


COLUMNS = ("#", "person", "crops across time \u2192", "first frame", "last frame", "frames", "tracklets")


def write_png(rows: Sequence[SheetRow], video: Any, path: Path, k: int, *,
              total_persons: int | None = None) -> Path:
    """Draw the sheet and save it as PNG (via a temporary file)."""
    from PIL import Image, ImageDraw

    from ptrack.formats.export import atomic_path

    font, bold, small = _fonts()
    fps = float(video.fps)
    k = max(k, max((len(r.crops) for r in rows), default=0), 1)
    crops_w = k * TILE_W + (k - 1) * GAP
    widths = [56, 96, max(crops_w, 200) + 24, 130, 130, 110, 104]
    label_h = SMALL_SIZE + 6
    row_h = TILE_H + label_h + 2 * PAD
    head_h = FONT_SIZE + 2 * PAD + 4
    title_h = FONT_SIZE + SMALL_SIZE + 3 * PAD
    width = sum(widths) + 2 * PAD
    height = title_h + head_h + max(1, len(rows)) * row_h + PAD
    img = Image.new("RGB", (width, height), COLORS["bg"])
    draw = ImageDraw.Draw(img)
    x0s = np.cumsum([PAD] + widths[:-1]).tolist()

    shown = len(rows) if total_persons is None else f"{len(rows)} of {total_persons}"
    draw.text((PAD, PAD), f"{video.name}: persons in rank order ({shown})", font=bold,
              fill=COLORS["fg"])
    draw.text((PAD, PAD + FONT_SIZE + 6),
              f"{k} crops per person, one per time bin across their presence; "
              f"{video.width}x{video.height}, {fps:g} fps, {video.frame_count} frames",
              font=small, fill=COLORS["dim"])
    y = title_h
    draw.rectangle((PAD, y, width - PAD, y + head_h), fill=COLORS["head"])
    for x, w, name in zip(x0s, widths, COLUMNS):
        draw.text((x + 8, y + head_h // 2), name, font=bold, fill=COLORS["head_fg"], anchor="lm")
    y += head_h
    if not rows:
        draw.text((PAD + 8, y + row_h // 2), "no persons", font=font, fill=COLORS["dim"], anchor="lm")
    for i, row in enumerate(rows):
        p = row.person
        if i % 2:
            draw.rectangle((PAD, y, width - PAD, y + row_h), fill=COLORS["alt"])
        mid = y + row_h // 2
        first, last = int(p["first"]), int(p["last"])
        cells = ["-" if p.get("rank") is None else str(p["rank"]), f"P{p['id']}", None,
                 (str(first), _time(first, fps)), (str(last), _time(last, fps)),
                 (str(p["n_frames"]), f"{p['n_observed'] / max(last - first + 1, 1):.0%} detected"),
                 str(p["n_tracklets"])]
        for x, w, value in zip(x0s, widths, cells):
            if value is None:
                continue
            if isinstance(value, tuple):
                draw.text((x + 8, mid - 2), value[0], font=bold if x == x0s[1] else font,
                          fill=COLORS["fg"], anchor="ls")
                draw.text((x + 8, mid + 4), value[1], font=small, fill=COLORS["dim"], anchor="lt")
            else:
                draw.text((x + 8, mid), value, font=bold if x == x0s[1] else font,
                          fill=COLORS["fg"], anchor="lm")
        cx = x0s[2] + 8
        ty = y + PAD
        if not row.crops:
            draw.text((cx, mid), "no crops stored", font=font, fill=COLORS["dim"], anchor="lm")
        for j, (sample, jpeg) in enumerate(row.crops):
            tx = cx + j * (TILE_W + GAP)
            try:
                img.paste(_tile(jpeg), (tx, ty))
            except OSError:
                draw.rectangle((tx, ty, tx + TILE_W - 1, ty + TILE_H - 1), fill=COLORS["tile"])
            draw.text((tx + TILE_W // 2, ty + TILE_H + 3), f"f{sample.frame}", font=small,
                      fill=COLORS["dim"], anchor="mt")
        y += row_h
        draw.line((PAD, y, width - PAD, y), fill=COLORS["rule"])
    path = Path(path)
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG", optimize=False, compress_level=3)
    return path


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",sans-serif;margin:24px;color:#141414}
h1{font-size:20px;margin:0 0 4px} p.sub{color:#666;margin:0 0 16px;font-size:13px}
table{border-collapse:collapse} th{background:#282c34;color:#fff;text-align:left;padding:8px 10px}
td{padding:8px 10px;border-bottom:1px solid #ccd;vertical-align:middle}
tr:nth-child(even) td{background:#f3f5f8} td.num{font-variant-numeric:tabular-nums}
.crops{display:flex;gap:6px} figure{margin:0;text-align:center}
figure img{width:80px;height:160px;object-fit:contain;background:#e1e4e8;display:block}
figcaption{font-size:11px;color:#666} .t{color:#666;font-size:12px}
.may{color:#8a4b00;font-size:12px;margin-top:4px}
"""


def write_html(rows: Sequence[SheetRow], video: Any, path: Path, k: int, *,
               total_persons: int | None = None) -> Path:
    """The same sheet as one self-contained HTML file."""
    from ptrack.formats.export import atomic_path

    fps = float(video.fps)
    esc = html.escape
    shown = len(rows) if total_persons is None else f"{len(rows)} of {total_persons}"
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           f"<title>{esc(video.name)}: selection table</title><style>{_CSS}</style></head><body>",
           f"<h1>{esc(video.name)}: persons in rank order ({shown})</h1>",
           f'<p class="sub">{k} crops per person, one per time bin across their presence; '
           f"{video.width}x{video.height}, {fps:g} fps, {video.frame_count} frames</p>",
           "<table><thead><tr>" + "".join(f"<th>{esc(c)}</th>" for c in COLUMNS)
           + "</tr></thead><tbody>"]
    for row in rows:
        p = row.person
        first, last = int(p["first"]), int(p["last"])
        figs = "".join(
            f'<figure><img alt="P{p["id"]} frame {s.frame}" src="data:image/jpeg;base64,'
            f'{base64.b64encode(j).decode("ascii")}"><figcaption>f{s.frame}</figcaption></figure>'
            for s, j in row.crops) or '<span class="t">no crops stored</span>'
        cov = p["n_observed"] / max(last - first + 1, 1)
        may = "".join(
            f'<div class="may" title="ptrack suggest --accept {e["k"]}">may be the same as '
            f'P{e["other"]}' + (f' ({e["appearance"]:.2f})' if e.get("appearance") is not None
                                else "") + f' <span class="t">#{e["k"]}</span></div>'
            for e in row.suggested[:3])
        out.append(
            "<tr>"
            f'<td class="num">{"-" if p.get("rank") is None else p["rank"]}</td>'
            f"<td><b>P{p['id']}</b>{may}</td><td><div class=\"crops\">{figs}</div></td>"
            f'<td class="num">{first}<br><span class="t">{_time(first, fps)}</span></td>'
            f'<td class="num">{last}<br><span class="t">{_time(last, fps)}</span></td>'
            f'<td class="num">{p["n_frames"]}<br><span class="t">{cov:.0%} detected</span></td>'
            f'<td class="num">{p["n_tracklets"]}</td></tr>')
    if not rows:
        out.append(f'<tr><td colspan="{len(COLUMNS)}">no persons</td></tr>')
    out.append("</tbody></table></body></html>")
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text("\n".join(out) + "\n", encoding="utf-8")
    return path
