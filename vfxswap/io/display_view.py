"""OpenColorIO display/view transforms: scene-referred pictures <-> display-referred [0, 1] pictures.

Hosts that work on display-referred images (ComfyUI's ``IMAGE`` is RGB in [0, 1] as a monitor shows
it) read and write scene-referred plates (ACEScg EXRs, log DPXs) through an explicit colour space,
display and view of an OCIO config, as Nuke's Viewer and ``OCIODisplay`` node do. The inverse view
(display -> scene) is what a host uses to write its results back into the plate's space; values a
display cannot show (above its white, outside its gamut) do not come back.
"""

from __future__ import annotations

import numpy as np
import PyOpenColorIO as ocio

from ..errors import ConfigError
from .colorspace import OCIO_CONFIG, _normalized, open_config, resolve_color_space


def _listed(names: list[str]) -> str:
    return ", ".join(repr(n) for n in names)


class DisplayView:
    """A scene colour space seen through one display and view of an OCIO config.

    Args:
        colorspace: colour space of the scene-referred pixels (a name, alias or role of ``config``;
            ``linear`` is the ``scene_linear`` role). Integer pixels are code values / max.
        display: an OCIO display (``sRGB - Display``); empty or ``None``: the config's default.
        view: a view of that display (``ACES 2.0 - SDR 100 nits (Rec.709)``, ``Un-tone-mapped``);
            empty or ``None``: the display's default view.
        config: an OCIO config file or ``ocio://`` URI; empty or ``None``: ``ocio://cg-config-latest``.

    Raises:
        ConfigError: an unreadable config, or a colour space, display or view it does not have (the
            message lists the ones it has).
    """

    def __init__(self, colorspace: str, *, display: str | None = None, view: str | None = None,
                 config: str | None = None) -> None:
        name = config or OCIO_CONFIG
        cfg = open_config(name)
        self.config = name
        self.colorspace = resolve_color_space(cfg, colorspace, config_name=name, what="images")
        displays = list(cfg.getDisplays())
        self.display = display or cfg.getDefaultDisplay()
        if self.display not in displays:
            raise ConfigError(f"{name} has no display {self.display!r}; use one of {_listed(displays)}")
        views = list(cfg.getViews(self.display))
        self.view = view or cfg.getDefaultView(self.display)
        if self.view not in views:
            raise ConfigError(f"display {self.display!r} of {name} has no view {self.view!r}; use one of "
                              f"{_listed(views)}")
        transform = ocio.DisplayViewTransform(src=self.colorspace, display=self.display, view=self.view)
        self._forward = cfg.getProcessor(transform, ocio.TRANSFORM_DIR_FORWARD).getDefaultCPUProcessor()
        try:
            self._inverse = cfg.getProcessor(transform, ocio.TRANSFORM_DIR_INVERSE).getDefaultCPUProcessor()
            self._inverse_error = ""
        except ocio.Exception as exc:  # a view built from a LUT without an inverse
            self._inverse = None
            self._inverse_error = " ".join(str(exc).split())

    def __repr__(self) -> str:
        return f"DisplayView({self.colorspace!r}, display={self.display!r}, view={self.view!r}, config={self.config!r})"

    def to_display(self, image: np.ndarray) -> np.ndarray:
        """``(H, W, 3)`` scene pixels (uint8, uint16 or float32) -> float32 display values in [0, 1]."""
        out = _normalized(_rgb(image))
        self._forward.applyRGB(out)
        return np.clip(out, 0.0, 1.0, out=out)

    def from_display(self, image: np.ndarray) -> np.ndarray:
        """``(H, W, 3)`` float32 display values in [0, 1] -> float32 scene pixels (the inverse view).

        Raises:
            ConfigError: the view has no inverse in this config.
        """
        if self._inverse is None:
            raise ConfigError(f"view {self.view!r} of {self.config} cannot be inverted ({self._inverse_error}); "
                              "pick another view, e.g. 'Un-tone-mapped'")
        out = np.clip(_normalized(_rgb(image)), 0.0, 1.0)
        self._inverse.applyRGB(out)
        return out


def _rgb(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        got = f"shape {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
        raise ConfigError(f"expected an (H, W, 3) RGB image, got {got}")
    return image
