"""ComfyUI nodes over the vfxswap library: thin adapters (tensors <-> NumPy, node inputs -> configs).

ComfyUI's ``IMAGE`` is a torch tensor ``(B, H, W, C)`` float32 in [0, 1], display-referred; ``MASK``
is ``(B, H, W)`` float32 in [0, 1]. Node options are generated from the library's config dataclasses
(:func:`vfxswap.hosts.config_options`), so the nodes offer exactly what ``vfxswap convert`` offers,
with the same defaults. torch is imported only when a node runs (ComfyUI has it already).
"""

from __future__ import annotations

import hashlib
import os
from typing import Any

import numpy as np

from vfxswap import hosts
from vfxswap.config import ConvertConfig, ExtractConfig

CATEGORY = "vfxswap"
MODEL = "VFXSWAP_MODEL"
FACES = "VFXSWAP_FACES"

#: ConvertConfig fields set when the model is loaded (VFXSwapLoadModel).
MODEL_FIELDS = ("backend", "device", "precision", "face_backend", "face_models")
#: ConvertConfig fields about files, streams and colour management of files: no meaning for an
#: in-memory, display-referred IMAGE batch (VFXSwapLoadSequence / VFXSwapSaveSequence do files).
FILE_FIELDS = ("reference", "codec", "start_frame", "frames", "skip_existing", "allow_short", "matte", "patches",
               "alpha", "ocio_config", "input_colorspace")
#: Every other ConvertConfig field is an option of VFXSwapSwap (new fields show up by themselves).
SWAP_EXCLUDED = MODEL_FIELDS + FILE_FIELDS


def comfy_input(spec: hosts.OptionSpec) -> tuple:
    """A ComfyUI input definition for one config option."""
    extra: dict[str, Any] = {"default": spec.default}
    if spec.help:
        extra["tooltip"] = spec.help
    if spec.kind == "choice":
        return list(spec.choices), extra
    if spec.kind in ("int", "float"):
        extra.update(min=spec.minimum, max=spec.maximum, step=spec.step)
        return ("INT" if spec.kind == "int" else "FLOAT"), extra
    if spec.kind == "bool":
        return "BOOLEAN", extra
    return "STRING", extra


def comfy_inputs(cls: type, *, include=None, exclude=()) -> dict[str, tuple]:
    """ComfyUI inputs for the fields of a config dataclass (see :func:`vfxswap.hosts.config_options`)."""
    return {name: comfy_input(spec) for name, spec in hosts.config_options(cls, include=include, exclude=exclude).items()}


def _numpy(tensor) -> np.ndarray:
    """A torch tensor (or array) as a float32 NumPy array on the CPU."""
    if isinstance(tensor, np.ndarray):
        return tensor.astype(np.float32, copy=False)
    return tensor.detach().cpu().float().numpy()


def _mask_numpy(mask) -> np.ndarray:
    m = _numpy(mask)
    return m[None] if m.ndim == 2 else m


def _tensor(array: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


def _host_path(path: str, kind: str) -> str:
    """A relative path inside ComfyUI's input (``kind="input"``) or output folder; as given elsewhere."""
    path = os.path.expanduser(path.strip())
    if os.path.isabs(path):
        return path
    try:
        import folder_paths  # ComfyUI's module; absent outside ComfyUI
    except ImportError:
        return path
    base = folder_paths.get_input_directory() if kind == "input" else folder_paths.get_output_directory()
    return os.path.join(base, path)


def _view(ocio_config: str, colorspace: str, display: str, view: str):
    from vfxswap.io.display_view import DisplayView

    return DisplayView(colorspace, display=display or None, view=view or None, config=ocio_config or None)


_COLOR_INPUTS = {
    "ocio_config": ("STRING", {"default": "ocio://cg-config-latest",
                               "tooltip": "OpenColorIO config: a .ocio file or a built-in such as "
                                          "ocio://studio-config-latest"}),
    "colorspace": ("STRING", {"default": "ACEScg", "tooltip": "colour space of the files (a name, alias or role "
                                                             "of the config; 'linear' = scene_linear)"}),
    "display": ("STRING", {"default": "", "tooltip": "OCIO display, e.g. 'sRGB - Display'; empty: the config's default"}),
    "view": ("STRING", {"default": "", "tooltip": "OCIO view, e.g. 'ACES 2.0 - SDR 100 nits (Rec.709)' or "
                                                  "'Un-tone-mapped'; empty: the display's default"}),
}


class VFXSwapLoadModel:
    """Open a trained vfxswap model folder (runner + face analyzer), once for the whole graph."""

    DESCRIPTION = "Open a trained vfxswap model folder (card.json + weights.safetensors) for the swap nodes."
    CATEGORY = CATEGORY
    RETURN_TYPES = (MODEL,)
    RETURN_NAMES = ("model",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model_dir": ("STRING", {"default": "", "tooltip": "trained model folder (card.json + weights.safetensors)"}),
            **comfy_inputs(ConvertConfig, include=MODEL_FIELDS),
        }}

    def load(self, model_dir: str, **options):
        from vfxswap.convert.api import SwapModel

        config = hosts.config_from_options(ConvertConfig, options)
        return (SwapModel(os.path.expanduser(model_dir.strip()), config),)


