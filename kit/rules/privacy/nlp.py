"""Loading spaCy's French pipeline quickly and without the libraries it does not need.

Three costs dominated the start of a process that scans text (measured on 2 cores, fr_core_news_md):

* **Third-party factories.** Every ``spacy.Language`` imports all the pipeline factories that installed
  packages declare (the ``spacy_factories`` entry points). Presidio declares one, whose module imports
  transformers and torch: 5-7 s and about 400 MB for nothing, since the French pipeline only uses
  spaCy's own components. They are not loaded here (``entry_points`` off on that registry while loading).
* **torch through thinc.** ``import spacy`` imports thinc, which imports torch when it is installed
  (for models built on PyTorch, which the French pipelines are not): 2-3 s and about 220 MB. spaCy is
  imported here with torch unavailable, so thinc records that it has none; torch itself stays importable
  afterwards for whatever else in the process needs it.
* **The French tokenizer's patterns.** ``spacy.lang.fr`` compiles one regular expression of about
  300,000 characters at import (hyphenated and elided words), which takes Python's ``re`` 4-5 s. The
  compiled form of each such pattern is kept in ``$XDG_CACHE_HOME/kit/regex`` (a file per pattern, Python
  version and ``re`` engine version), so later processes rebuild it in milliseconds; the pattern text
  is stored with it and compared, and CPython's ``re`` engine checks the compiled code when it is loaded.
  Where the cache cannot be read or written, patterns are compiled as usual.

The pipeline is loaded without what the rules never read: the dependency parser (the pipeline's sentence
recognizer gives the sentence boundaries for a fifth of the cost), the lemmatizer, and the vocabulary's
table of known strings.
"""

from __future__ import annotations

import array
import contextlib
import hashlib
import marshal
import os
import re
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

# Left out of the load: the lemmatizer (no rule reads lemmas) and the vocabulary's string table (700,000 strings,
# 2 s and 130 MB; the pipeline hashes what it reads, and the strings of each text parsed are added as it is).
NOT_READ = ("lemmatizer", "strings")
LARGE_PATTERN = 10_000  # characters: patterns at least this long are worth a cache file
_PATCH_LOCK = threading.Lock()


def regex_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "kit" / "regex"


def _cache_file(pattern: str, flags: int) -> Path:
    import _sre

    digest = hashlib.sha256(f"{sys.version}|{_sre.MAGIC}|{flags}|{pattern}".encode("utf-8", "surrogatepass"))
    return regex_cache_dir() / f"{digest.hexdigest()[:32]}.marshal"


def _read(path: Path, pattern: str) -> re.Pattern[str] | None:
    """The compiled pattern stored in ``path`` if it is this pattern's, else None."""
    import _sre

    with contextlib.suppress(OSError, ValueError, EOFError, TypeError, RuntimeError):
        stored, flags, code, groups, groupindex, indexgroup = marshal.loads(path.read_bytes())
        if stored == pattern:
            compiled: re.Pattern[str] = _sre.compile(pattern, flags, array.array("I", code).tolist(), groups,
                                                     groupindex, indexgroup)
            return compiled
    return None


def compile_cached(pattern: str, flags: int = 0) -> re.Pattern[str]:
    """``re.compile(pattern, flags)``, reading and writing the compiled code of a long pattern from the cache."""
    try:
        import _sre
        from re import _compiler, _parser  # type: ignore[attr-defined]
    except ImportError:  # another Python than CPython 3.11+: no cache
        return re.compile(pattern, flags)
    if array.array("I").itemsize != _sre.CODESIZE:
        return re.compile(pattern, flags)
    path = _cache_file(pattern, flags)
    known = _read(path, pattern)
    if known is not None:
        return known
    parsed = _parser.parse(pattern, flags)
    code = [int(c) for c in _compiler._code(parsed, flags)]
    groupindex = dict(parsed.state.groupdict)
    indexgroup: list[str | None] = [None] * parsed.state.groups
    for name, index in groupindex.items():
        indexgroup[index] = name
    state_flags = int(flags | parsed.state.flags)
    compiled: re.Pattern[str] = _sre.compile(pattern, state_flags, code, parsed.state.groups - 1, groupindex,
                                             tuple(indexgroup))
    with contextlib.suppress(OSError, ValueError):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(marshal.dumps((pattern, state_flags, array.array("I", code).tobytes(),
                                        parsed.state.groups - 1, groupindex, tuple(indexgroup))))
            os.replace(tmp, path)
        finally:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    return compiled


@contextlib.contextmanager
def _long_patterns_cached() -> Iterator[None]:
    """``re.compile`` goes through the cache for long patterns while the block runs (any thread; other
    patterns are compiled exactly as before)."""
    original: Callable[..., Any] = re.compile

    def compile_(pattern: Any, flags: Any = 0) -> Any:
        if isinstance(pattern, str) and len(pattern) >= LARGE_PATTERN:
            return compile_cached(pattern, int(flags))
        return original(pattern, flags)

    with _PATCH_LOCK:
        re.compile = compile_  # type: ignore[assignment]
        try:
            yield
        finally:
            re.compile = original  # type: ignore[assignment]


def import_spacy() -> Any:
    """``import spacy`` without thinc importing torch (unless torch is loaded already)."""
    if "spacy" in sys.modules:
        return sys.modules["spacy"]
    hidden = [name for name in ("torch", "cupy") if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  # makes `import torch` fail inside thinc
    try:
        import spacy
    finally:
        for name in hidden:
            if sys.modules.get(name, "") is None:
                del sys.modules[name]
    return spacy


def load_pipeline(name: str) -> Any:
    """The installed spaCy pipeline ``name``, with its sentence recognizer instead of the parser."""
    spacy = import_spacy()
    factories = spacy.util.registry._entry_point_factories
    with _long_patterns_cached():
        factories.entry_points = False
        try:
            nlp = spacy.load(name, exclude=list(NOT_READ))
        finally:
            factories.entry_points = True
    if "senter" in nlp.component_names and "parser" in nlp.pipe_names:
        # The rules need parts of speech, entities and sentence boundaries, not the dependency tree: the
        # pipeline's own sentence recognizer gives the boundaries for a fifth of the parser's cost.
        nlp.remove_pipe("parser")
        nlp.enable_pipe("senter")
    return nlp
