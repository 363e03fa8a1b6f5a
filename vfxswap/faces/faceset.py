"""The on-disk faceset (DESIGN.md section 4).

A folder of aligned crops ``faces/NNNNNNNN.png`` plus ``faceset.jsonl``, one JSON record per face.
A crop is written to a temporary name and renamed into place before its record is appended; the
append of a frame's records (one ``write``) is the commit point. A last line without its newline is
an append that was cut short by a kill: it is dropped when the faceset is opened for writing, so an
interrupted extract resumes without duplicates. Any other line that does not parse (or holds
non-finite numbers) is corruption and is reported with its line number.

One process writes a faceset at a time: :class:`FacesetWriter` holds an exclusive ``flock`` on
``faceset.lock`` in the folder for its lifetime (the kernel releases it when the process dies), and a
second writer is refused. ``faceset.jsonl`` is never written through a symlink.
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..atomic import acquire_lock, is_temp_name, open_for_append, remove_quietly, write_error, write_image
from ..errors import ConfigError, FacesetError, OutputError, one_line
from ..io.png import png_problem

RECORDS_FILE = "faceset.jsonl"
LOCK_FILE = "faceset.lock"
FACES_DIR = "faces"
FORMAT_VERSION = 1
# zlib level 1 with the PNG "up" filter: 3.5 ms per 256 px crop against 4.6 ms for OpenCV's default
# filter choice, for files within 2 % of the same size (measured with OpenCV 5.0).
_PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_UP]


@dataclasses.dataclass(frozen=True, repr=False)
class FaceRecord:
    """One face of a faceset.

    Attributes:
        index: number of the crop (``faces/{index:08d}.png``).
        source: the extract input (movie path, sequence pattern or folder), absolute.
        file: the image file the face came from (sequences and stills), else ``None``.
        frame: frame number in the source (movie: from 0; sequence: the file's number).
        track: track id within the source.
        box: ``(x0, y0, x1, y1)`` detector-style box, source pixels.
        landmarks: ``(68, 2)`` float32 iBUG-300W landmarks, source pixels.
        face_from_frame: ``(2, 3)`` affine from source pixels to crop pixels.
        size: crop side in pixels.
        face_type: ``half``, ``full``, ``whole_face`` or ``head``.
        embedding: ``(D,)`` L2-normalised identity embedding of the face's track, or ``None``.
        sharpness: variance of the Laplacian of the grey crop (higher is sharper).
        score: detector score of the track's last detection.
        backend: face-analysis backend that produced it.
    """

    index: int
    source: str
    frame: int
    track: int | None
    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    face_from_frame: np.ndarray
    size: int
    face_type: str
    embedding: np.ndarray | None
    sharpness: float
    score: float
    backend: str
    file: str | None = None

    @property
    def crop_name(self) -> str:
        return f"{FACES_DIR}/{self.index:08d}.png"

    def to_json(self) -> str:
        d: dict[str, Any] = {
            "v": FORMAT_VERSION, "index": self.index, "crop": self.crop_name, "source": self.source,
            "file": self.file, "frame": self.frame, "track": self.track,
            "box": [round(float(v), 2) for v in self.box],
            "landmarks": np.round(self.landmarks.astype(np.float64), 2).tolist(),
            "face_from_frame": np.round(self.face_from_frame, 8).tolist(),
            "size": self.size, "face_type": self.face_type,
            "embedding": None if self.embedding is None else np.round(self.embedding.astype(np.float64), 6).tolist(),
            "sharpness": round(float(self.sharpness), 3), "score": round(float(self.score), 4),
            "backend": self.backend,
        }
        return json.dumps(d, separators=(",", ":"))

    @classmethod
    def from_json(cls, line: str) -> FaceRecord:
        d = json.loads(line)
        if not isinstance(d, dict):
            raise ValueError("a record must be a JSON object")
        if d.get("v", 1) > FORMAT_VERSION:
            raise ValueError(f"record format v{d['v']} is newer than this vfxswap reads (v{FORMAT_VERSION}); upgrade vfxswap")
        landmarks = np.asarray(d["landmarks"], dtype=np.float32)
        m = np.asarray(d["face_from_frame"], dtype=np.float64)
        box = np.asarray(d["box"], dtype=np.float64)
        emb = d.get("embedding")
        embedding = None if emb is None else np.asarray(emb, dtype=np.float32)
        if landmarks.shape != (68, 2) or m.shape != (2, 3) or box.shape != (4,):
            raise ValueError(f"landmarks {landmarks.shape} / face_from_frame {m.shape} / box {box.shape} "
                             f"have the wrong shape")
        for name, values in (("landmarks", landmarks), ("face_from_frame", m), ("box", box), ("embedding", embedding)):
            if values is not None and not np.isfinite(values).all():
                raise ValueError(f"its {name} holds NaN or infinite numbers")
        return cls(index=int(d["index"]), source=str(d["source"]), file=d.get("file"), frame=int(d["frame"]),
                   track=d.get("track"), box=tuple(float(v) for v in box), landmarks=landmarks,
                   face_from_frame=m, size=int(d["size"]), face_type=str(d["face_type"]), embedding=embedding,
                   sharpness=float(d["sharpness"]), score=float(d["score"]), backend=str(d.get("backend", "")))

    def __repr__(self) -> str:
        return f"FaceRecord(index={self.index}, frame={self.frame}, track={self.track}, source={self.source!r})"


def _parse_lines(path: Path, text: str) -> tuple[list[FaceRecord], int]:
    """Records of a faceset.jsonl text and the byte length of its committed (newline-ended) part."""
    committed = text.rfind("\n") + 1
    records = []
    for number, line in enumerate(text[:committed].splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(FaceRecord.from_json(line))
        except (ValueError, KeyError, TypeError) as exc:
            raise FacesetError(f"{path} line {number} is corrupt ({exc}); "
                               f"remove or repair that line, the other records are intact") from None
    return records, len(text[:committed].encode("utf-8"))


def read_faceset(folder: str | os.PathLike) -> list[FaceRecord]:
    """All committed records of a faceset (a cut-short last line is ignored).

    Raises:
        FacesetError: no faceset at ``folder``, or a corrupt record.
    """
    path = Path(folder) / RECORDS_FILE
    if not path.is_file():
        raise FacesetError(f"no faceset at {folder}: {RECORDS_FILE} is missing (make one with `vfxswap extract`)")
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise FacesetError(f"cannot read {path}: {exc}") from None
    return _parse_lines(path, text)[0]


def read_crop(path: Path, size: int) -> tuple[np.ndarray | None, str | None]:
    """A crop file as ``((size, size, 3) uint8 BGR, None)``, or ``(None, why it is not readable)``.

    The PNG's chunks are checked before OpenCV decodes it (its libpng prints on stderr otherwise).
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None, "missing"
    except OSError as exc:
        return None, f"unreadable ({exc.strerror})"
    problem = png_problem(data)
    if problem is not None:
        return None, problem.removeprefix("it is ")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        return None, "not decodable"
    if image.shape[:2] != (size, size):
        return None, f"{image.shape[1]}x{image.shape[0]} px instead of {size}x{size}"
    return image, None


def crop_problem(path: Path, size: int) -> str | None:
    """Why the crop file ``path`` is not a readable ``(size, size, 3)`` PNG, or ``None`` if it is."""
    return read_crop(path, size)[1]


def faceset_summary(folder: str | os.PathLike) -> dict[str, Any]:
    """A JSON-able summary: counts per source and track, crop size/type, sharpness range, and damage.

    Damage is ``duplicate_indices`` (crop numbers claimed by more than one record), ``missing_crops``
    and ``unreadable_crops`` (every crop is decoded: zero-byte, truncated, random-bytes or
    wrong-size files count); ``damaged`` is true when any is non-zero and
    ``problems`` names up to 10 of them.
    """
    records = read_faceset(folder)
    root = Path(folder)
    sharp = np.array([r.sharpness for r in records]) if records else np.zeros(0)
    claims = Counter(r.index for r in records)
    duplicates = sorted(i for i, n in claims.items() if n > 1)
    unique = list({r.index: r for r in records}.values())
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:  # OpenCV decodes without the GIL
        found = list(pool.map(lambda r: crop_problem(root / r.crop_name, r.size), unique))
    bad = [(r, why) for r, why in zip(unique, found) if why is not None]
    problems = [f"index {i} is claimed by {claims[i]} records" for i in duplicates]
    problems += [f"{r.crop_name} is {why}" for r, why in bad]
    missing = sum(why == "missing" for _, why in bad)
    return {
        "path": str(root),
        "faces": len(records),
        "sources": dict(Counter(r.source for r in records)),
        "tracks": len({(r.source, r.track) for r in records}),
        "frames": len({(r.source, r.frame) for r in records}),
        "sizes": sorted({r.size for r in records}),
        "face_types": sorted({r.face_type for r in records}),
        "backends": sorted({r.backend for r in records}),
        "sharpness": ({"min": float(sharp.min()), "median": float(np.median(sharp)), "max": float(sharp.max())}
                      if len(sharp) else None),
        "missing_crops": missing,
        "unreadable_crops": len(bad) - missing,
        "duplicate_indices": len(duplicates),
        "damaged": bool(bad or duplicates),
        "problems": problems[:10],
    }


class FacesetWriter:
    """Appends faces to a faceset folder, crash-safely.

    Args:
        folder: the faceset folder (created if missing).
        resume: continue a faceset that already holds faces; without it a non-empty faceset is refused
            so that nothing already written is lost.
    """

    def __init__(self, folder: str | os.PathLike, *, resume: bool = False) -> None:
        self.root = Path(folder)
        self.records_path = self.root / RECORDS_FILE
        try:
            (self.root / FACES_DIR).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create faceset folder {self.root}: {exc.strerror}") from None
        self._lock = acquire_lock(self.root / LOCK_FILE, busy=f"another process is writing the faceset "
                                  f"{self.root}: wait for it to finish, or extract into another folder")
        self._file = None
        try:
            self._remove_temp_crops()
            self._file = open_for_append(self.records_path)  # refuses a symlink
            self.records = self._load(resume)
        except BaseException:
            self.close()
            raise
        self.next_index = max((r.index for r in self.records), default=-1) + 1

    def _remove_temp_crops(self) -> None:
        """Delete the temp crops a killed writer left (we hold the lock: no other writer is using them)."""
        with os.scandir(self.root / FACES_DIR) as entries:
            for entry in entries:
                if is_temp_name(entry.name):
                    remove_quietly(entry.path)

    def _load(self, resume: bool) -> list[FaceRecord]:
        """The committed records; a cut-short last append is dropped."""
        try:
            data = self.records_path.read_bytes()  # the file open_for_append checked; ours while locked
            text = data.decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise FacesetError(f"cannot read {self.records_path}: {one_line(exc)}") from None
        records, committed = _parse_lines(self.records_path, text)
        if records and not resume:
            raise OutputError(f"{self.root} already holds {len(records)} faces: pass --resume to "
                              f"continue it, or choose a new output folder")
        if committed < len(data):  # drop an append cut short by a kill
            os.ftruncate(self._file.fileno(), committed)
        return records

    def last_frame(self, source: str) -> int | None:
        """Highest frame number already committed for ``source``."""
        frames = [r.frame for r in self.records if r.source == source]
        return max(frames) if frames else None

    def max_track(self, source: str) -> int:
        """Highest track id already used for ``source`` (-1 if none)."""
        return max((r.track for r in self.records if r.source == source and r.track is not None), default=-1)

    def commit(self, faces: list[tuple[np.ndarray, FaceRecord]]) -> None:
        """Write crops (``(S, S, 3)`` uint8 RGB) and then append their records in one write.

        Raises:
            OutputError: a write failed (disk full...); the records file is cut back to what it held,
                so a failed append never leaves part of a frame committed.
        """
        if not faces:
            return
        for crop, record in faces:
            write_image(self.root / record.crop_name, cv2.cvtColor(crop, cv2.COLOR_RGB2BGR), _PNG_PARAMS)
        fd = self._file.fileno()  # unbuffered writes: nothing is left in a buffer after an error
        data = memoryview("".join(r.to_json() + "\n" for _, r in faces).encode("utf-8"))
        size = os.fstat(fd).st_size
        try:
            while data:
                data = data[os.write(fd, data):]
        except OSError as exc:
            try:
                os.ftruncate(fd, size)
            except OSError:
                pass
            raise write_error(self.records_path, exc) from None
        self.records.extend(r for _, r in faces)

    def close(self) -> None:
        """Close the records file and release the lock (idempotent)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._lock is not None:
            os.close(self._lock)  # releases the flock
            self._lock = None

    def __enter__(self) -> FacesetWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def is_held_out(index: int, every: int) -> bool:
    """Whether face ``index`` of a faceset is in the held-out split that training leaves out and
    ``vfxswap eval`` reconstructs: ``index % every == every - 1`` (``every=0``: none held out)."""
    if every < 0:
        raise ConfigError(f"--holdout must be >= 0, got {every}")
    return every > 0 and index % every == every - 1