class VFXSwapSwap:
    """The converter on an IMAGE batch: detect, track, swap, colour-match, mask and blend."""

    DESCRIPTION = ("Swap the faces of an IMAGE batch (one clip, in order: faces are tracked and smoothed across it) "
                   "with a vfxswap model. Options are those of `vfxswap convert`. Connect reference images to swap "
                   "one person only.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("images", "matte")
    OUTPUT_TOOLTIPS = ("the swapped images", "the blend mask of the swapped faces (0 where the plate is untouched)")
    FUNCTION = "swap"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {"model": (MODEL,), "images": ("IMAGE",),
                         **comfy_inputs(ConvertConfig, exclude=SWAP_EXCLUDED)},
            "optional": {"reference": ("IMAGE", {"tooltip": "images of the person to swap (their largest face)"})},
        }

    def swap(self, model, images, reference=None, **options):
        from vfxswap.convert.api import swap_frames

        refs = hosts.reference_from_images(model.analyzer, _numpy(reference)) if reference is not None else None
        config = hosts.swap_config(options, has_reference=refs is not None)
        works = swap_frames(hosts.frames_from_images(_numpy(images)), model, config, references=refs)
        out, mattes = hosts.images_from_works(works)
        return _tensor(out), _tensor(mattes)


class VFXSwapDetectFaces:
    """Find and align the faces of each image."""

    DESCRIPTION = ("Find the faces of each image and cut them into aligned crops (DeepFaceLab geometry). With a "
                   "model connected, crops follow its resolution and face type and its face analyzer is used.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (FACES, "IMAGE", "MASK")
    RETURN_NAMES = ("faces", "crops", "crop_masks")
    OUTPUT_TOOLTIPS = ("where each face sits (for VFXSwapBlend)", "the aligned crops, one per face",
                       "landmark-hull masks of the crops")
    FUNCTION = "detect"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {"images": ("IMAGE",),
                         **comfy_inputs(ExtractConfig, include=("size", "face_type", "min_size")),
                         "faces": (["all", "largest"], {"default": "all", "tooltip": "all faces, or the largest of each image"})},
            "optional": {"model": (MODEL, {"tooltip": "crops in the model's resolution and face type"})},
        }

    def detect(self, images, size: int, face_type: str, min_size: int, faces: str, model=None):
        if model is not None:
            analyzer, size, face_type = model.analyzer, model.card.resolution, model.card.face_type
        else:
            analyzer = _dlib_analyzer()
        crops = hosts.detect_faces(analyzer, _numpy(images), size=size, face_type=face_type, faces=faces,
                                   min_size=min_size)
        return crops, _tensor(hosts.crops_array(crops)), _tensor(hosts.hull_masks(crops))


_ANALYZERS: dict[str, Any] = {}


def _dlib_analyzer():
    """The offline dlib analyzer, opened once per ComfyUI process (its models take a second to load)."""
    if "dlib" not in _ANALYZERS:
        from vfxswap.faces.analysis import open_analyzer

        _ANALYZERS["dlib"] = open_analyzer("dlib")
    return _ANALYZERS["dlib"]


class VFXSwapRunModel:
    """The model alone on aligned crops."""

    DESCRIPTION = ("Run a vfxswap model on aligned crops from VFXSwapDetectFaces (resized to the model's resolution "
                   "and back): the raw swapped faces and the model's learned masks.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("swapped_crops", "learned_masks")
    FUNCTION = "run"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": (MODEL,), "faces": (FACES,),
                             **comfy_inputs(ConvertConfig, include=("batch",))}}

    def run(self, model, faces, batch: int):
        rgb, mask = hosts.swap_crops(model, faces, batch=batch)
        return _tensor(rgb), _tensor(mask)


class VFXSwapColorMatch:
    """Colour-match swapped crops to the plate's crops."""

    DESCRIPTION = ("Recolour swapped face crops so their colour statistics inside the mask match the plate's crops "
                   "(the converter's --color methods).")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("crops",)
    FUNCTION = "match"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {"crops": ("IMAGE", {"tooltip": "the swapped crops to recolour"}),
                         "target": ("IMAGE", {"tooltip": "the plate's crops (VFXSwapDetectFaces)"}),
                         **comfy_inputs(ConvertConfig, include=("color",))},
            "optional": {"mask": ("MASK", {"tooltip": "pixels > 0.5 are measured; none: the whole crop"})},
        }

    def match(self, crops, target, color: str, mask=None):
        masks = _mask_numpy(mask) if mask is not None else None
        return (_tensor(hosts.match_colors(color, _numpy(crops), _numpy(target), masks)),)


