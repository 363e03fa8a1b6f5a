"""Build vfxswap's small sample media from real faces that ship inside installed packages.

Sources (nothing is downloaded):

* ``insightface/data/images/t1.jpg`` -- a 1280x886 group photo of six people, shipped in the
  ``insightface`` wheel. Only the file is located; insightface itself is never imported.
* ``skimage.data.astronaut()`` -- a 512x512 NASA portrait of Eileen Collins (public domain).

Outputs (default ``samples/``; see ``samples/README.md``):

* ``plate.mp4``            dst plate: 72 frames, 24 fps, 1280x720 H.264 (BT.709 tags), a slow push-in,
                           pan and tilt over the group photo; stereo 48 kHz AAC with a 1 kHz pop on
                           frame 0; start timecode 01:00:00:00.
* ``plate_seq/plate.####.png``  the first ``SEQ_FRAMES`` source frames of the plate, lossless
                           8-bit sRGB PNG numbered from 1001 (the same in-memory frames the movie encodes).
* ``src.mp4``              src identity clip: 72 frames, 24 fps, 640x640 H.264, the astronaut portrait
                           with smoothly varying roll, fake yaw/pitch, scale, position and lighting.
* ``reference_dst.png``    crop of one person of the plate (the man in the red shirt, centre right).
* ``reference_src.png``    crop of the astronaut's face.
* ``SHA256SUMS``           ``sha256sum -c`` compatible checksums of all of the above.

Every output is deterministic (seeded, single-threaded x264, bit-exact muxing with no creation
time), so a second run reproduces the same bytes on the same platform and library versions::

    python tools/make_samples.py              # (re)build samples/
    python tools/make_samples.py --check      # rebuild into a temp folder and compare with SHA256SUMS
    python tools/make_samples.py --detect     # count dlib HOG faces in the written samples
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import os
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from av.video.reformatter import Interpolation

FPS = 24
N_FRAMES = 72  # 3 s
PLATE_SIZE = (1280, 720)  # (width, height)
SRC_SIZE = (640, 640)
FIRST_FRAME = 1001
SEQ_FRAMES = 8  # 1001-1008; see samples/README.md for the size budget behind this
TIMECODE = "01:00:00:00"
AUDIO_RATE = 48000
CRF = "20"
SEED = 20251123

# dlib HOG boxes (x0, y0, x1, y1) in the source photos, used for the reference crops.
DST_REFERENCE_BOX = (734, 365, 837, 469)  # t1.jpg: man in the red shirt, seated, centre right
SRC_FACE_BOX = (179, 83, 266, 170)  # astronaut()

# swscale flags that give the same RGB -> YUV result on every CPU.
_SWS = Interpolation.BICUBIC | Interpolation.ACCURATE_RND | Interpolation.BITEXACT
_OUTPUTS_SUMMED = ("plate.mp4", "src.mp4", "reference_dst.png", "reference_src.png")


# ----------------------------------------------------------------------------------------- sources
def group_photo() -> np.ndarray:
    """The insightface group photo ``t1.jpg`` as RGB uint8 (886, 1280, 3), sRGB."""
    spec = importlib.util.find_spec("insightface")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("insightface is not installed: its wheel ships data/images/t1.jpg")
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "images" / "t1.jpg"
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise SystemExit(f"cannot read {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def astronaut() -> np.ndarray:
    """``skimage.data.astronaut()``: RGB uint8 (512, 512, 3), sRGB."""
    from skimage import data

    return np.ascontiguousarray(data.astronaut())


# ----------------------------------------------------------------------------------------- writing
def _partial(path: Path) -> Path:
    return path.with_name(f".{path.name}.partial")


def write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temp name beside ``path`` and rename it into place."""
    tmp = _partial(path)
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_png(path: Path, rgb: np.ndarray) -> None:
    ok, buf = cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9,
                                 cv2.IMWRITE_PNG_STRATEGY, cv2.IMWRITE_PNG_STRATEGY_FILTERED])
    if not ok:
        raise RuntimeError(f"PNG encoding failed for {path}")
    write_bytes(path, buf.tobytes())


