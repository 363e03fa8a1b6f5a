"""``convert()``: a plate and a model in, a swapped plate (and matte) out. The library entry point of
``vfxswap convert`` and of host integrations."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np

from .. import __version__
from ..atomic import locked, open_for_append, replace_atomically, write_error, write_image
from ..accel.runtime import open_runner
from ..config import ConvertConfig
from ..errors import ConfigError, MediaError, OutputError, ShortMediaError
from ..extract import proxy_scale
from ..faces.align import frame_from_face
from ..faces.analysis import open_analyzer
from ..faces.identity import reference_embeddings
from ..faces.smooth import TrackSmoother
from ..io import format_frames, open_source, open_writer, parse_frames
from ..io.writer import is_movie_path, settings_file
from ..types import Frame, FrameWork
from .device_path import DeviceSwap, device_path_wanted
from .pipeline import Stage, run_pipeline
from .selection import FrameSelection
from .stages import ColorPath, Compositor, DetectEvery, FaceFinder, SwapBatches, align

ProgressFn = Callable[[int, int], None]
logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class ConvertReport:
    """What a conversion did. ``backend_reason``: why that runner was chosen; ``compositor``: ``opencv``
    or ``torch`` (the device path); ``stage_seconds``: busy time of each pipeline stage."""

    output: str
    frames: int
    frames_swapped: int
    faces_swapped: int
    backend: str
    seconds: float
    stage_seconds: dict[str, float]
    backend_reason: str = ""
    compositor: str = "opencv"

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def frame_number(frame: Frame, kind: str, start_frame: int) -> int:
    """The number a frame has in farm ranges and sequence outputs: a movie's frame i is
    ``start_frame + i``; a sequence keeps its file numbers. ``Frame.index`` itself stays the source's."""
    return start_frame + frame.index if kind == "movie" else frame.index


class SwapModel:
    """A trained model opened for converting: its swap runner and the face analyzer; a context
    manager. Open it once and convert many clips or batches (host integrations keep one).

    Args:
        model_dir: a trained model folder.
        config: converter settings; ``backend``, ``device``, ``precision``, ``batch``, ``face_backend``
            and ``face_models`` are used here, the rest per clip.

    Raises:
        ModelError, ConfigError, EngineError: see :func:`convert`.
    """

    def __init__(self, model_dir: str | os.PathLike, config: ConvertConfig = ConvertConfig()) -> None:
        self.runner = open_runner(model_dir, backend=config.backend, device=config.device, batch=config.batch,
                                  precision=config.precision)
        self.card = self.runner.card
        try:
            self.analyzer = open_analyzer(config.face_backend, **config.extract_view().analyzer_options())
        except BaseException:
            self.runner.close()
            raise

    def __enter__(self) -> SwapModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.runner.close()

    def colors(self, config: ConvertConfig) -> ColorPath:
        """The colour path of ``config`` into this model's colour space."""
        return ColorPath(ocio_config=config.ocio_config, input_colorspace=config.input_colorspace,
                         model_space=self.card.color_space)

    @staticmethod
    def smoother(config: ConvertConfig) -> TrackSmoother[FrameWork]:
        return TrackSmoother(config.smooth, faces_of=lambda w: w.faces,
                             with_faces=lambda w, faces: dataclasses.replace(w, faces=tuple(faces)),
                             largest_only=config.faces == "largest")

    def stages(self, config: ConvertConfig, keyframe: Callable[[int], bool], smoother: TrackSmoother,
               colors: ColorPath, *, references: np.ndarray | None = None, want_matte: bool = False) -> list[Stage]:
        """The converter's stages for one clip (they keep per-clip state: build them per clip).

        Args:
            keyframe: whether a frame number gets a detection.
            colors: the clip's colour path (:meth:`colors`), shared with whatever makes the display images.
            references: ``(R, D)`` identity embeddings of the person to swap (``--faces reference``).
        """
        finding = [
            Stage("detect", DetectEvery(self.analyzer, keyframe, proxy_scale(config.extract_view(), self.analyzer))),
            Stage("track", FaceFinder(self.analyzer, config, references)),
            Stage("smooth", smoother, "iter"),
        ]
        if device_path_wanted(config.compositor, self.runner):
            return [*finding, Stage("device", DeviceSwap(self.runner, config, self.card, colors,
                                                         want_matte=want_matte), "iter")]
        return [
            *finding,
            Stage("align", lambda w: align(w, self.card, colors)),
            Stage("swap", SwapBatches(self.runner, config.batch), "iter"),
            Stage("composite", Compositor(config, self.card, colors, want_matte=want_matte)),
        ]


