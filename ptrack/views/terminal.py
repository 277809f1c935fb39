"""Terminal previews: a person's crops as one strip image beside a stats panel.

Images are drawn with textual-image, which picks the Kitty graphics protocol, Sixel or
iTerm2-style output when the terminal supports it and Unicode half blocks otherwise
(``graphics="blocks"`` forces half blocks, which any truecolour terminal shows and tests can
record). Tiles are 1:2 (width:height) so that ``height`` rows of half blocks (two pixels per
row) are ``height`` columns wide.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

GRAPHICS = ("auto", "blocks", "sixel", "kitty", "none")
TILE_W, TILE_H = 64, 128  # pixels of one crop tile in the strip (aspect kept, padded)
BACKGROUND = (24, 24, 24)


def fit_tile(image_bgr: np.ndarray, tile_w: int = TILE_W, tile_h: int = TILE_H,
             background: tuple[int, int, int] = BACKGROUND) -> np.ndarray:
    """An RGB ``tile_h x tile_w`` tile with the crop scaled to fit, centred, aspect kept."""
    import cv2

    h, w = image_bgr.shape[:2]
    scale = min(tile_w / max(w, 1), tile_h / max(h, 1))
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    small = cv2.resize(image_bgr, (nw, nh), interpolation=interp)
    tile = np.empty((tile_h, tile_w, 3), np.uint8)
    tile[:] = background
    y0, x0 = (tile_h - nh) // 2, (tile_w - nw) // 2
    tile[y0:y0 + nh, x0:x0 + nw] = small[:, :, ::-1]
    return tile


def strip_image(images: Sequence[np.ndarray], columns: int, *, gap: int = 4,
                tile_w: int = TILE_W, tile_h: int = TILE_H):
    """A PIL image of the crops in a grid ``columns`` wide (left to right, then down)."""
    from PIL import Image

    columns = max(1, min(columns, len(images)))
    rows = max(1, -(-len(images) // columns))
    width = columns * tile_w + (columns - 1) * gap
    height = rows * tile_h + (rows - 1) * gap
    canvas = np.zeros((height, width, 3), np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, columns)
        y, x = r * (tile_h + gap), c * (tile_w + gap)
        canvas[y:y + tile_h, x:x + tile_w] = fit_tile(img, tile_w, tile_h)
    return Image.fromarray(canvas), rows, columns


def fmt_time(seconds: float) -> str:
    """``m:ss.s`` (or ``h:mm:ss``) for a time in seconds."""
    if seconds >= 3600:
        h, rest = divmod(int(seconds), 3600)
        return f"{h}:{rest // 60:02d}:{rest % 60:02d}"
    tenths = int(round(seconds * 10))  # round first: 1799.97 s is 30:00.0, not 29:60.0
    m, t = divmod(tenths, 600)
    return f"{m}:{t // 10:02d}.{t % 10}"


def person_stats(person: dict, fps: float) -> list[tuple[str, str]]:
    """Label/value pairs describing a person (the stats panel's content)."""
    first, last = int(person["first"]), int(person["last"])
    span = last - first + 1
    coverage = person["n_observed"] / span if span > 0 else 0.0
    fps = fps or 1.0
    score = person.get("score")
    return [
        ("rank", "-" if person.get("rank") is None else f"#{person['rank']}"),
        ("frames", f"{person['n_frames']} ({person['n_observed']} observed)"),
        ("span", f"{first}-{last} ({span} frames)"),
        ("time", f"{fmt_time(first / fps)}-{fmt_time(last / fps)}"),
        ("detected", f"{coverage:.0%} of the span"),
        ("tracklets", str(person["n_tracklets"])),
        ("height", f"{person['mean_height']:.0f} px"),
        ("conf", f"{person['mean_conf']:.2f}"),
        ("score", "-" if score is None else f"{score:.3f}"),
    ]


def stats_panel(person: dict, fps: float, samples: Sequence[Any] = ()):
    """A rich Panel with a person's numbers (and the frames the crops come from)."""
    from rich.panel import Panel
    from rich.table import Table

    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="bold cyan", no_wrap=True)
    grid.add_column(no_wrap=False, overflow="fold")  # wrapped, never cut with an ellipsis
    for label, value in person_stats(person, fps):
        grid.add_row(label, value)
    if samples:
        grid.add_row("crops at", ", ".join(str(s.frame) for s in samples))
    return Panel(grid, title=f"[bold]P{person['id']}[/]", title_align="left", expand=False)