def encode_movie(path: Path, frames: list[np.ndarray], *, audio: np.ndarray | None = None,
                 timecode: str | None = None) -> None:
    """Encode RGB uint8 frames to H.264 MP4 (BT.709, limited range) plus optional stereo AAC.

    ``audio`` is float32 (2, samples) at ``AUDIO_RATE``. The file is muxed bit-exact (no encoder
    version tag, no creation time) by a single-threaded x264, then renamed into place.
    """
    tmp = _partial(path)
    height, width = frames[0].shape[:2]
    with av.open(str(tmp), "w", format="mp4", options={"fflags": "+bitexact"}) as out:
        video = out.add_stream("libx264", rate=FPS, options={"crf": CRF, "preset": "medium"})
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        cc = video.codec_context
        cc.thread_count = 1  # x264 output depends on its thread count
        cc.gop_size = FPS  # a key frame every second: cheap seeks for chunked renders
        cc.color_primaries = cc.color_trc = cc.colorspace = 1  # BT.709
        cc.color_range = 1  # MPEG / limited
        if timecode:
            video.metadata["timecode"] = timecode  # the mp4 muxer also writes a tmcd track
        astream = out.add_stream("aac", rate=AUDIO_RATE, layout="stereo") if audio is not None else None

        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(
                format="yuv420p", dst_colorspace="ITU709", src_color_range="JPEG",
                dst_color_range="MPEG", dst_color_trc=1, dst_color_primaries=1,
                interpolation=_SWS, threads=1)
            frame.pts = i
            out.mux(video.encode(frame))
        out.mux(video.encode())

        if astream is not None:
            block = 1024
            for start in range(0, audio.shape[1], block):
                chunk = np.ascontiguousarray(audio[:, start:start + block])
                aframe = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="stereo")
                aframe.sample_rate = AUDIO_RATE
                aframe.pts = start
                aframe.time_base = Fraction(1, AUDIO_RATE)
                out.mux(astream.encode(aframe))
            out.mux(astream.encode())
    os.replace(tmp, path)


# ----------------------------------------------------------------------------------------- assets
def plate_frames(photo: np.ndarray) -> list[np.ndarray]:
    """The plate's source frames: a 3 s eased push-in (x1.02 -> x1.08), pan right and tilt up.

    The window always stays inside the photo; all six faces stay in frame and >= ~90 px wide.
    Returns ``N_FRAMES`` RGB uint8 (720, 1280, 3) frames.
    """
    out_w, out_h = PLATE_SIZE
    ph, pw = photo.shape[:2]
    frames = []
    for i in range(N_FRAMES):
        t = i / (N_FRAMES - 1)
        s = t * t * (3.0 - 2.0 * t)  # smoothstep: ease in and out
        zoom = 1.02 + 0.06 * s
        x0 = 8.0 + 40.0 * s  # window origin in photo pixels
        y0 = 50.0 - 35.0 * s
        if not (0 <= x0 <= pw - out_w / zoom and 0 <= y0 <= ph - out_h / zoom):
            raise RuntimeError(f"frame {i}: camera window leaves the photo")
        photo_from_plate = np.array([[1 / zoom, 0, x0], [0, 1 / zoom, y0]], np.float64)
        frames.append(cv2.warpAffine(photo, photo_from_plate, PLATE_SIZE,
                                     flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP,
                                     borderMode=cv2.BORDER_REFLECT101))
    return frames


def plate_audio() -> np.ndarray:
    """Stereo float32 (2, 3 s * 48 kHz): a 1 kHz pop (-20 dBFS) over frame 0, then quiet tones.

    Left carries 440 Hz and right 660 Hz at -40 dBFS so the channels can be told apart.
    """
    n = N_FRAMES * AUDIO_RATE // FPS
    t = np.arange(n, dtype=np.float64) / AUDIO_RATE
    pop_len = AUDIO_RATE // FPS  # exactly one frame
    ramp = AUDIO_RATE // 500  # 2 ms raised-cosine edges, no clicks
    env = np.zeros(n)
    env[:pop_len] = 1.0
    edge = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, ramp))
    env[:ramp] *= edge
    env[pop_len - ramp:pop_len] *= edge[::-1]
    pop = 0.1 * env * np.sin(2 * np.pi * 1000 * t)
    bed = 0.01 * (1.0 - env)
    left = pop + bed * np.sin(2 * np.pi * 440 * t)
    right = pop + bed * np.sin(2 * np.pi * 660 * t)
    return np.stack([left, right]).astype(np.float32)


def make_plate(photo: np.ndarray, out: Path) -> None:
    """``plate.mp4`` and ``plate_seq/plate.####.png`` from the same in-memory frames."""
    frames = plate_frames(photo)
    encode_movie(out / "plate.mp4", frames, audio=plate_audio(), timecode=TIMECODE)
    seq = out / "plate_seq"
    seq.mkdir(exist_ok=True)
    wanted = {f"plate.{FIRST_FRAME + i:04d}.png" for i in range(SEQ_FRAMES)}
    for stale in seq.glob("plate.*.png"):
        if stale.name not in wanted:
            stale.unlink()
    for i in range(SEQ_FRAMES):
        write_png(seq / f"plate.{FIRST_FRAME + i:04d}.png", frames[i])


