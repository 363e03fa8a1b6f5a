"""``convert()``: a plate and a model in, a swapped plate (and matte) out. The library entry point of
``vfxswap convert`` and of host integrations."""

from __future__ import annotations

import dataclasses
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from .. import __version__
from ..atomic import replace_atomically
from ..accel.runtime import open_runner
from ..config import ConvertConfig
from ..errors import OutputError
from ..extract import proxy_scale
from ..faces.align import frame_from_face
from ..faces.analysis import open_analyzer
from ..faces.identity import reference_embeddings
from ..faces.smooth import TrackSmoother
from ..io import open_source, open_writer, parse_frames, to_display_uint8
from ..io.writer import is_movie_path
from ..types import Frame, FrameWork
from .pipeline import Stage, run_pipeline
from .stages import Compositor, DetectEvery, FaceFinder, SwapBatches, align

ProgressFn = Callable[[int, int], None]


@dataclasses.dataclass(frozen=True)
class ConvertReport:
    """What a conversion did. ``stage_seconds``: busy time of each pipeline stage."""

    output: str
    frames: int
    frames_swapped: int
    faces_swapped: int
    backend: str
    seconds: float
    stage_seconds: dict[str, float]

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0


def frame_number(frame: Frame, kind: str, start_frame: int) -> int:
    """The number a frame has in farm ranges and sequence outputs: a movie's frame i is
    ``start_frame + i``; a sequence keeps its file numbers. ``Frame.index`` itself stays the source's."""
    return start_frame + frame.index if kind == "movie" else frame.index


