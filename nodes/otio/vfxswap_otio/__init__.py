"""vfxswap's OpenTimelineIO plugin (installed as ``vfxswap_otio``, found through the
``opentimelineio.plugins`` entry point; ``plugin_manifest.json`` lists what it provides):

* media linker ``vfxswap_linker``: relinks clips to vfxswap-converted media found by a shot template,
  keeping the original media reference beside it (``vfxswap_linker.py``);
* hook script ``vfxswap_provenance``: stamps ``clip.metadata["vfxswap"]`` (model, settings digest,
  version) on clips that play vfxswap media (``vfxswap_provenance.py``). Not attached to any hook by
  default; attach it in your own manifest (see ``docs/timeline.md``).

OTIO loads the two scripts by file path, so they import ``vfxswap`` absolutely and this package
holds no other code.
"""