def _padded(img: np.ndarray, pad: int) -> np.ndarray:
    """Extend ``img`` by ``pad`` px of smeared, blurred edge colour so warps show no hard border.

    (Edge replication, not mirroring: a mirrored border would hold a second, upside-down face.)
    """
    ext = cv2.copyMakeBorder(img, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    soft = cv2.GaussianBlur(ext, (0, 0), 24)
    h, w = img.shape[:2]
    mask = np.zeros(ext.shape[:2], np.float32)
    mask[pad:pad + h, pad:pad + w] = 1.0
    mask = cv2.GaussianBlur(mask, (0, 0), 6)[..., None]
    return np.clip(mask * ext + (1 - mask) * soft + 0.5, 0, 255).astype(np.uint8)


def _perspective(yaw: float, pitch: float, roll: float, focal: float) -> np.ndarray:
    """3x3 homography of a plane at depth ``focal`` rotated about its centre (the origin)."""
    cy, sy = np.cos(yaw), np.sin(yaw)
    cp, sp = np.cos(pitch), np.sin(pitch)
    cr, sr = np.cos(roll), np.sin(roll)
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rx = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    rz = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    r = ry @ rx @ rz
    h = np.diag([focal, focal, 1.0]) @ np.column_stack([r[:, 0], r[:, 1], [0, 0, focal]])
    return h / h[2, 2]


def src_frames(portrait: np.ndarray) -> list[np.ndarray]:
    """The src clip's frames: the portrait under smooth, seeded pose, scale, position and light.

    Roll +-15 deg, fake yaw +-15 deg / pitch +-10 deg (plane homography), dlib face box ~170-380 px,
    brightness, contrast, colour temperature and a soft side "key light" whose direction drifts.
    Returns ``N_FRAMES`` RGB uint8 (640, 640, 3) frames.
    """
    rng = np.random.default_rng(SEED)
    phase = rng.uniform(0, 2 * np.pi, size=12)
    pad = 384
    ext = _padded(portrait, pad)
    fx0, fy0, fx1, fy1 = SRC_FACE_BOX
    centre = np.array([(fx0 + fx1) / 2 + pad, (fy0 + fy1) / 2 + pad])
    box = fx1 - fx0
    out_w, out_h = SRC_SIZE
    yy, xx = np.mgrid[0:out_h, 0:out_w].astype(np.float32)
    xx, yy = (xx - out_w / 2) / out_w, (yy - out_h / 2) / out_h
    frames = []
    for i in range(N_FRAMES):
        t = i / FPS
        wave = lambda period, k: np.sin(2 * np.pi * t / period + phase[k])  # noqa: E731
        roll = np.radians(15) * wave(3.0, 0)
        yaw = np.radians(15) * wave(2.2, 1)
        pitch = np.radians(10) * wave(2.7, 2)
        # dlib face box from ~170 to ~380 px and back, geometric in between
        u = 0.5 - 0.5 * np.cos(2 * np.pi * t / 3.0)
        scale = np.exp(np.log(170 / box) + u * np.log(380 / 170))
        room = max(0.0, (min(out_w, out_h) - 1.5 * box * scale) / 2)
        pos = np.array([out_w / 2 + room * wave(2.5, 3), out_h / 2 + 0.6 * room * wave(1.9, 4)])
        to_origin = np.array([[1, 0, -centre[0]], [0, 1, -centre[1]], [0, 0, 1]])
        place = np.array([[scale, 0, pos[0]], [0, scale, pos[1]], [0, 0, 1]])
        frame_from_ext = place @ _perspective(yaw, pitch, roll, focal=400.0) @ to_origin
        img = cv2.warpPerspective(ext, frame_from_ext, SRC_SIZE, flags=cv2.INTER_CUBIC,
                                  borderMode=cv2.BORDER_REFLECT101).astype(np.float32)
        # light: colour temperature, contrast, exposure and a soft gradient key from one side
        warm = 0.08 * wave(3.0, 5)
        img *= np.array([1 + warm, 1.0, 1 - warm], np.float32)
        img = (img - 128.0) * np.float32(1 + 0.15 * wave(2.4, 6)) + 128.0
        angle = phase[7] + 0.8 * wave(3.0, 8)
        side = np.tanh(3.0 * (np.cos(angle) * xx + np.sin(angle) * yy))
        img *= np.float32(1 + 0.15 * wave(2.0, 9)) * (1 + 0.25 * side)[..., None]
        frames.append(np.clip(img + 0.5, 0, 255).astype(np.uint8))
    return frames


def make_src(portrait: np.ndarray, out: Path) -> None:
    """``src.mp4``: the identity clip (no audio, no timecode)."""
    encode_movie(out / "src.mp4", src_frames(portrait))


def _crop(img: np.ndarray, box: tuple[int, int, int, int], size: int) -> np.ndarray:
    """A ``size`` px square crop centred on ``box``, shifted to stay inside ``img``."""
    h, w = img.shape[:2]
    cx, cy = (box[0] + box[2]) // 2, (box[1] + box[3]) // 2
    x0 = min(max(cx - size // 2, 0), w - size)
    y0 = min(max(cy - size // 2, 0), h - size)
    return np.ascontiguousarray(img[y0:y0 + size, x0:x0 + size])


def make_references(photo: np.ndarray, portrait: np.ndarray, out: Path) -> None:
    """``reference_dst.png`` (260 px) and ``reference_src.png`` (240 px), native pixels."""
    write_png(out / "reference_dst.png", _crop(photo, DST_REFERENCE_BOX, 260))
    write_png(out / "reference_src.png", _crop(portrait, SRC_FACE_BOX, 240))


# ----------------------------------------------------------------------------------------- driver
def sample_files(out: Path) -> list[Path]:
    """Every generated file under ``out`` (relative paths, sorted), excluding SHA256SUMS/README."""
    names = [Path(n) for n in _OUTPUTS_SUMMED]
    names += [Path("plate_seq") / f"plate.{FIRST_FRAME + i:04d}.png" for i in range(SEQ_FRAMES)]
    return sorted(names)


def sha256sums(out: Path) -> str:
    lines = []
    for rel in sample_files(out):
        digest = hashlib.sha256((out / rel).read_bytes()).hexdigest()
        lines.append(f"{digest}  {rel.as_posix()}\n")
    return "".join(lines)


def build(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    photo, portrait = group_photo(), astronaut()
    make_plate(photo, out)
    print("wrote plate.mp4 and plate_seq/")
    make_src(portrait, out)
    print("wrote src.mp4")
    make_references(photo, portrait, out)
    print("wrote reference_dst.png, reference_src.png")
    write_bytes(out / "SHA256SUMS", sha256sums(out).encode())
    for rel in sample_files(out) + [Path("SHA256SUMS")]:
        print(f"{(out / rel).stat().st_size:>10,d}  {rel.as_posix()}")


def check(out: Path) -> int:
    """Rebuild into a temp folder; compare with ``out/SHA256SUMS`` and the files in ``out``."""
    if not (out / "SHA256SUMS").is_file():
        print(f"check: {out / 'SHA256SUMS'} is missing; build the samples first")
        return 1
    committed = (out / "SHA256SUMS").read_text()
    with tempfile.TemporaryDirectory() as tmp:
        build(Path(tmp))
        rebuilt = (Path(tmp) / "SHA256SUMS").read_text()
    on_disk = sha256sums(out) if all((out / r).is_file() for r in sample_files(out)) else ""
    ok = rebuilt == committed == on_disk
    for name, text in (("rebuilt", rebuilt), ("on disk", on_disk)):
        if text != committed:
            bad = sorted(set(text.splitlines()) ^ set(committed.splitlines()))
            print(f"{name} differs from {out / 'SHA256SUMS'}:", *bad, sep="\n  ")
    print("check:", "OK, bit-identical" if ok else "MISMATCH")
    return 0 if ok else 1


def detect(out: Path) -> None:
    """Print dlib HOG (upsample 0) face counts for the written samples."""
    import dlib

    detector = dlib.get_frontal_face_detector()
    for movie, want in (("plate.mp4", 6), ("src.mp4", 1)):
        counts, widths = [], []
        with av.open(str(out / movie)) as container:
            for frame in container.decode(video=0):
                faces = detector(frame.to_ndarray(format="rgb24"), 0)
                counts.append(len(faces))
                widths += [f.width() for f in faces]
        hits = sum(c == want for c in counts)
        print(f"{movie}: {hits}/{len(counts)} frames with {want} face(s); counts {counts}; "
              f"box widths {min(widths, default=0)}-{max(widths, default=0)} px")
    seq = [len(detector(cv2.cvtColor(cv2.imread(str(out / r)), cv2.COLOR_BGR2RGB), 0))
           for r in sample_files(out) if r.parent.name == "plate_seq"]
    print(f"plate_seq: counts {seq}")
    for ref in ("reference_dst.png", "reference_src.png"):
        faces = detector(cv2.cvtColor(cv2.imread(str(out / ref)), cv2.COLOR_BGR2RGB), 0)
        print(f"{ref}: {len(faces)} face(s) {[f.width() for f in faces]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent / "samples",
                        help="output folder (default: the repo's samples/)")
    parser.add_argument("--check", action="store_true",
                        help="rebuild into a temp folder and compare with OUT/SHA256SUMS")
    parser.add_argument("--detect", action="store_true",
                        help="only count dlib HOG faces in the samples already in OUT")
    args = parser.parse_args(argv)
    if args.check:
        return check(args.out)
    if args.detect:
        detect(args.out)
        return 0
    build(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
