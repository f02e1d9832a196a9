"""Small I/O helpers shared by every package (no heavy imports).

Every user file hwnas reads (a space YAML, an arch JSON, a target YAML, a block folder's
manifest, a run config, the NAS-Bench-201 table) goes through :func:`read_text_file`
(or :func:`read_json_file` / :func:`load_yaml_file` on top of it), which turns every way a
read can fail into a one-line :class:`InputFileError` naming the file:

* :class:`FileAccessError`: no such file, a folder, not a regular file (a FIFO, a device),
  permission denied, any other I/O error;
* :class:`FileDecodeError`: not UTF-8 text (with the line and column of the first bad byte),
  or a damaged gzip stream;
* :class:`FileFormatError`: not valid JSON / YAML (with the line and column the parser gives),
  nesting too deep, a number too long, a YAML mapping with a duplicate key.

Output folders given on the command line are checked and created by :func:`prepare_out_dir`,
which says in one line why a folder cannot be used (a file is in the way, no permission, a
read-only file system).
"""

from __future__ import annotations

import json
import math
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hwnas.errors import ConfigError, first_line, one_line, os_reason

__all__ = [
    "FileAccessError",
    "FileDecodeError",
    "FileFormatError",
    "InputFileError",
    "OutputPathError",
    "atomic_write",
    "atomic_write_text",
    "check_out_dir",
    "canonical_json",
    "json_safe",
    "load_yaml_file",
    "parse_yaml_text",
    "prepare_out_dir",
    "remove_write_leftovers",
    "prepare_out_file",
    "read_bytes_file",
    "read_json_file",
    "read_text_file",
]


class InputFileError(ConfigError):
    """A user file cannot be read or parsed; the message is one line naming the file."""


class FileAccessError(InputFileError):
    """The file is missing, a folder, not a regular file, unreadable (permission, I/O error)."""


class FileDecodeError(InputFileError):
    """The file is not UTF-8 text (or its gzip stream is damaged)."""


class FileFormatError(InputFileError):
    """The file's text is not valid JSON / YAML (or the structure a reader expects)."""


class OutputPathError(ConfigError):
    """An output path cannot be used: a file is in the way, no permission, a read-only file system."""


def json_safe(obj: Any) -> Any:
    """``obj`` with every non-finite float (NaN, ±inf) in nested dicts and lists made ``None``,
    so that it serialises as strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [json_safe(v) for v in obj]
    return obj


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no spaces: the canonical form used for ids and hashes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike[str], write: Callable[[str], object]) -> Path:
    """Make ``path`` atomically: ``write(tmp)`` writes a temporary file beside it, which then
    replaces ``path``; readers see the old file or the whole new one, never a part. The file gets
    the permissions a plain ``open`` would give (0666 less the umask), not the temporary's 0600.
    A failure (or an interruption) removes the temporary and re-raises. Returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def remove_write_leftovers(*paths: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporaries (``.NAME.XXXX.tmp``) that :func:`atomic_write` left beside each of
    ``paths`` when its writer was killed (SIGKILL runs no cleanup); returns what was removed. Call
    it when a command resumes the work that writes ``paths``, before it writes them."""
    import glob

    removed = []
    for path in map(Path, paths):
        for tmp in path.parent.glob(f".{glob.escape(path.name)}.*.tmp"):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_write`)."""

    def write(tmp: str) -> None:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)

    atomic_write(path, write)


# -- reading ------------------------------------------------------------------------------------
def _role(what: str) -> str:
    return "" if what == "file" else f" ({what})"