def swap_frames(frames: Iterable[Frame], model: SwapModel, config: ConvertConfig = ConvertConfig(), *,
                references: np.ndarray | None = None) -> list[FrameWork]:
    """Swap the faces of in-memory frames of one clip, in order (tracking and smoothing run across them).

    For hosts that hold images rather than files (ComfyUI batches). ``config``'s output settings
    (codec, frames, matte paths...) do not apply.

    Args:
        frames: the clip's frames (``Frame.image`` ``(H, W, 3)`` uint8/uint16/float32).
        model: an open :class:`SwapModel`.
        references: ``(R, D)`` embeddings of the person to swap (see
            :func:`~vfxswap.faces.identity.reference_embeddings`), needed for ``faces="reference"``.

    Returns:
        One :class:`FrameWork` per frame: ``result`` the swapped image (same dtype), ``matte`` the
        ``(H, W)`` float32 blend mask (``None`` where nothing was swapped), ``swaps`` the faces.
    """
    colors = model.colors(config)
    smoother = model.smoother(config)
    works = (FrameWork(frame=f, display=colors.display(f), number=i) for i, f in enumerate(frames))
    stages = model.stages(config, lambda n: n % config.every == 0, smoother, colors, references=references,
                          want_matte=True)
    out: list[FrameWork] = []
    run_pipeline(works, stages, out.append)
    return out


def _clip_frames(requested: list[int] | None, src, info, config: ConvertConfig, source: str) -> list[int] | None:
    """``--frames`` cut to the frames the clip has (with a warning naming those outside it).

    Raises:
        ConfigError: no requested frame is in the clip (the message says which frames it has).
    """
    if requested is None:
        return None
    if info.kind == "movie":
        if info.frame_count <= 0:  # a stream that does not say its length
            return requested
        first, last = config.start_frame, config.start_frame + info.frame_count - 1
        numbering = f" (numbered from --start-frame {config.start_frame})"
    else:
        held = src.numbers
        first, last = held[0], held[-1]
        numbering = ""
    inside = [n for n in requested if first <= n <= last]
    outside = format_frames(n for n in requested if not first <= n <= last)
    if not inside:
        raise ConfigError(f"--frames {config.frames} names no frame of {source}, which has frames "
                          f"{first}-{last}{numbering}; pick frames in that range")
    if outside:
        logger.warning("--frames %s: frames %s are outside %s, which has frames %d-%d%s; converting the %d inside",
                       config.frames, outside, source, first, last, numbering, len(inside))
    return inside


def _selection(config: ConvertConfig, numbers: list[int] | None, info, writer,
               lookahead: int) -> tuple[FrameSelection, int]:
    """The frames to write (``numbers``, the clip's ``--frames``, minus, with ``--skip-existing``,
    those already written) and how many there are."""
    first = config.start_frame if info.kind == "movie" else info.first_frame
    skip = config.skip_existing and hasattr(writer, "exists")
    if numbers is None and not skip:
        return FrameSelection(None, first=first, every=config.every, lookahead=lookahead,
                              color_window=config.color_smooth), info.frame_count
    requested = set(numbers) if numbers is not None else None
    offset = first - (0 if info.kind == "movie" else info.first_frame)  # number -> Frame.index

    def wanted(n: int) -> bool:
        return (requested is None or n in requested) and not (skip and writer.exists(n - offset))

    candidates = numbers if numbers is not None else range(first, first + info.frame_count)
    selection = FrameSelection(wanted, first=first, every=config.every, lookahead=lookahead,
                               color_window=config.color_smooth,
                               first_wanted=numbers[0] if numbers else None,
                               last_wanted=numbers[-1] if numbers else None)
    return selection, sum(1 for n in candidates if wanted(n))


