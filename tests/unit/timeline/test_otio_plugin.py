"""The OTIO plugin in nodes/otio (installed as vfxswap_otio): found through the entry point, the media
linker relinks clips to converted media, the hook stamps provenance; also through otioconvert."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import inspect
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import opentimelineio as otio
import pytest

from vfxswap.timeline.otio import VFXSWAP_KEY

RT, TR = otio.opentime.RationalTime, otio.opentime.TimeRange
ROOT = Path(__file__).resolve().parents[3]
SAMPLES = ROOT / "samples"
OTIOCONVERT = Path(sys.executable).with_name("otioconvert")


def plain(value):
    """OTIO metadata (AnyDictionary, nested) as plain dicts."""
    return {k: plain(v) for k, v in value.items()} if hasattr(value, "items") else value


def seq_clip(name: str, start: int, duration: int) -> otio.schema.Clip:
    ref = otio.schema.ImageSequenceReference("plate_seq/", "plate.", ".png", start_frame=1001, rate=24,
                                             frame_zero_padding=4, available_range=TR(RT(86400, 24), RT(8, 24)))
    return otio.schema.Clip(name, ref, TR(RT(86400 + start, 24), RT(duration, 24)))


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> Path:
    """Frames 1003-1006 of the sample PNG sequence converted with the demo model (and its settings file)."""
    root = tmp_path_factory.mktemp("plugin")
    shutil.copytree(SAMPLES / "demo_model", root / "model")
    result = subprocess.run([sys.executable, "-m", "vfxswap.cli", "convert", str(SAMPLES / "plate_seq" / "plate.####.png"),
                             "-m", str(root / "model"), "-o", str(root / "media" / "plate_vfxswap.####.png"),
                             "--frames", "1003-1006", "--progress", "none"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return root


@pytest.fixture
def cut(tmp_path) -> Path:
    """V1: sh010 plays files 1004-1006 (converted), sh020 1001-1002 (not); A1: the plate's audio."""
    tl = otio.schema.Timeline("cut")
    v1, a1 = otio.schema.Track("V1"), otio.schema.Track("A1", kind=otio.schema.TrackKind.Audio)
    tl.tracks.extend([v1, a1])
    v1.extend([seq_clip("sh010", 3, 3), seq_clip("sh020", 0, 2)])
    a1.append(otio.schema.Clip("audio", otio.schema.ExternalReference("plate.mp4"), TR(RT(86400, 24), RT(5, 24))))
    path = tmp_path / "cut.otio"
    otio.adapters.write_to_file(tl, str(path))
    return path


class TestRegistration:
    def test_entry_point_and_manifest(self):
        (entry,) = [e for e in importlib.metadata.entry_points(group="opentimelineio.plugins") if e.name == "vfxswap"]
        assert entry.value == "vfxswap_otio"
        manifest = otio.plugins.ActiveManifest()
        assert "vfxswap_linker" in [m.name for m in manifest.media_linkers]
        assert "vfxswap_provenance" in [h.name for h in manifest.hook_scripts]
        assert not any("vfxswap_provenance" in scripts for scripts in manifest.hooks.values())  # not attached
        linker = otio.media_linker.from_name("vfxswap_linker")
        assert Path(linker.module_abs_path()) == ROOT / "nodes" / "otio" / "vfxswap_otio" / "vfxswap_linker.py"

    def test_signatures(self):
        hook = otio.plugins.ActiveManifest().from_name("vfxswap_provenance", "hook_scripts").module()
        assert list(inspect.signature(hook.hook_function).parameters)[0] == "in_timeline"
        linker = otio.media_linker.from_name("vfxswap_linker").module()
        assert list(inspect.signature(linker.link_media_reference).parameters) == ["in_clip", "media_linker_argument_map"]

    def test_the_plugin_package_installs_from_nodes_otio(self):
        spec = importlib.util.find_spec("vfxswap_otio")
        assert spec is not None and Path(spec.origin) == ROOT / "nodes" / "otio" / "vfxswap_otio" / "__init__.py"