def _ensure_cell_size() -> None:
    """textual-image divides by the terminal's reported size, which some pseudo terminals give
    as 0; assume the common 10 x 20 pixel cell then instead of failing."""
    try:
        from textual_image._terminal import CellSize, get_cell_size
    except ImportError:  # pragma: no cover - layout of another textual-image version
        return
    try:
        get_cell_size()
    except Exception:
        setattr(get_cell_size, "_result", CellSize(10, 20))


def image_renderable(image, width: int, height: int, graphics: str = "auto"):
    """A rich renderable drawing a PIL image in ``width`` x ``height`` cells."""
    _ensure_cell_size()
    if graphics == "blocks":
        from textual_image.renderable.halfcell import Image as Cls
    elif graphics == "sixel":
        from textual_image.renderable.sixel import Image as Cls
    elif graphics == "kitty":
        from textual_image.renderable.tgp import Image as Cls
    else:  # auto: the library probes the terminal once
        from textual_image.renderable import Image as Cls
    return Cls(image, width=width, height=height)


def person_view(person: dict, crops: Sequence[tuple[Any, np.ndarray]], fps: float, *,
                width: int, height: int = 12, graphics: str = "auto", beside: bool = True):
    """One person's preview: the crop strip with the stats panel beside (or above) it.

    ``crops`` are ``(sample, BGR image)`` pairs from :func:`ptrack.views.samples.load_crops`;
    ``width`` is the number of terminal columns available.
    """
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    samples = [s for s, _ in crops]
    panel = stats_panel(person, fps, samples)
    if graphics == "none" or not crops:
        if not crops:
            note = Text("no crops stored for this person", style="dim")
            return Group(panel, note)
        return panel
    panel_w = 44 if beside else 0
    tile_cells = height + 1  # one tile is `height` columns wide, plus the gap
    avail = max(tile_cells, width - panel_w - 2)
    columns = max(1, min(len(crops), avail // tile_cells))
    img, rows, columns = strip_image([im for _, im in crops], columns)
    cells_w = max(1, round(img.width / TILE_W * height))
    cells_h = max(1, round(img.height / TILE_H * height))
    picture = image_renderable(img, cells_w, cells_h, graphics)
    if not beside:
        return Group(panel, picture)
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True)
    grid.add_column()
    grid.add_row(picture, panel)
    return grid


COMPARE_MIN_WIDTH = 34
"""Narrowest column a person gets in ``show A B ...``: its stats fit without cutting a value."""


def per_row(n: int, width: int, min_width: int = COMPARE_MIN_WIDTH, gap: int = 3) -> int:
    """How many person views fit side by side in ``width`` columns (the rest go below).

    >>> per_row(5, 80), per_row(2, 80), per_row(5, 200)
    (2, 2, 5)
    """
    return max(1, min(n, (width + gap) // (min_width + gap)))


def compare_view(views: Sequence[Any], titles: Sequence[str] | None = None, columns: int = 0):
    """Several person views side by side (one column each), ``columns`` per row (all when 0)."""
    from rich.console import Group
    from rich.table import Table

    columns = columns or len(views)
    rows = []
    for start in range(0, len(views), columns):
        grid = Table.grid(padding=(0, 3))
        for _ in range(columns):
            grid.add_column(vertical="top")
        chunk = list(views[start:start + columns])
        grid.add_row(*chunk, *([""] * (columns - len(chunk))))
        rows.append(grid)
    return rows[0] if len(rows) == 1 else Group(*rows)