def _works(src, info, selection: FrameSelection, start_frame: int, colors: ColorPath,
           short: list[ShortMediaError]) -> Iterator[FrameWork]:
    """The source's frames that ``selection`` reads, as FrameWork; stops after the last one needed.
    A movie that stops decoding before its container's frame count ends the frames normally (every
    frame decoded goes through) and leaves its error in ``short``."""
    offset = start_frame if info.kind == "movie" else 0  # number - Frame.index
    try:
        for frame in src.frames(start=selection.first_read - offset):
            n = frame_number(frame, info.kind, start_frame)
            if selection.past_end(n):
                return
            if selection.read(n):
                yield FrameWork(frame=frame, display=colors.display(frame), number=n,
                                to_write=selection.write(n), to_swap=selection.swap(n))
    except ShortMediaError as exc:
        short.append(exc)


def _check_short(exc: ShortMediaError, output, written: int, allow: bool) -> None:
    """Fail on a short source unless ``allow`` (``--allow-short``), saying what became of the output.

    Raises:
        MediaError: raised inside the writers' block, so a movie's temp file is discarded (a sequence's
            frames, each already complete, stay).
    """
    frames = f"{written} frame{'' if written == 1 else 's'} converted"
    if allow:
        logger.warning("%s; kept the %s in %s (--allow-short)", exc, frames, output)
        return
    if is_movie_path(str(output)):
        raise MediaError(f"{exc}; {output} was not saved (pass --allow-short to keep the {frames})") from None
    raise MediaError(f"{exc}; the {frames} are in {output} (pass --allow-short to accept the short clip)") from None


def convert(source: str | os.PathLike, model_dir: str | os.PathLike, output: str | os.PathLike,
            config: ConvertConfig = ConvertConfig(), *, progress: ProgressFn | None = None) -> ConvertReport:
    """Swap the faces of a plate with a trained model.

    Args:
        source: movie, image-sequence pattern or folder.
        model_dir: a trained model folder.
        output: movie path or image-sequence pattern (``out.####.exr``).
        config: converter settings.
        progress: ``progress(frames_done, frames_total)`` after each written frame.

    Raises:
        MediaError, ModelError, ConfigError, OutputError, EngineError: one-line errors (see ``cli.py``);
            a movie that decodes fewer frames than its container says is a MediaError after the
            frames that decode are converted, unless ``config.allow_short``.
    """
    start = time.perf_counter()
    if isinstance(config.frames, str) and not config.frames.strip():
        raise ConfigError("--frames is empty; name the frames to convert (e.g. 1001-1100) or leave it out "
                          "to convert every frame")
    requested = parse_frames(config.frames) if config.frames is not None else None
    model = SwapModel(model_dir, config)
    try:
        colors = model.colors(config)  # a bad OCIO config or colour space fails before anything is opened
        references = reference_embeddings(model.analyzer, config.reference) if config.reference else None
    except BaseException:
        model.close()
        raise
    counts = {"frames": 0, "swapped": 0, "faces": 0}
    short: list[ShortMediaError] = []
    with model, open_source(source) as src, contextlib.ExitStack() as outputs:
        info = src.info
        numbers = _clip_frames(requested, src, info, config, str(source))
        resolved = dataclasses.replace(config, frames=format_frames(numbers)) if numbers is not None else config
        patches = outputs.enter_context(PatchWriter(Path(config.patches))) if config.patches else None
        writer = outputs.enter_context(open_writer(output, info, alpha=config.alpha,
                                                   **_writer_options(output, info, str(source), config)))
        smoother = model.smoother(config)
        selection, total = _selection(config, numbers, info, writer, smoother.lookahead)
        works = _works(src, info, selection, config.start_frame, colors, short)
        stages = model.stages(config, selection.keyframe, smoother, colors, references=references,
                              want_matte=config.matte is not None or config.alpha)
        float_matte = bool(config.matte) and str(config.matte).lower().endswith(".exr")
        matte_writer = (outputs.enter_context(open_writer(config.matte, dataclasses.replace(info, has_audio=False),
                                                          **_writer_options(config.matte, info, None, config)))
                        if config.matte else None)

        def sink(work: FrameWork) -> None:
            if not work.to_write:
                return
            writer.write(dataclasses.replace(work.frame, image=work.result,
                                             alpha=work.matte if config.alpha else None))
            if patches is not None:
                patches.write(work, work.number)
            if matte_writer is not None:
                matte_writer.write(_matte_frame(work, float_matte))
            counts["frames"] += 1
            counts["swapped"] += bool(work.swaps)
            counts["faces"] += len(work.swaps)
            if progress is not None:
                progress(counts["frames"], total)

        timings = run_pipeline(works, stages, sink)
        if short:
            _check_short(short[0], output, counts["frames"], config.allow_short)
    _write_settings(output, source, model_dir, resolved, model.card, retimed=getattr(writer, "nudged", []))
    return ConvertReport(output=str(output), frames=counts["frames"], frames_swapped=counts["swapped"],
                         faces_swapped=counts["faces"], backend=model.runner.name, seconds=time.perf_counter() - start,
                         stage_seconds={k: round(v, 3) for k, v in timings.items()},
                         backend_reason=getattr(model.runner, "reason", ""),
                         compositor="torch" if device_path_wanted(config.compositor, model.runner) else "opencv")