def read_bytes_file(path: str | os.PathLike[str], what: str = "file") -> bytes:
    """The bytes of the regular file ``path``; every failure is a one-line :class:`FileAccessError`
    naming the file (``what`` names its role in messages: "space YAML", "manifest", ...)."""
    p = Path(path)
    role = _role(what)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise FileAccessError(f"{p}: no such file{role}") from None
    except NotADirectoryError:
        raise FileAccessError(f"{p}: no such file{role}: a parent of it is a file, not a folder") from None
    except OSError as exc:
        raise FileAccessError(f"{p}: cannot read{role}: {os_reason(exc)}") from None
    if stat.S_ISDIR(st.st_mode):
        raise FileAccessError(f"{p}: is a folder, not a file{role}")
    if not stat.S_ISREG(st.st_mode):  # a FIFO or a device would block or never end
        raise FileAccessError(f"{p}: not a regular file{role}")
    try:
        with open(p, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise FileAccessError(f"{p}: cannot read{role}: {os_reason(exc)}") from None


def read_text_file(path: str | os.PathLike[str], what: str = "file") -> str:
    """The UTF-8 text of ``path`` (a leading byte-order mark dropped; a ``.gz`` file decompressed).

    Raises :class:`FileAccessError` (missing, a folder, unreadable) or :class:`FileDecodeError`
    (not UTF-8: the line and column of the first bad byte; a damaged gzip stream), one line
    naming the file."""
    p = Path(path)
    data = read_bytes_file(p, what)
    if p.suffix == ".gz":
        import gzip
        import zlib

        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise FileDecodeError(f"{p}: not a valid gzip file{_role(what)}: {one_line(exc)}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        start = exc.start + (3 if data.startswith(b"\xef\xbb\xbf") else 0)
        line = data.count(b"\n", 0, start) + 1
        column = start - (data.rfind(b"\n", 0, start) + 1) + 1
        raise FileDecodeError(
            f"{p}: not UTF-8 text{_role(what)}: byte 0x{data[start]:02x} at line {line}, column {column}"
        ) from None


def read_json_file(path: str | os.PathLike[str], what: str = "file") -> Any:
    """Read a JSON file; every failure is a one-line :class:`InputFileError` naming the file
    (and the line and column of a syntax error)."""
    p = Path(path)
    text = read_text_file(p, what)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise FileFormatError(f"{p}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
    except RecursionError:
        raise FileFormatError(f"{p}: invalid JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer literal beyond Python's digit limit
        raise FileFormatError(f"{p}: invalid JSON: {one_line(exc).split(';')[0]}") from None


def _yaml_loader() -> type:
    """A SafeLoader that refuses duplicate mapping keys (YAML would keep the last one silently)."""
    import yaml

    class _Loader(yaml.SafeLoader):
        pass

    def construct_mapping(loader: Any, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = loader.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:  # unhashable: the base constructor reports it
                break
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"duplicate key {key!r} (YAML would silently keep only the last value)",
                    key_node.start_mark,
                )
        return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)

    _Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, construct_mapping)
    return _Loader


_LOADER: type | None = None


def parse_yaml_text(text: str, source: str) -> Any:
    """``yaml.safe_load(text)`` (duplicate keys refused) with every parse failure a one-line
    :class:`FileFormatError` starting with ``source`` (and the line and column the parser gives)."""
    import yaml

    global _LOADER
    if _LOADER is None:
        _LOADER = _yaml_loader()
    try:
        return yaml.load(text, Loader=_LOADER)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or first_line(exc)
        raise FileFormatError(f"{source}: invalid YAML{where}: {one_line(problem)}") from None
    except RecursionError:
        raise FileFormatError(f"{source}: invalid YAML: nested too deeply") from None
    except (ValueError, TypeError, OverflowError) as exc:  # a bad timestamp, an integer beyond the digit limit
        raise FileFormatError(f"{source}: invalid YAML: {one_line(exc).split(';')[0]}") from None


def load_yaml_file(path: str | os.PathLike[str], what: str = "file") -> Any:
    """Read a YAML file; every failure is a one-line :class:`InputFileError` naming the file
    (and the line and column of a syntax error)."""
    p = Path(path)
    return parse_yaml_text(read_text_file(p, what), str(p))


# -- output folders -----------------------------------------------------------------------------
def _writable(folder: Path, label: str) -> None:
    try:  # tried for real: root ignores permission bits, and they do not show a read-only mount
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".hwnas-write-test-")
    except OSError as exc:
        raise OutputPathError(f"{label}: the folder {folder} is not writable ({os_reason(exc)})") from None
    os.close(fd)
    os.unlink(tmp)


def _check_dir(p: Path, label: str) -> None:
    """Check, creating nothing, that folder ``p`` exists and is writable or can be created."""
    if p.exists():
        if not p.is_dir():
            raise OutputPathError(f"{label}: {p} exists and is not a folder")
        _writable(p, label)
        return
    for parent in p.parents:
        if parent.exists() or parent.is_symlink():
            if not parent.is_dir():
                raise OutputPathError(f"{label}: {parent} is not a folder")
            _writable(parent, label)
            return


def _make_dir(p: Path, label: str) -> None:
    """Create folder ``p`` (and its parents) and check it is writable; ``label`` starts messages."""
    _check_dir(p, label)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputPathError(f"{label}: cannot create the folder {p} ({os_reason(exc)})") from None
    _writable(p, label)


def check_out_dir(path: str | os.PathLike[str], option: str = "--out") -> Path:
    """Check, creating nothing, that ``path`` can serve as an output folder: an existing writable
    folder, or one that can be created in a writable folder; one-line :class:`OutputPathError`
    starting with ``option`` and the path otherwise."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise OutputPathError(f"{option} {p}: exists and is not a folder")
    _check_dir(p, f"{option} {p}")
    return p


def prepare_out_dir(path: str | os.PathLike[str], option: str = "--out") -> Path:
    """Create the output folder ``path`` (and its parents) and check that it is writable; one-line
    :class:`OutputPathError` starting with ``option`` and the path otherwise (a file is in the way, a
    parent is a file, no permission, a read-only file system)."""
    p = check_out_dir(path, option)
    _make_dir(p, f"{option} {p}")
    return p


def prepare_out_file(path: str | os.PathLike[str], option: str = "--out") -> Path:
    """Check that the output file ``path`` can be created or updated: not a folder, its folder
    created and writable; one-line :class:`OutputPathError` otherwise."""
    p = Path(path)
    if p.is_dir():
        raise OutputPathError(f"{option} {p}: is a folder; {option} names a file")
    _make_dir(p.parent, f"{option} {p}")
    return p
