"""Draw the node graphs of the README (``graph.png``) from the nodes' real inputs and outputs.

Run from the repository root with the vfxswap environment: ``python nodes/comfyui/docs/draw_graph.py``.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent
PACK = HERE.parent
COLORS = {"IMAGE": (246, 181, 100), "MASK": (132, 199, 129), "VFXSWAP_MODEL": (220, 160, 200),
          "VFXSWAP_FACES": (80, 170, 250), "INT": (180, 180, 180), "STRING": (180, 180, 180)}  # BGR
BG, NODE, TITLE, TEXT, DIM = (33, 33, 33), (53, 53, 53), (40, 40, 40), (230, 230, 230), (150, 150, 150)
FONT = cv2.FONT_HERSHEY_SIMPLEX
W, ROW, HEAD = 250, 20, 26


def load_pack():
    spec = importlib.util.spec_from_file_location("vfxswap_comfyui_doc", PACK / "__init__.py",
                                                  submodule_search_locations=[str(PACK)])
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class Box:
    """A node: typed input sockets, output sockets and (some) widgets, as ComfyUI shows them."""

    def __init__(self, title: str, x: int, y: int, inputs, outputs, widgets=(), builtin: bool = False) -> None:
        self.title, self.x, self.y = title, x, y
        self.inputs, self.outputs, self.widgets, self.builtin = list(inputs), list(outputs), list(widgets), builtin
        rows = max(len(self.inputs), len(self.outputs)) + len(self.widgets)
        self.h = HEAD + ROW * rows + 10

    def socket_in(self, name: str) -> tuple[int, int]:
        i = [n for n, _ in self.inputs].index(name)
        return self.x, self.y + HEAD + ROW * i + ROW // 2 + 4

    def socket_out(self, name: str) -> tuple[int, int]:
        i = [n for n, _ in self.outputs].index(name)
        return self.x + W, self.y + HEAD + ROW * i + ROW // 2 + 4

    def draw(self, img: np.ndarray) -> None:
        cv2.rectangle(img, (self.x, self.y), (self.x + W, self.y + self.h), NODE, -1, cv2.LINE_AA)
        cv2.rectangle(img, (self.x, self.y), (self.x + W, self.y + HEAD), TITLE, -1, cv2.LINE_AA)
        cv2.putText(img, self.title, (self.x + 10, self.y + 18), FONT, 0.48, DIM if self.builtin else TEXT, 1, cv2.LINE_AA)
        for name, kind in self.inputs:
            x, y = self.socket_in(name)
            cv2.circle(img, (x, y), 5, COLORS.get(kind, DIM), -1, cv2.LINE_AA)
            cv2.putText(img, name, (x + 10, y + 4), FONT, 0.4, TEXT, 1, cv2.LINE_AA)
        for name, kind in self.outputs:
            x, y = self.socket_out(name)
            cv2.circle(img, (x, y), 5, COLORS.get(kind, DIM), -1, cv2.LINE_AA)
            size = cv2.getTextSize(name, FONT, 0.4, 1)[0][0]
            cv2.putText(img, name, (x - 10 - size, y + 4), FONT, 0.4, TEXT, 1, cv2.LINE_AA)
        top = self.y + HEAD + ROW * max(len(self.inputs), len(self.outputs))
        for i, text in enumerate(self.widgets):
            y = top + ROW * i
            cv2.rectangle(img, (self.x + 8, y + 3), (self.x + W - 8, y + ROW - 2), (70, 70, 70), -1, cv2.LINE_AA)
            cv2.putText(img, text[:38], (self.x + 14, y + 15), FONT, 0.38, DIM, 1, cv2.LINE_AA)


def node_box(cls, title: str, x: int, y: int, widgets: int = 4, linked: tuple[str, ...] = ()) -> Box:
    """A box for a node class; ``linked``: widgets turned into inputs (a link feeds them)."""
    spec = cls.INPUT_TYPES()
    inputs = [(n, d[0]) for section in ("required", "optional") for n, d in spec.get(section, {}).items()
              if n in linked or (isinstance(d[0], str) and d[0] not in ("INT", "FLOAT", "STRING", "BOOLEAN"))]
    shown = [f"{n}: {d[1].get('default')!s}" for n, d in spec["required"].items()
             if n not in linked and (isinstance(d[0], list) or d[0] in ("INT", "FLOAT", "STRING", "BOOLEAN"))][:widgets]
    return Box(title, x, y, inputs, list(zip(cls.RETURN_NAMES, cls.RETURN_TYPES)), shown)


def link(img: np.ndarray, a: Box, out: str, b: Box, inp: str, kind: str) -> None:
    (x0, y0), (x1, y1) = a.socket_out(out), b.socket_in(inp)
    d = max(60, abs(x1 - x0) // 2)
    t = np.linspace(0, 1, 60)[:, None]
    p0, p1, p2, p3 = map(np.array, ((x0, y0), (x0 + d, y0), (x1 - d, y1), (x1, y1)))
    pts = ((1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t ** 2 * p2 + t ** 3 * p3).astype(np.int32)
    cv2.polylines(img, [pts], False, COLORS.get(kind, DIM), 2, cv2.LINE_AA)


def main() -> None:
    nodes = load_pack().NODE_CLASS_MAPPINGS
    img = np.full((930, 1420, 3), BG, np.uint8)
    cv2.putText(img, "1. swap a plate in one node", (30, 40), FONT, 0.7, TEXT, 1, cv2.LINE_AA)
    model = node_box(nodes["VFXSwapLoadModel"], "VFXSwap Load Model", 30, 70)
    seq = node_box(nodes["VFXSwapLoadSequence"], "VFXSwap Load Sequence (OCIO)", 30, 250)
    ref = Box("Load Image (ComfyUI)", 30, 440, [], [("IMAGE", "IMAGE"), ("MASK", "MASK")], ["reference.png"], True)
    swap = node_box(nodes["VFXSwapSwap"], "VFXSwap Swap Faces", 390, 110, widgets=7)
    save = node_box(nodes["VFXSwapSaveSequence"], "VFXSwap Save Sequence (OCIO)", 760, 250, linked=("first_frame",))
    preview = Box("Preview Image (ComfyUI)", 760, 70, [("images", "IMAGE")], [], [], True)
    mask_img = Box("Convert Mask to Image (ComfyUI)", 760, 150, [("mask", "MASK")], [("IMAGE", "IMAGE")], [], True)
    link(img, model, "model", swap, "model", "VFXSWAP_MODEL")
    link(img, seq, "images", swap, "images", "IMAGE")
    link(img, ref, "IMAGE", swap, "reference", "IMAGE")
    link(img, swap, "images", save, "images", "IMAGE")
    link(img, seq, "first_frame", save, "first_frame", "INT")
    link(img, swap, "images", preview, "images", "IMAGE")
    link(img, swap, "matte", mask_img, "mask", "MASK")
    for box in (model, seq, ref, swap, save, preview, mask_img):  # nodes over links, as in ComfyUI
        box.draw(img)

    y0 = 560
    cv2.line(img, (30, y0 - 25), (1390, y0 - 25), (70, 70, 70), 1)
    cv2.putText(img, "2. the same steps as separate nodes (swap the crops with any model in between)", (30, y0 + 10),
                FONT, 0.7, TEXT, 1, cv2.LINE_AA)
    seq2 = node_box(nodes["VFXSwapLoadSequence"], "VFXSwap Load Sequence (OCIO)", 30, y0 + 40, widgets=2)
    model2 = node_box(nodes["VFXSwapLoadModel"], "VFXSwap Load Model", 30, y0 + 200, widgets=2)
    detect = node_box(nodes["VFXSwapDetectFaces"], "VFXSwap Detect Faces", 310, y0 + 40, widgets=3)
    run = node_box(nodes["VFXSwapRunModel"], "VFXSwap Run Model (crops)", 590, y0 + 190, widgets=1)
    match = node_box(nodes["VFXSwapColorMatch"], "VFXSwap Color Match", 870, y0 + 40, widgets=1)
    blend = node_box(nodes["VFXSwapBlend"], "VFXSwap Blend", 1150, y0 + 170, widgets=3)
    link(img, seq2, "images", detect, "images", "IMAGE")
    link(img, model2, "model", detect, "model", "VFXSWAP_MODEL")
    link(img, model2, "model", run, "model", "VFXSWAP_MODEL")
    link(img, detect, "faces", run, "faces", "VFXSWAP_FACES")
    link(img, run, "swapped_crops", match, "crops", "IMAGE")
    link(img, detect, "crops", match, "target", "IMAGE")
    link(img, detect, "crop_masks", match, "mask", "MASK")
    link(img, seq2, "images", blend, "images", "IMAGE")
    link(img, detect, "faces", blend, "faces", "VFXSWAP_FACES")
    link(img, match, "crops", blend, "crops", "IMAGE")
    link(img, run, "learned_masks", blend, "mask", "MASK")
    for box in (seq2, model2, detect, run, match, blend):
        box.draw(img)
    cv2.imwrite(str(HERE / "graph.png"), img)


if __name__ == "__main__":
    main()