def _settings_file(output: str | os.PathLike) -> Path:
    """``swap.mp4`` -> ``swap.vfxswap.json``; ``out.####.exr`` -> ``out.vfxswap.json``."""
    out = Path(output)
    stem = out.stem if is_movie_path(str(out)) else out.name.split("%")[0].split("#")[0].split("@")[0].rstrip("._")
    return out.parent / f"{stem or 'output'}.vfxswap.json"


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
        MediaError, ModelError, ConfigError, OutputError, EngineError: one-line errors (see ``cli.py``).
    """
    start = time.perf_counter()
    runner = open_runner(model_dir, backend=config.backend, device=config.device)
    card = runner.card
    analyzer = open_analyzer(config.face_backend, **config.extract_view().analyzer_options())
    references = reference_embeddings(analyzer, config.reference) if config.reference else None
    wanted = set(parse_frames(config.frames)) if config.frames else None
    counts = {"frames": 0, "swapped": 0, "faces": 0}
    patches = PatchWriter(Path(config.patches)) if config.patches else None
    with runner, open_source(source) as src:
        info = src.info
        total = len(wanted) if wanted is not None else info.frame_count
        frames = iter(src.frames())
        if wanted is not None:
            frames = (f for f in frames if frame_number(f, info.kind, config.start_frame) in wanted)
        works = (FrameWork(frame=f, display=to_display_uint8(f)) for f in frames)
        smoother = TrackSmoother(config.smooth, faces_of=lambda w: w.faces,
                                 with_faces=lambda w, faces: dataclasses.replace(w, faces=tuple(faces)))
        stages = [
            Stage("detect", DetectEvery(analyzer, config.every, proxy_scale(config.extract_view(), analyzer))),
            Stage("track", FaceFinder(analyzer, config, references)),
            Stage("smooth", smoother, "iter"),
            Stage("align", lambda w: align(w, card)),
            Stage("swap", SwapBatches(runner, config.batch), "iter"),
            Stage("composite", Compositor(config, card, want_matte=config.matte is not None)),
        ]
        with open_writer(output, info, **_writer_options(output, info, str(source), config)) as writer:
            if config.skip_existing and hasattr(writer, "exists"):
                works = (w for w in works if not writer.exists(w.frame.index))
            matte_writer = (open_writer(config.matte, dataclasses.replace(info, has_audio=False),
                                        **_writer_options(config.matte, info, None, config))
                            if config.matte else None)
            try:
                def sink(work: FrameWork) -> None:
                    writer.write(dataclasses.replace(work.frame, image=work.result))
                    if patches is not None:
                        patches.write(work, frame_number(work.frame, info.kind, config.start_frame))
                    if matte_writer is not None:
                        matte_writer.write(dataclasses.replace(work.frame, image=_matte_image(work)))
                    counts["frames"] += 1
                    counts["swapped"] += bool(work.swaps)
                    counts["faces"] += len(work.swaps)
                    if progress is not None:
                        progress(counts["frames"], total)

                timings = run_pipeline(works, stages, sink)
            finally:
                if matte_writer is not None:
                    matte_writer.close()
                if patches is not None:
                    patches.close()
    _write_settings(output, source, model_dir, config, card)
    return ConvertReport(output=str(output), frames=counts["frames"], frames_swapped=counts["swapped"],
                         faces_swapped=counts["faces"], backend=runner.name, seconds=time.perf_counter() - start,
                         stage_seconds={k: round(v, 3) for k, v in timings.items()})


class PatchWriter:
    """``--patches DIR``: each swapped face as an RGBA PNG (model output + learned mask as alpha, the
    model's crop) and a ``patches.jsonl`` line with its frame number, track and ``frame_from_face``
    (crop pixels -> frame pixels), so a compositor can place it with its own tools."""

    def __init__(self, folder: Path) -> None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self.folder = folder
            self._index = open(folder / "patches.jsonl", "a", encoding="utf-8")
        except OSError as exc:
            raise OutputError(f"cannot write patches to {folder}: {exc.strerror}") from None

    def write(self, work: FrameWork, number: int) -> None:
        lines = []
        for s in work.swaps:
            track = s.aligned.face.track_id
            name = f"{number:08d}_t{track if track is not None else 0:02d}.png"
            rgba = np.dstack([s.swapped, s.mask[..., None]])
            bgra = cv2.cvtColor((np.clip(rgba, 0, 1) * 65535 + 0.5).astype(np.uint16), cv2.COLOR_RGBA2BGRA)
            replace_atomically(self.folder / name, lambda tmp: cv2.imwrite(str(tmp), bgra), durable=False)
            lines.append(json.dumps({"frame": number, "track": track, "patch": name, "size": s.aligned.size,
                                     "frame_from_face": frame_from_face(s.aligned.face_from_frame).round(8).tolist()}))
        if lines:
            self._index.write("\n".join(lines) + "\n")
            self._index.flush()

    def close(self) -> None:
        self._index.close()


def _writer_options(path, info, source: str | None, config: ConvertConfig) -> dict[str, object]:
    """The options of :func:`open_writer` that apply to ``path``; a sequence written from a movie is
    numbered from ``start_frame`` by the writer."""
    if is_movie_path(str(path)):
        return {"source": source if info.kind == "movie" and info.has_audio else None, "codec": config.codec}
    return {"skip_existing": config.skip_existing,
            "start_frame": config.start_frame if info.kind == "movie" else None}


def _matte_image(work: FrameWork) -> np.ndarray:
    h, w = work.frame.image.shape[:2]
    alpha = work.matte if work.matte is not None else np.zeros((h, w), np.float32)
    return np.repeat((alpha * 255 + 0.5).astype(np.uint8)[..., None], 3, axis=2)


def _write_settings(output, source, model_dir, config: ConvertConfig, card) -> None:
    """The resolved settings beside the output (``NAME.vfxswap.json``), written atomically."""
    path = _settings_file(output)
    data = {"vfxswap": __version__, "source": str(source), "model": str(model_dir), "card": dataclasses.asdict(card),
            "settings": dataclasses.asdict(config)}
    text = json.dumps(data, indent=2) + "\n"
    replace_atomically(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), durable=False)
