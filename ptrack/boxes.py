"""One box-set type from the store to the views.

A :class:`Boxes` holds N boxes as columns: the 0-based ``frame``, ``xyxy`` in original pixels,
``conf`` and ``cls``, and optional id columns (``det``, ``tracklet``, ``person``, ``source``,
``row``). Shapes and dtypes are checked and normalised at construction, as supervision's
``Detections`` does, so every consumer can rely on them. Index it with an int, a slice, a
boolean mask or an index array to get another :class:`Boxes`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np

# optional per-box id columns, all int columns; absent = None
ID_COLUMNS = ("det", "tracklet", "person", "source", "row")
_DTYPES = {"frame": np.int64, "xyxy": np.float32, "conf": np.float32, "cls": np.int64,
           "det": np.int64, "tracklet": np.int64, "person": np.int64, "source": np.int8,
           "row": np.int64}

SOURCE_OBSERVED = 0
"""``source`` of a box the detector saw."""
SOURCE_INTERPOLATED = 1
"""``source`` of a box filled in across a gap."""


@dataclass(frozen=True, eq=False)
class Boxes:
    """N boxes as validated columns.

    Attributes:
        frame: 0-based frame of each box, int64 (N,).
        xyxy: ``x1, y1, x2, y2`` in original pixels, float32 (N, 4).
        conf: Detection confidence, float32 (N,); 0 for boxes the detector did not see.
        cls: Class id, int64 (N,); -1 when unknown.
        det: Detection index within its frame (the crop key), int64 (N,) or None.
        tracklet: Tracklet id, int64 (N,) or None; -1 = none.
        person: Person id, int64 (N,) or None.
        source: 0 observed, 1 interpolated, int8 (N,) or None.
        row: Index into the boxes this set was derived from, int64 (N,) or None; -1 = none.
        data: Further per-box columns by name (each with N rows), e.g. ``xyxy_raw``.
    """

    frame: np.ndarray
    xyxy: np.ndarray
    conf: np.ndarray
    cls: np.ndarray | None = None
    det: np.ndarray | None = None
    tracklet: np.ndarray | None = None
    person: np.ndarray | None = None
    source: np.ndarray | None = None
    row: np.ndarray | None = None
    data: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        frame = np.asarray(self.frame)
        n = int(frame.shape[0]) if frame.ndim else -1
        if frame.ndim != 1:
            raise ValueError(f"Boxes.frame must be 1-D, got shape {frame.shape}")
        set_ = object.__setattr__
        set_(self, "frame", _column("frame", frame, n))
        xyxy = np.asarray(self.xyxy, dtype=np.float32)
        if n == 0 and xyxy.size == 0:
            xyxy = xyxy.reshape(0, 4)
        if xyxy.shape != (n, 4):
            raise ValueError(f"Boxes.xyxy must have shape ({n}, 4), got {xyxy.shape}")
        set_(self, "xyxy", xyxy)
        set_(self, "conf", _column("conf", self.conf, n))
        cls = np.full(n, -1, np.int64) if self.cls is None else self.cls
        set_(self, "cls", _column("cls", cls, n))
        for name in ID_COLUMNS:
            value = getattr(self, name)
            if value is not None:
                set_(self, name, _column(name, value, n))
        data = {}
        for name, value in dict(self.data).items():
            arr = np.asarray(value)
            if arr.ndim == 0 or arr.shape[0] != n:
                raise ValueError(f"Boxes.data[{name!r}] must have {n} rows, got shape {arr.shape}")
            data[name] = arr
        set_(self, "data", data)

    # -- construction -----------------------------------------------------------------------

    @classmethod
    def empty(cls, *columns: str) -> "Boxes":
        """No boxes; ``columns`` names the optional id columns to hold (as empty arrays)."""
        extra = {name: np.zeros(0, _DTYPES[name]) for name in columns}
        return cls(np.zeros(0, np.int64), np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                   **extra)

    @classmethod
    def concat(cls, parts: Iterable["Boxes"]) -> "Boxes":
        """The boxes of ``parts`` one after another; a column is kept when every part has it."""
        parts = list(parts)
        if not parts:
            return cls.empty()
        ids = {name: np.concatenate([getattr(p, name) for p in parts])
               for name in ID_COLUMNS if all(getattr(p, name) is not None for p in parts)}
        keys = set.intersection(*(set(p.data) for p in parts))
        return cls(np.concatenate([p.frame for p in parts]), np.concatenate([p.xyxy for p in parts]),
                   np.concatenate([p.conf for p in parts]), np.concatenate([p.cls for p in parts]),
                   data={k: np.concatenate([p.data[k] for p in parts]) for k in sorted(keys)},
                   **ids)

    def with_columns(self, **columns: Any) -> "Boxes":
        """A copy with the named columns set (an id column, a core column, or a ``data`` key)."""
        fields = {f.name for f in dataclasses.fields(self)} - {"data"}
        data = dict(self.data)
        direct = {}
        for name, value in columns.items():
            if name in fields:
                direct[name] = value
            else:
                data[name] = value
        return dataclasses.replace(self, data=data, **direct)

    # -- access -----------------------------------------------------------------------------

    def __len__(self) -> int:
        return int(self.frame.shape[0])

    def __contains__(self, name: object) -> bool:
        """``"smoothed" in boxes``: whether a column of that name is held."""
        try:
            self.column(str(name))
        except KeyError:
            return False
        return True

    def __getitem__(self, index: Any) -> Any:
        """``boxes["frame"]`` is a column (see :meth:`column`); anything else selects boxes."""
        if isinstance(index, str):
            return self.column(index)
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        ids = {name: getattr(self, name)[index] for name in ID_COLUMNS
               if getattr(self, name) is not None}
        return Boxes(self.frame[index], self.xyxy[index], self.conf[index], self.cls[index],
                     data={k: v[index] for k, v in self.data.items()}, **ids)

    def sorted(self, *keys: str) -> "Boxes":
        """Stably sorted by the named columns, first key most significant (default ``frame``)."""
        keys = keys or ("frame",)
        cols = [self.column(k) for k in reversed(keys)]
        return self[np.lexsort(cols)] if len(self) else self

    def column(self, name: str) -> np.ndarray:
        """A column by name (core, id or ``data``); KeyError when absent."""
        if name in self.data:
            return self.data[name]
        value = getattr(self, name, None) if name in _DTYPES else None
        if value is None:
            raise KeyError(f"these boxes have no column {name!r}")
        return value

    @property
    def height(self) -> np.ndarray:
        """Box heights in pixels (float32, N)."""
        return self.xyxy[:, 3] - self.xyxy[:, 1]

    @property
    def center(self) -> np.ndarray:
        """Box centres in pixels (float32, N x 2)."""
        return (self.xyxy[:, :2] + self.xyxy[:, 2:]) / 2

    @property
    def xywh(self) -> np.ndarray:
        """Centre x, centre y, width, height (float32, N x 4)."""
        return np.concatenate([self.center, self.xyxy[:, 2:] - self.xyxy[:, :2]], axis=1)


def _column(name: str, value: Any, n: int) -> np.ndarray:
    arr = np.asarray(value)
    if arr.shape != (n,):
        raise ValueError(f"Boxes.{name} must have shape ({n},), got {arr.shape}")
    dtype = _DTYPES[name]
    if np.issubdtype(dtype, np.integer) and arr.size and not np.issubdtype(arr.dtype, np.integer) \
            and not np.issubdtype(arr.dtype, np.bool_):
        as_int = arr.astype(dtype)
        if not np.array_equal(as_int, arr):
            raise ValueError(f"Boxes.{name} must hold whole numbers")
        return as_int
    return arr.astype(dtype, copy=False)