def locked_for_update(path: Path) -> contextlib.AbstractContextManager[None]:
    """An exclusive lock for updating ``path`` (on ``.NAME.lock`` beside it), so processes writing
    one output (overlapping farm chunks) take turns."""
    return locked(path.parent / f".{path.name}.lock")


class PatchWriter:
    """``--patches DIR``: each swapped face as an RGBA PNG (model output + learned mask as alpha, the
    model's crop) and a ``patches.jsonl`` line with its frame number, track and ``frame_from_face``
    (crop pixels -> frame pixels), so a compositor can place it with its own tools; a context manager.

    Lines are appended as frames are written (a symlink at ``patches.jsonl`` is refused, never written
    through); :meth:`close` rewrites the index atomically with one line per patch file, the last
    written, in frame order, so a rerun into the same folder replaces its lines. Processes sharing
    the folder take turns on a lock.
    """

    def __init__(self, folder: Path) -> None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot write patches to {folder}: {exc.strerror}") from None
        self.folder = folder
        self.index = folder / "patches.jsonl"
        with locked_for_update(self.index):
            open_for_append(self.index).close()  # fails now, before any frame is converted

    def __enter__(self) -> PatchWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def write(self, work: FrameWork, number: int) -> None:
        lines = []
        for s in work.swaps:
            track = s.aligned.face.track_id
            name = f"{number:08d}_t{track if track is not None else 0:02d}.png"
            rgba = np.dstack([s.swapped, s.mask[..., None]])
            bgra = cv2.cvtColor((np.clip(rgba, 0, 1) * 65535 + 0.5).astype(np.uint16), cv2.COLOR_RGBA2BGRA)
            write_image(self.folder / name, bgra)
            lines.append(json.dumps({"frame": number, "track": track, "patch": name, "size": s.aligned.size,
                                     "frame_from_face": frame_from_face(s.aligned.face_from_frame).round(8).tolist()}))
        if lines:
            with locked_for_update(self.index), open_for_append(self.index) as index:
                try:
                    index.write("\n".join(lines) + "\n")
                    index.flush()
                except OSError as exc:
                    raise write_error(self.index, exc) from None

    def close(self) -> None:
        """Rewrite the index with one line per patch (idempotent)."""
        with locked_for_update(self.index):
            try:
                text = self.index.read_text(encoding="utf-8") if not self.index.is_symlink() else ""
            except (OSError, UnicodeDecodeError) as exc:
                raise write_error(self.index, exc) from None
            compact = _one_line_per_patch(text, self.index)
            if compact != text:
                replace_atomically(self.index, lambda tmp: tmp.write_text(compact, encoding="utf-8"), durable=False)


