"""vfxswap nodes for ComfyUI: copy or link this folder into ``ComfyUI/custom_nodes/comfyui-vfxswap``.

The nodes import the ``vfxswap`` library, which must be installed in ComfyUI's Python
(``python -m pip install -e /path/to/vfxswap``; see README.md). This package edits no ``sys.path``.
"""

if __name__ in ("vfxswap", "nodes"):  # old ComfyUI versions name a custom node module after its folder
    raise ImportError("this custom node folder must not be called 'vfxswap' or 'nodes' (it would hide the library "
                      "or ComfyUI's own module); rename it to comfyui-vfxswap")

from .vfxswap_nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
