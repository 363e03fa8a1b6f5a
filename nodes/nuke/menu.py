"""Nuke runs this at start-up for every folder on its plugin path (``nuke.pluginAddPath`` in
``~/.nuke/init.py``, or ``NUKE_PATH``): it adds the VFXSwap menu to the Nodes toolbar."""

import vfxswap_nuke

vfxswap_nuke.add_menus()