def _one_line_per_patch(text: str, path: Path) -> str:
    """``patches.jsonl`` text with only the last line of each patch file, ordered by frame then name;
    lines that do not parse (cut by a kill) are dropped with a warning."""
    records: dict[str, tuple[int, str]] = {}
    for line in text.splitlines():
        try:
            record = json.loads(line)
            key, frame = str(record["patch"]), int(record["frame"])
        except (ValueError, KeyError, TypeError):
            if line.strip():
                logger.warning("dropping a damaged line of %s: %.60s", path, line)
            continue
        records[key] = (frame, line)
    ordered = sorted(records.items(), key=lambda item: (item[1][0], item[0]))
    return "".join(line + "\n" for _, (_, line) in ordered)


def _writer_options(path, info, source: str | None, config: ConvertConfig) -> dict[str, object]:
    """The options of :func:`open_writer` that apply to ``path``; a sequence written from a movie is
    numbered from ``start_frame`` by the writer."""
    if is_movie_path(str(path)):
        return {"source": source if info.kind == "movie" and info.has_audio else None, "codec": config.codec}
    return {"skip_existing": config.skip_existing,
            "start_frame": config.start_frame if info.kind == "movie" else None}


def _matte_frame(work: FrameWork, as_float: bool) -> Frame:
    """The blend mask as a grey frame of colour space ``data`` (stored without colour conversion):
    float32 mask values when ``as_float`` (EXR mattes), else at the plate's depth (uint8/uint16
    code values for 8/16-bit plates)."""
    image = work.frame.image
    alpha = work.matte if work.matte is not None else np.zeros(image.shape[:2], np.float32)
    if image.dtype != np.float32 and not as_float:
        top = np.iinfo(image.dtype).max
        alpha = (np.clip(alpha, 0.0, 1.0) * top + 0.5).astype(image.dtype)
    return dataclasses.replace(work.frame, image=np.repeat(alpha[..., None], 3, axis=2), color_space="data")


# Settings that differ between the chunks of one render (``--frames`` and how each chunk ran).
_CHUNK_SETTINGS = ("frames", "skip_existing", "allow_short")


def _write_settings(output, source, model_dir, config: ConvertConfig, card,
                    retimed: list[tuple[int, int, int]] = ()) -> None:
    """The resolved settings beside the output (``NAME.vfxswap.json``), written atomically; a movie's
    ``retimed`` lists ``[frame index, pts given, pts written]`` of frames moved one tick later to keep
    time increasing (duplicate timestamps).

    A sequence's file is shared by the chunks that render it (``--frames`` ranges, possibly at once):
    under a lock, ``frames`` becomes the union with those of a file already there from the same
    render (same source, model and other settings); a different render replaces it."""
    path = settings_file(output)
    data = json.loads(json.dumps({"vfxswap": __version__, "source": str(source), "model": str(model_dir),
                                  "card": dataclasses.asdict(card), "settings": dataclasses.asdict(config),
                                  **({"retimed": [list(r) for r in retimed]} if retimed else {})}))

    def write() -> None:
        text = json.dumps(data, indent=2) + "\n"
        replace_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), durable=False)

    if is_movie_path(str(output)):
        write()
        return
    with locked_for_update(path):
        data["settings"]["frames"] = _merged_frames(path, data)
        write()


def _merged_frames(path: Path, data: dict) -> str | None:
    """``data``'s ``frames`` joined to those of the settings at ``path`` when both describe one render
    (``None``: every frame)."""
    frames = data["settings"]["frames"]
    try:
        old = json.loads(path.read_text(encoding="utf-8")) if not path.is_symlink() else None
    except (OSError, ValueError):
        return frames
    if not isinstance(old, dict) or not isinstance(old.get("settings"), dict):
        return frames

    def render(d: dict) -> dict:
        return {"source": d.get("source"), "model": d.get("model"), "card": d.get("card"),
                "settings": {k: v for k, v in d["settings"].items() if k not in _CHUNK_SETTINGS}}

    if render(old) != render(data):
        return frames
    before = old["settings"].get("frames")
    if frames is None or before is None:
        return None
    try:
        return format_frames(set(parse_frames(frames)) | set(parse_frames(before)))
    except ConfigError:
        return frames