class VFXSwapBlend:
    """Composite swapped crops back into the images."""

    DESCRIPTION = ("Blend swapped face crops back into the images they were detected in; only the faces' regions "
                   "change. Without a mask the landmark hulls are used.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE", "MASK")
    RETURN_NAMES = ("images", "matte")
    FUNCTION = "blend"

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {"images": ("IMAGE",), "faces": (FACES,),
                         "crops": ("IMAGE", {"tooltip": "swapped crops, one per face, in the faces' geometry"}),
                         **comfy_inputs(ConvertConfig, include=("blend", "erode", "feather"))},
            "optional": {"mask": ("MASK", {"tooltip": "crop masks (e.g. learned masks); none: landmark hulls"})},
        }

    def blend(self, images, faces, crops, blend: str, erode: int, feather: int, mask=None):
        masks = _mask_numpy(mask) if mask is not None else None
        out, mattes = hosts.composite_faces(_numpy(images), faces, _numpy(crops), masks, blend=blend, erode=erode,
                                            feather=feather)
        return _tensor(out), _tensor(mattes)


class VFXSwapLoadSequence:
    """Read an image sequence through an OpenColorIO view into a display-referred IMAGE batch."""

    DESCRIPTION = ("Read an EXR (or DPX, TIFF, PNG) sequence as a display-referred IMAGE batch: the files' colour "
                   "space seen through an OpenColorIO display and view.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE", "INT")
    RETURN_NAMES = ("images", "first_frame")
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "path": ("STRING", {"default": "", "tooltip": "sequence pattern such as /shots/sh010/plate.####.exr "
                                                          "(relative: inside ComfyUI's input folder)"}),
            "frames": ("STRING", {"default": "", "tooltip": "frames to read, e.g. 1001-1024; empty: all"}),
            **_COLOR_INPUTS,
        }}

    @classmethod
    def IS_CHANGED(cls, path: str, frames: str, **_):
        """Changes when the sequence's files do (names, sizes, modification times)."""
        from vfxswap.io.sequences import is_sequence_pattern

        full = _host_path(path, "input")
        digest = hashlib.sha256(f"{full}|{frames}".encode())
        folder = os.path.dirname(full) if is_sequence_pattern(full) else full
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name) if os.path.isdir(folder) else []
            for e in entries:
                st = e.stat()
                digest.update(f"{e.name}|{st.st_size}|{st.st_mtime_ns}".encode())
        except OSError:
            pass
        return digest.hexdigest()

    def load(self, path: str, frames: str, ocio_config: str, colorspace: str, display: str, view: str):
        images, numbers = hosts.load_display_images(_host_path(path, "input"), _view(ocio_config, colorspace, display, view),
                                                    frames=frames.strip() or None)
        return _tensor(images), numbers[0]


class VFXSwapSaveSequence:
    """Write an IMAGE batch as an EXR sequence through the inverse of an OpenColorIO view."""

    DESCRIPTION = ("Write a display-referred IMAGE batch as an EXR sequence in a scene colour space (the inverse of "
                   "the OpenColorIO display and view it is seen through). Each file is written to a temporary name "
                   "and renamed into place.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("path",)
    OUTPUT_NODE = True
    FUNCTION = "save"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "images": ("IMAGE",),
            "path": ("STRING", {"default": "vfxswap/shot_swap.####.exr",
                                "tooltip": "sequence pattern (relative: inside ComfyUI's output folder)"}),
            "first_frame": ("INT", {"default": 1001, "min": 0, "max": 10_000_000, "step": 1,
                                    "tooltip": "number of the first image (connect VFXSwapLoadSequence's first_frame)"}),
            **_COLOR_INPUTS,
            "bit_depth": (["half", "float"], {"default": "half", "tooltip": "EXR pixel type"}),
            "fps": ("FLOAT", {"default": 24.0, "min": 1.0, "max": 240.0, "step": 0.001}),
        }}

    def save(self, images, path: str, first_frame: int, ocio_config: str, colorspace: str, display: str, view: str,
             bit_depth: str, fps: float):
        pattern = _host_path(path, "output")
        hosts.save_display_images(_numpy(images), pattern, _view(ocio_config, colorspace, display, view),
                                  first_frame=first_frame, fps=fps, bit_depth=16 if bit_depth == "half" else 32)
        return (pattern,)


NODE_CLASS_MAPPINGS = {
    "VFXSwapLoadModel": VFXSwapLoadModel,
    "VFXSwapSwap": VFXSwapSwap,
    "VFXSwapDetectFaces": VFXSwapDetectFaces,
    "VFXSwapRunModel": VFXSwapRunModel,
    "VFXSwapColorMatch": VFXSwapColorMatch,
    "VFXSwapBlend": VFXSwapBlend,
    "VFXSwapLoadSequence": VFXSwapLoadSequence,
    "VFXSwapSaveSequence": VFXSwapSaveSequence,
}

NODE_DISPLAY_NAME_MAPPINGS = {
    "VFXSwapLoadModel": "VFXSwap Load Model",
    "VFXSwapSwap": "VFXSwap Swap Faces",
    "VFXSwapDetectFaces": "VFXSwap Detect Faces",
    "VFXSwapRunModel": "VFXSwap Run Model (crops)",
    "VFXSwapColorMatch": "VFXSwap Color Match",
    "VFXSwapBlend": "VFXSwap Blend",
    "VFXSwapLoadSequence": "VFXSwap Load Sequence (OCIO)",
    "VFXSwapSaveSequence": "VFXSwap Save Sequence (OCIO)",
}