class TestLinker:
    def args(self, converted: Path) -> dict:
        return {"media_dir": str(converted / "media"), "template": "{media_dir}/{media}_vfxswap.####.png",
                "cut_dir": str(SAMPLES)}

    def test_links_converted_clips_and_leaves_the_rest(self, converted, cut):
        original = otio.adapters.read_from_file(str(cut))
        tl = otio.adapters.read_from_file(str(cut), media_linker_name="vfxswap_linker",
                                          media_linker_argument_map=self.args(converted))
        sh010, sh020, audio = tl.find_clips()
        assert sh010.active_media_reference_key == VFXSWAP_KEY
        assert sh010.media_references()["DEFAULT_MEDIA"].is_equivalent_to(original.find_clips()[0].media_reference)
        ref = sh010.media_reference
        assert (ref.start_frame, ref.end_frame(), ref.rate, ref.frame_zero_padding) == (1003, 1006, 24, 4)
        assert ref.frame_for_time(sh010.source_range.start_time) == 1004
        assert ref.target_url_for_image_number(1) == (converted / "media" / "plate_vfxswap.1004.png").as_uri()
        stamp = sh010.metadata[VFXSWAP_KEY]
        assert stamp["model"] == str(converted / "model") and stamp["settings_digest"].startswith("sha256:")
        assert stamp["frames"] == "1003-1006" and stamp["version"]
        assert sh010.source_range == original.find_clips()[0].source_range
        assert sh020.is_equivalent_to(original.find_clips()[1]) and audio.is_equivalent_to(original.find_clips()[2])

    def test_frames_that_do_not_decode_are_not_converted_media(self, converted, cut, tmp_path):
        media = tmp_path / "media"
        shutil.copytree(converted / "media", media)
        args = {**self.args(converted), "media_dir": str(media)}
        (media / "plate_vfxswap.1003.png").write_bytes(b"")  # a handle frame, outside sh010's 1004-1006
        sh010 = otio.adapters.read_from_file(str(cut), media_linker_name="vfxswap_linker",
                                             media_linker_argument_map=args).find_clips()[0]
        assert sh010.active_media_reference_key == VFXSWAP_KEY
        assert (sh010.media_reference.start_frame, sh010.media_reference.end_frame()) == (1004, 1006)
        (media / "plate_vfxswap.1005.png").write_bytes(b"")  # one the clip shows: what a full disk leaves
        for partial in ("false", "true"):
            sh010 = otio.adapters.read_from_file(str(cut), media_linker_name="vfxswap_linker",
                                                 media_linker_argument_map={**args, "partial": partial}).find_clips()[0]
            if partial == "false":
                assert sh010.active_media_reference_key == "DEFAULT_MEDIA" and VFXSWAP_KEY not in sh010.metadata
            else:  # partial links the run of good frames from the first good one: 1004 alone
                assert (sh010.media_reference.start_frame, sh010.media_reference.end_frame()) == (1004, 1004)

    def test_original_media_beside_the_cut_are_found_by_name(self, converted, tmp_path):
        ref = otio.schema.ImageSequenceReference("file:///Volumes/editorial/plate_seq/", "plate.", ".png",
                                                 start_frame=1001, rate=24, frame_zero_padding=4,
                                                 available_range=TR(RT(86400, 24), RT(8, 24)))
        tl = otio.schema.Timeline("cut")
        tl.tracks.append(otio.schema.Track("V1"))
        tl.tracks[0].append(otio.schema.Clip("sh010", ref, TR(RT(86403, 24), RT(3, 24))))
        path = tmp_path / "cut.otio"
        otio.adapters.write_to_file(tl, str(path))
        args = {**self.args(converted), "cut_dir": str(SAMPLES / "plate_seq")}  # no search_dir
        (sh010,) = otio.adapters.read_from_file(str(path), media_linker_name="vfxswap_linker",
                                                media_linker_argument_map=args).find_clips()
        assert sh010.active_media_reference_key == VFXSWAP_KEY
        assert sh010.metadata[VFXSWAP_KEY]["source"] == str(SAMPLES / "plate_seq" / "plate.####.png")

    def test_media_dir_is_required(self, cut):
        with pytest.raises(ValueError, match="media_dir"):
            otio.adapters.read_from_file(str(cut), media_linker_name="vfxswap_linker", media_linker_argument_map={})

    def test_otioconvert_with_the_linker_and_the_hook_attached(self, converted, cut, tmp_path):
        attach = tmp_path / "attach.plugin_manifest.json"
        attach.write_text(json.dumps({"OTIO_SCHEMA": "PluginManifest.1",
                                      "hooks": {"post_media_linker": ["vfxswap_provenance"]}}))
        out = tmp_path / "linked.otio"
        argv = [str(OTIOCONVERT), "-i", str(cut), "-o", str(out), "-m", "vfxswap_linker"]
        for key, value in self.args(converted).items():
            argv += ["-M", f"{key}={value}"]
        env = {**os.environ, "OTIO_PLUGIN_MANIFEST_PATH": str(attach)}
        result = subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        sh010, sh020, _ = otio.adapters.read_from_file(str(out)).find_clips()
        assert sh010.active_media_reference_key == VFXSWAP_KEY and VFXSWAP_KEY in sh010.metadata
        assert sh020.active_media_reference_key == "DEFAULT_MEDIA" and VFXSWAP_KEY not in sh020.metadata


class TestProvenanceHook:
    def test_stamps_clips_that_play_vfxswap_media(self, converted, cut):
        tl = otio.adapters.read_from_file(str(cut), media_linker_name="vfxswap_linker",
                                          media_linker_argument_map={**TestLinker.args(None, converted)})
        sh010, sh020, _ = tl.find_clips()
        expected = plain(sh010.metadata[VFXSWAP_KEY])  # the linker's stamp, as plain data
        del sh010.metadata[VFXSWAP_KEY]
        hook = otio.plugins.ActiveManifest().from_name("vfxswap_provenance", "hook_scripts")
        result = hook.run(tl, {})
        sh010, sh020, _ = result.find_clips()
        assert plain(sh010.metadata[VFXSWAP_KEY]) == expected
        assert VFXSWAP_KEY not in sh020.metadata
        sh010.metadata[VFXSWAP_KEY] = {"model": "kept"}
        assert hook.run(tl, {}).find_clips()[0].metadata[VFXSWAP_KEY]["model"] == "kept"
        assert hook.run(tl, {"overwrite": "true"}).find_clips()[0].metadata[VFXSWAP_KEY]["model"] == expected["model"]
