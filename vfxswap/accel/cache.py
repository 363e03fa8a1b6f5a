"""A rebuildable on-disk cache of compiled swap programs (``torch.export`` ``.ep`` archives).

Compiled engines (TensorRT) are tied to a GPU architecture and to library versions, so a model dir
keeps them as a *cache*, never as the model: each program is stored under the digest of a key that
names everything it depends on, and a program whose key no longer matches is rebuilt.

Layout inside a cache folder (``MODEL/export/tensorrt/`` for the TensorRT runner)::

    swap-<digest[:16]>.ep     the program, written by torch.export.save (or torch_tensorrt.save)
    swap-<digest[:16]>.json   {"key", "digest", "build_seconds", "check", "created", ...}: the commit point
    .swap-<digest[:16]>.lock  serialises builders of one key (farm nodes sharing a model dir)

The key (:func:`engine_key`) holds the weights' SHA-256, the ModelCard, the device (GPU name and
compute capability), library versions, the shape profile and the precision; its digest is the SHA-256
of its canonical JSON. Storing a new program deletes older programs built for the *same* device with
another key; programs of other devices stay (a model dir on shared storage serves several GPU kinds).

Loading untrusted files: ``torch.export.load`` is not a safe loader. In torch 2.13 it unpickles
tensor-subclass weights and constants with ``torch.load(weights_only=False)``, "opaque" constants with
``pickle.loads``, falls back to ``weights_only=False`` for sample inputs that fail the safe loader,
reads an older zip layout the same way, and dlopens AOTInductor libraries found in the archive. A
plain pickle renamed ``.ep`` is not executed by it (it is not a zip, so both readers fail), but a
crafted archive would be. So :func:`check_program_file` inspects the archive statically first (every
zip entry, read through torch's own archive reader; JSON configs; pickle opcodes; nothing is
unpickled or imported) and refuses anything that would run pickle code outside an allow-list, and
any two entries of one name; :func:`load_program` then loads the very bytes it checked. The cache
treats a refused or unreadable file as corrupt: it logs it, deletes it and rebuilds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import logging
import os
import pickletools
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..atomic import acquire_lock, remove_quietly, replace_atomically
from ..errors import EngineError, ModelError, OutputError, VfxSwapError, one_line
from ..model.card import ModelCard

if TYPE_CHECKING:
    from torch.export import ExportedProgram

log = logging.getLogger(__name__)

KEY_FORMAT = 1  # bump when the key's layout or the meaning of a cached program changes
PROGRAM_SUFFIX = ".ep"
RECORD_SUFFIX = ".json"
_CHUNK = 1 << 20

# Entries of a PT2 archive that mean native code or formats torch loads with pickle (see module doc).
_NATIVE_DIRS = ("data/aotinductor/", "data/executorch/", "data/mtia", "xl_model_weights/")
# Pickle opcodes that push a string usable by STACK_GLOBAL, and those that only memoise the top.
_STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING", "BINSTRING", "STRING"}
_MEMO_PUT_OPS = {"MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT"}
_MEMO_GET_OPS = {"GET", "BINGET", "LONG_BINGET"}

Build = Callable[[], "ExportedProgram | Callable[[Path], object]"]
Check = Callable[["ExportedProgram"], Mapping[str, float]]


class CorruptProgram(ModelError):
    """A program file that is unreadable, truncated, or would run code when loaded (exit 3)."""


@dataclasses.dataclass(frozen=True)
class CachedProgram:
    """A program from :meth:`ProgramCache.get_or_build`.

    Attributes:
        program: the loaded ExportedProgram (``program.module()`` runs it).
        path: its ``.ep`` file.
        record: the JSON record stored beside it (``key``, ``digest``, ``build_seconds``, ``check``).
        built: True when this call built it, False when it came from the cache.
    """

    program: ExportedProgram
    path: Path
    record: Mapping[str, Any]
    built: bool


# ----------------------------------------------------------------------------------------------
# keys


def sha256_file(path: str | os.PathLike, *, chunk_size: int = _CHUNK) -> str:
    """Hex SHA-256 of a file, read in ``chunk_size`` chunks (weights can be hundreds of MiB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def canonical_json(obj: Any) -> str:
    """``obj`` as JSON with sorted keys and no whitespace: equal keys give equal text."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def key_digest(key: Mapping[str, Any]) -> str:
    """Hex SHA-256 of the key's canonical JSON."""
    return hashlib.sha256(canonical_json(key).encode("ascii")).hexdigest()


def engine_key(*, weights_sha256: str, card: ModelCard, device: Mapping[str, Any], versions: Mapping[str, str],
               profile: Mapping[str, Any], precision: str) -> dict[str, Any]:
    """Everything a compiled program depends on, as plain JSON data.

    Args:
        weights_sha256: :func:`sha256_file` of ``weights.safetensors``.
        card: the model's card (all fields, so an architecture change never reuses an engine).
        device: what the program was built for, e.g. ``{"name": "NVIDIA H100 80GB HBM3",
            "capability": "9.0"}``; stale programs are pruned per device.
        versions: library versions the program format depends on (torch, tensorrt, torch_tensorrt).
        profile: the shape profile, e.g. ``{"min_batch": 1, "opt_batch": 8, "max_batch": 8, "resolution": 128}``.
        precision: ``fp16``, ``bf16`` or ``fp32``.
    """
    return {"format": KEY_FORMAT, "weights_sha256": weights_sha256, "card": dataclasses.asdict(card),
            "device": dict(device), "versions": dict(versions), "profile": dict(profile), "precision": precision}


# ----------------------------------------------------------------------------------------------
# static check of a PT2 archive


def pickle_globals(data: bytes) -> set[str]:
    """The ``module.name`` globals a pickle would import, read from its opcodes without unpickling.

    Raises:
        CorruptProgram: the stream is malformed, uses the copyreg extension registry, or builds a
            global's name at load time (STACK_GLOBAL fed by anything but literal strings).
    """
    found: set[str] = set()
    memo: dict[int, Any] = {}
    recent: list[Any] = []  # values pushed by the last few string/memo-get opcodes, for STACK_GLOBAL
    last: Any = None
    try:
        for op, arg, _ in pickletools.genops(data):
            name = op.name
            if name in ("GLOBAL", "INST"):
                module, _, attr = str(arg).partition(" ")
                found.add(f"{module}.{attr}")
                recent, last = [], None
            elif name == "STACK_GLOBAL":
                if len(recent) < 2 or not all(isinstance(v, str) for v in recent[-2:]):
                    raise CorruptProgram("a pickle builds a global's name at load time")
                found.add(f"{recent[-2]}.{recent[-1]}")
                recent, last = [], None
            elif name in ("EXT1", "EXT2", "EXT4"):
                raise CorruptProgram("a pickle uses the copyreg extension registry")
            elif name in _STRING_OPS:
                last = arg if isinstance(arg, str) else arg.decode("latin-1") if isinstance(arg, bytes) else None
                recent.append(last)
            elif name in _MEMO_PUT_OPS:
                memo[len(memo) if name == "MEMOIZE" else arg] = last
            elif name in _MEMO_GET_OPS:
                last = memo.get(arg)
                recent.append(last)
            elif name in ("FRAME", "PROTO"):
                continue  # framing only: a frame boundary may fall between a name and its STACK_GLOBAL
            else:
                recent, last = [], None
    except (ValueError, EOFError, UnicodeDecodeError) as exc:
        raise CorruptProgram(f"a pickle in it is malformed ({one_line(exc)})") from None
    return found


def check_program_file(path: str | os.PathLike, *, allowed_globals: frozenset[str] = frozenset()) -> None:
    """Refuse ``path`` unless ``torch.export.load`` would read it without running foreign code.

    Accepted: a PT2 archive (``archive_format`` = ``pt2``) whose weights and tensor constants are raw
    tensor bytes, whose sample inputs pass torch's own ``weights_only`` allow-list (checked
    statically with ``torch.serialization.get_unsafe_globals_in_checkpoint``), whose TorchBind
    constants (``custom_obj_*``, read by TorchScript's unpickler, which only builds registered
    TorchBind classes and tensors) are any, and whose opaque constants (``opaque_obj_*``, read with
    ``pickle.loads``) import nothing outside ``allowed_globals``. Refused: anything else, including
    a plain pickle, the pre-2.7 zip layout, pickled tensor subclasses, AOTInductor libraries and an
    archive holding two entries of one name (torch's zip reader matches names ignoring case and
    reads the first, Python's ``zipfile`` the last: a checker and a loader would see different files).

    Raises:
        CorruptProgram: with the reason.
    """
    check_program_bytes(_read_program(path), allowed_globals=allowed_globals)


def check_program_bytes(data: bytes, *, allowed_globals: frozenset[str] = frozenset()) -> None:
    """:func:`check_program_file` of a program already read into memory.

    Every zip entry is listed (``ZipFile.infolist()``: duplicates included); the entries are then
    read through torch's own archive reader, so what is checked is what ``torch.export.load`` reads.
    """
    from torch.export.pt2_archive import PT2ArchiveReader

    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = [info.filename for info in archive.infolist()]
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise CorruptProgram(f"not a torch.export archive ({one_line(exc)})") from None
    _refuse_duplicates(names)
    roots = {n.split("/", 1)[0] for n in names}
    if len(roots) != 1 or any("/" not in n for n in names):
        raise CorruptProgram("not a torch.export archive (expected one top-level folder)")
    root = roots.pop() + "/"
    try:
        reader = PT2ArchiveReader(io.BytesIO(data))
        records = list(reader.get_file_names())
    except Exception as exc:  # torch's reader raises RuntimeError or AssertionError (archive_format)
        raise CorruptProgram(f"not a PT2 archive ({type(exc).__name__}: {one_line(exc)})") from None
    _refuse_duplicates(records)
    if sorted(records) != sorted(n[len(root):] for n in names):
        raise CorruptProgram("its zip entries read differently in torch's reader and in Python's")
    try:
        _check_archive(records, reader.read_bytes, allowed_globals)
    except (KeyError, ValueError, TypeError, AttributeError, RuntimeError, OSError) as exc:
        raise CorruptProgram(f"malformed torch.export archive ({type(exc).__name__}: {one_line(exc)})") from None


def _read_program(path: str | os.PathLike) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise CorruptProgram(f"cannot read it ({one_line(exc)})") from None


def _refuse_duplicates(names: list[str]) -> None:
    """Refuse two zip entries whose names differ at most in case (torch's reader ignores case)."""
    seen: set[str] = set()
    for name in names:
        folded = name.casefold()
        if folded in seen:
            raise CorruptProgram(f"it holds more than one zip entry named {name} (a crafted archive)")
        seen.add(folded)


def _check_archive(names: list[str], read_entry: Callable[[str], bytes], allowed_globals: frozenset[str]) -> None:
    """Check the archive whose entries (relative to its top folder) are ``names``, read with ``read_entry``."""
    entries = set(names)

    def read(rel: str) -> bytes:
        if rel not in entries:
            raise CorruptProgram(f"not a torch.export archive ({rel} is missing)")
        return read_entry(rel)

    if read("archive_format").strip() != b"pt2":
        raise CorruptProgram("not a PT2 archive (older torch.export layouts are read with pickle)")
    native = sorted(n for n in entries if n.startswith(_NATIVE_DIRS))
    if native:
        raise CorruptProgram(f"it holds native code or foreign payloads ({native[0]})")
    model_files = sorted(n for n in entries if n.startswith("models/"))  # torch loads every entry there
    odd = [n for n in model_files if not n.endswith(".json")]
    if odd:
        raise CorruptProgram(f"not a torch.export archive (unexpected entry {odd[0]})")
    models = [n[len("models/"):-len(".json")] for n in model_files]
    if not models:
        raise CorruptProgram("not a torch.export archive (no models/*.json)")
    for model in models:
        for legacy in (f"data/weights/{model}.pt", f"data/constants/{model}.pt"):
            if legacy in entries:
                raise CorruptProgram(f"it stores {legacy} in the legacy pickled layout")
        read(f"data/sample_inputs/{model}.pt")  # must exist; checked below with every other pickle
        weights = json.loads(read(f"data/weights/{model}_weights_config.json"))["config"]
        for fqn, meta in weights.items():
            if meta["use_pickle"]:
                raise CorruptProgram(f"weight {fqn} is a pickled tensor subclass")
        constants = json.loads(read(f"data/constants/{model}_constants_config.json"))["config"]
        for fqn, meta in constants.items():
            path_name = str(meta["path_name"])
            if path_name.startswith("tensor_"):
                if meta["use_pickle"]:
                    raise CorruptProgram(f"constant {fqn} is a pickled tensor subclass")
            elif path_name.startswith("custom_obj_"):
                continue  # TorchScript's unpickler: registered TorchBind classes only
            elif path_name.startswith("opaque_obj_"):
                read(f"data/constants/{path_name}")  # must exist; checked below
            else:
                raise CorruptProgram(f"constant {fqn} has an unknown payload kind ({path_name})")
    for name in sorted(entries):  # every entry torch reads with an unpickler, named by a config or not
        if name.startswith("data/sample_inputs/"):
            _check_torch_pickle(read(name), name)
        elif name.startswith("data/constants/opaque_obj_"):
            unsafe = sorted(pickle_globals(read(name)) - allowed_globals)
            if unsafe:
                raise CorruptProgram(f"constant {name} would import {', '.join(unsafe[:3])} when loaded")


def _check_torch_pickle(data: bytes, where: str) -> None:
    import torch

    try:
        unsafe = torch.serialization.get_unsafe_globals_in_checkpoint(io.BytesIO(data))
    except Exception as exc:  # pickle's and torch's own errors for a stream it cannot read statically
        raise CorruptProgram(f"{where} cannot be checked ({type(exc).__name__}: {one_line(exc)})") from None
    if unsafe:
        raise CorruptProgram(f"{where} would import {', '.join(sorted(unsafe)[:3])} when loaded")


def load_program(path: str | os.PathLike, *, allowed_globals: frozenset[str] = frozenset()) -> ExportedProgram:
    """Read ``path`` once, :func:`check_program_bytes` it, then ``torch.export.load`` those same bytes
    (so the file cannot change between the check and the load).

    Raises:
        CorruptProgram: the file is refused or torch cannot read it (one line, with the path).
    """
    try:
        return _load_checked(path, allowed_globals)
    except CorruptProgram as exc:
        raise CorruptProgram(f"{path} was not loaded: {exc}; delete it (a cached program is rebuilt "
                             "when missing) or replace it with one you exported") from None


def _load_checked(path: str | os.PathLike, allowed_globals: frozenset[str]) -> ExportedProgram:
    import torch

    data = _read_program(path)
    check_program_bytes(data, allowed_globals=allowed_globals)
    try:
        return torch.export.load(io.BytesIO(data))
    except Exception as exc:  # torch raises RuntimeError, KeyError, ValueError, SerializeError, ...
        raise CorruptProgram(f"torch.export.load failed ({type(exc).__name__}: {one_line(exc)})") from None


# ----------------------------------------------------------------------------------------------
# the cache


class ProgramCache:
    """Programs keyed by :func:`engine_key` in one folder.

    Args:
        folder: where programs live (created on first store). When it cannot be written (a
            read-only model dir), builds go to a private temporary folder instead; lookups still
            read ``folder`` first.
        prefix: file name prefix (``swap``).
        allowed_globals: ``module.name`` globals an opaque constant may import (see
            :func:`check_program_file`), e.g. TensorRT's engine class.
    """

    def __init__(self, folder: str | os.PathLike, *, prefix: str = "swap",
                 allowed_globals: frozenset[str] = frozenset()) -> None:
        self.folder = Path(folder)
        self.prefix = prefix
        self.allowed_globals = frozenset(allowed_globals)

    def paths(self, key: Mapping[str, Any], folder: Path | None = None) -> tuple[Path, Path]:
        """``(program .ep, record .json)`` paths of ``key`` in ``folder`` (default: the cache folder)."""
        stem = f"{self.prefix}-{key_digest(key)[:16]}"
        base = folder or self.folder
        return base / f"{stem}{PROGRAM_SUFFIX}", base / f"{stem}{RECORD_SUFFIX}"

    def load(self, key: Mapping[str, Any], folder: Path | None = None) -> CachedProgram | None:
        """The cached program of ``key``, or None when there is none; a corrupt one is logged,
        deleted and reported as None."""
        program_path, record_path = self.paths(key, folder)
        if not (program_path.is_file() and record_path.is_file()):
            return None
        try:
            try:
                record = json.loads(record_path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise CorruptProgram(f"its record {record_path.name} is unreadable ({one_line(exc)})") from None
            if not isinstance(record, dict) or record.get("key") != json.loads(canonical_json(key)):
                raise CorruptProgram(f"its record {record_path.name} holds another key")
            program = _load_checked(program_path, self.allowed_globals)
        except CorruptProgram as exc:
            log.warning("cached program %s is unusable: %s; rebuilding it", program_path, exc)
            for path in (program_path, record_path):
                remove_quietly(path)
            return None
        log.info("reusing cached program %s", program_path)
        return CachedProgram(program=program, path=program_path, record=record, built=False)

    def get_or_build(self, key: Mapping[str, Any], build: Build, *, check: Check | None = None,
                     extra: Mapping[str, Any] | None = None) -> CachedProgram:
        """The program of ``key``: reused when cached, else built, stored, loaded back, checked.

        Args:
            key: from :func:`engine_key`.
            build: returns an ExportedProgram (saved with ``torch.export.save``) or a callable that
                writes the program file to the path it is given (e.g. ``torch_tensorrt.save``).
            check: called with the program as loaded back from disk; returns the measured
                differences (stored in the record) or raises (then nothing is kept).
            extra: more JSON data for the record.

        Raises:
            EngineError (from ``build``/``check``), OutputError (the file cannot be written anywhere).
        """
        found = self.load(key)
        if found is not None:
            return found
        folder = self._writable_folder()
        program_path, record_path = self.paths(key, folder)
        with _exclusive(program_path.with_name(f".{program_path.stem}.lock")):
            found = self.load(key, folder)  # another process may have built it while we waited
            if found is not None:
                return found
            start = time.perf_counter()
            built = build()
            replace_atomically(program_path, lambda tmp: _write_program(built, tmp))
            seconds = time.perf_counter() - start
            try:
                try:
                    program = _load_checked(program_path, self.allowed_globals)
                except CorruptProgram as exc:  # our own build: an engine failure, not a bad input
                    raise EngineError(f"the program just built into {program_path} does not load back: {exc}") from None
                diffs = dict(check(program)) if check is not None else {}
            except BaseException:
                remove_quietly(program_path)
                raise
            record = {"key": json.loads(canonical_json(key)), "digest": key_digest(key), "build_seconds": round(seconds, 3),
                      "check": diffs, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "vfxswap_version": __version__,
                      **(extra or {})}
            replace_atomically(record_path, lambda tmp: tmp.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n",
                                                                       encoding="utf-8"))
        log.info("built %s in %.1f s", program_path, seconds)
        self.prune(key, folder)
        return CachedProgram(program=program, path=program_path, record=record, built=True)

    def prune(self, key: Mapping[str, Any], folder: Path | None = None) -> list[Path]:
        """Delete programs built for the same ``device`` as ``key`` under another key; returns the
        deleted files. Programs of other devices and files that are not ours stay."""
        base = folder or self.folder
        keep = key_digest(key)
        removed: list[Path] = []
        for record_path in sorted(base.glob(f"{self.prefix}-*{RECORD_SUFFIX}")):
            try:
                record = json.loads(record_path.read_text(encoding="utf-8"))
                other = record["key"]
                digest = record["digest"]
            except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError):
                continue  # not ours, or being written: leave it
            if digest == keep or not isinstance(other, dict) or other.get("device") != key.get("device"):
                continue
            program_path = record_path.with_suffix(PROGRAM_SUFFIX)
            for path in (program_path, record_path, program_path.with_name(f".{program_path.stem}.lock")):
                if path.exists():
                    remove_quietly(path)
                    removed.append(path)
        if removed:
            log.info("removed %d stale cached file(s) for %s", len(removed), key.get("device"))
        return removed

    def _writable_folder(self) -> Path:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            if os.access(self.folder, os.W_OK):
                return self.folder
        except OSError:
            pass
        folder = Path(tempfile.mkdtemp(prefix=f"vfxswap-{self.prefix}-"))
        log.info("%s is not writable: building into %s", self.folder, folder)
        return folder


def _write_program(built: ExportedProgram | Callable[[Path], object], path: Path) -> None:
    """Write ``built`` (an ExportedProgram, or a callable writing the file) to ``path``; a failure
    leaves no file behind."""
    import torch

    try:
        if isinstance(built, torch.export.ExportedProgram):  # checked first: it is callable too
            with open(path, "wb") as f:
                torch.export.save(built, f)
        else:
            built(path)
    except OSError:
        raise  # replace_atomically removes the file and reports it
    except VfxSwapError:
        remove_quietly(path)
        raise
    except Exception as exc:  # the serializer's own errors
        remove_quietly(path)
        raise OutputError(f"cannot save the program to {path}: {type(exc).__name__}: {one_line(exc)}") from None


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``lock_path``; without one (no fcntl, a folder we cannot write)
    carry on unlocked: the lock only saves duplicate builds."""
    name = lock_path.name.removesuffix(".lock").lstrip(".")
    try:
        fd = acquire_lock(lock_path, on_wait=lambda: log.info("waiting for another process building %s", name))
    except OutputError:
        fd = None
    try:
        yield
    finally:
        if fd is not None:
            os.close(fd)
