"""The implementation registry: entries are data, frameworks are imported only when an entry is built.

Built-in implementations (``softgrad.implementations.*``, the top-level ``implementations/`` folder) and
third-party ones register through the same public API, :func:`implementation` or :func:`register`.
Plugin files are Python files that call that API; ``SOFTGRAD_PLUGINS`` (a path-separated list) names
files every command, pytest run and asv run loads.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib
import importlib.util
import json
import math
import numbers
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType, ModuleType
from typing import Any

from .backends import get_backend
from .contract import DTYPES, OPS, check_dtype, check_op

#: ``build(device) -> {op: callable}``; softmax/jacobian take ``x``, vjp takes ``(x, g)``, all native arrays.
BuildFn = Callable[[str], Mapping[str, Callable[..., Any]]]

BUILTIN_MODULES: tuple[str, ...] = ("loops", "numpy_vectorized", "numba_jit", "numba_fused", "torch_impls",
                                     "torch_compile", "jax_impls")
PLUGINS_ENV = "SOFTGRAD_PLUGINS"
ENTRY_POINT_GROUP = "softgrad.implementations"
#: how a process hands its loaded plugin files to its children: a JSON list, so a path may hold ``:``
PLUGINS_JSON_ENV = "SOFTGRAD_PLUGIN_FILES"
#: names and families: they become benchmark class names, file names and command-line arguments
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}")


def check_number(name: str, value: Any, *, low: float, high: float, integer: bool = False,
                 low_open: bool = False) -> Any:
    """``value`` of the public argument ``name`` as a plain ``int`` (``integer``) or ``float``, else one-line
    errors naming the argument: ``TypeError`` unless it is a real number (an integer where ``integer``;
    never a bool, a string or None), ``ValueError`` unless it is finite and in ``[low, high]`` (``(low, high]``
    where ``low_open``). Every numeric argument of the public API goes through this one rule at its edge, so
    a NaN, an infinity or a 400-digit integer never reaches a comparison or a clock that would take it."""
    kind = "an integer" if integer else "a number"
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)  # NumPy's bool is no numbers.Real
            or (integer and not isinstance(value, numbers.Integral))):
        raise TypeError(f"{name} must be {kind}, not {type(value).__name__} {_shown(value)}")
    if isinstance(value, numbers.Integral):
        number: float | int = int(value)
        finite = True
    else:
        try:
            number = float(value)
        except OverflowError:  # a Fraction past the float range
            number = math.inf if value > 0 else -math.inf
        finite = math.isfinite(number)
    above = number > low if low_open else number >= low
    if not finite or not above or number > high:
        span = f"{'(' if low_open else '['}{low:g}, {high:g}]"
        raise ValueError(f"{name} must be {'an integer' if integer else 'a finite number'} in {span}, "
                         f"not {_shown(value)}")
    return number if integer else float(number)


def _shown(value: Any) -> str:
    """``value`` for an error message: a huge integer by its size, anything else by a short repr."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and abs(int(value)) >= 10 ** 18:
        return f"an integer of {int(abs(int(value)).bit_length() * math.log10(2)) + 1} digits"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def identifier(name: str) -> str:
    """The Python identifier part of an entry's benchmark name: ``torch-native`` -> ``torch_native``.
    :func:`register` refuses two names with one identifier, so benchmark names map back one-to-one."""
    return re.sub(r"\W", "_", name)


def gpu_driver_present() -> bool:
    """Whether an NVIDIA driver is installed (its device node or ``nvidia-smi``), without importing anything."""
    return os.path.exists("/dev/nvidiactl") or shutil.which("nvidia-smi") is not None


@dataclass(frozen=True)
class Implementation:
    """One registry entry: what an implementation is, what it supports and what it needs.

    ``build`` is called once per device, imports the framework and returns the op callables; nothing
    else in the entry touches a framework. ``max_n`` caps the row length per op (for instance the
    pure-Python Jacobian) and ``max_elements`` the input's total size per op (element-by-element code
    on a 70000-row batch); ``compiles`` marks JIT families whose first call compiles.
    """

    name: str
    family: str
    build: BuildFn = field(repr=False, compare=False)
    backend: str = "numpy"
    ops: tuple[str, ...] = OPS
    dtypes: tuple[str, ...] = ("float64", "float32")
    devices: tuple[str, ...] = ("cpu",)
    requires: tuple[str, ...] = ()
    max_n: Mapping[str, int] = field(default_factory=dict)
    max_elements: Mapping[str, int] = field(default_factory=dict)
    compiles: bool = False
    description: str = ""
    source: str = ""
    #: roles, as data: the report's speedups are over the ``baseline`` entry; tags name groups a report
    #: section speaks of (``writeup``: the write-up's three ways to get J; ``writeup-claimed``: the one it
    #: calls the fastest)
    baseline: bool = False
    tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.name or not self.family:
            raise ValueError("an implementation needs a name and a family")
        for what, value in (("name", self.name), ("family", self.family)):
            if not isinstance(value, str) or not NAME_PATTERN.fullmatch(value):
                raise ValueError(f"implementation {what} {value!r} is not allowed: use 1 to 64 letters, digits "
                                 f"and _.+- starting with a letter or digit")
        for op in self.ops:
            check_op(op)
        for dt in self.dtypes:
            check_dtype(dt)
        for what in ("max_n", "max_elements"):
            limits = {check_op(op): check_number(f"{what}[{op!r}]", v, low=1, high=sys.maxsize, integer=True)
                      for op, v in getattr(self, what).items()}
            object.__setattr__(self, what, MappingProxyType(limits))
        object.__setattr__(self, "ops", tuple(self.ops))
        object.__setattr__(self, "dtypes", tuple(self.dtypes))
        object.__setattr__(self, "devices", tuple(self.devices))
        object.__setattr__(self, "requires", tuple(self.requires))
        object.__setattr__(self, "tags", tuple(self.tags))

    def missing(self) -> list[str]:
        """Modules this entry needs that are not installed (checked without importing them)."""
        backend = get_backend(self.backend)
        return [m for m in dict.fromkeys((*backend.requires, *self.requires)) if importlib.util.find_spec(m) is None]

    @property
    def available(self) -> bool:
        return not self.missing()

    def unavailable_reason(self) -> str | None:
        """Why this entry cannot run here, or None."""
        missing = self.missing()
        return f"not installed: {', '.join(missing)}" if missing else None

    def available_devices(self) -> tuple[str, ...]:
        """Declared devices that exist on this machine (imports the framework)."""
        if not self.available:
            return ()
        present = get_backend(self.backend).devices()
        return tuple(d for d in self.devices if d in present)

    def has_device(self, device: str) -> bool:
        """Whether ``device`` is declared and present here. Every backend runs on the CPU, and a GPU needs a
        driver, so the framework is imported (to ask it) only for a GPU where an NVIDIA driver is installed:
        a process that plans, checks or reports in workers never loads a framework's thread pools."""
        if device not in self.devices or not self.available:
            return False
        if device == "cpu":
            return True
        return gpu_driver_present() and device in self.available_devices()

    def present_devices(self) -> tuple[str, ...]:
        """The declared devices present here (:meth:`has_device`)."""
        return tuple(d for d in self.devices if self.has_device(d))

    def unsupported_reason(self, op: str, dtype: str, device: str = "cpu", n: int | None = None,
                           size: int | None = None) -> str | None:
        """Why this entry does not run ``op`` for ``dtype`` on ``device`` at row length ``n`` and input
        ``size`` (elements), or None."""
        if op not in self.ops:
            return f"{self.name} does not implement {op}"
        if dtype not in self.dtypes:
            return f"{self.name} does not support {dtype}"
        if device not in self.devices:
            return f"{self.name} does not run on {device}"
        limit = self.max_n.get(op)
        if n is not None and limit is not None and n > limit:
            return f"{self.name} {op} is limited to n <= {limit}"
        limit = self.max_elements.get(op)
        if size is not None and limit is not None and size > limit:
            return f"{self.name} {op} is limited to inputs of <= {limit} elements"
        return self.unavailable_reason()

    unsupported = unsupported_reason  # the name before unsupported_reason

    def ops_for(self, device: str = "cpu") -> Mapping[str, Callable[..., Any]]:
        """The op callables for ``device``, built once and cached."""
        return _built(self, device)

    @classmethod
    def from_ops(cls, name: str, *, softmax: Callable[..., Any] | None = None,
                 jacobian: Callable[..., Any] | None = None, vjp: Callable[..., Any] | None = None,
                 family: str | None = None, **declared: Any) -> Implementation:
        """An entry made of plain callables, with no build function: the ops given (any subset of
        softmax(x), jacobian(x), vjp(x, g)), the same callables on every device. ``family`` defaults to
        ``name``; other keywords are the entry's fields (``backend``, ``dtypes``, ``devices``, ...)::

            ENTRY = softgrad.register(softgrad.Implementation.from_ops("mine", softmax=my_softmax, backend="torch"))
        """
        given = {op: fn for op, fn in (("softmax", softmax), ("jacobian", jacobian), ("vjp", vjp)) if fn is not None}
        if not given:
            raise ValueError(f"implementation {name!r}: give at least one of softmax=, jacobian=, vjp=")
        for op, fn in given.items():
            if not callable(fn):
                raise TypeError(f"implementation {name!r}: {op}= must be callable, not {type(fn).__name__}")
        first = next(iter(given.values()))
        declared.setdefault("description", (getattr(first, "__doc__", None) or "").strip().split("\n")[0])
        declared.setdefault("source", _source_of(first))
        return cls(name=name, family=family or name, build=FixedOps(given), ops=tuple(given), **declared)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled as its fields (the read-only mappings as dicts), so an entry made of importable callables
        can be sent to a worker process."""
        fields = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        fields["max_n"], fields["max_elements"] = dict(self.max_n), dict(self.max_elements)
        return (functools.partial(Implementation, **fields), ())

    def describe(self) -> dict[str, Any]:
        """A JSON-ready description (availability included)."""
        reason = self.unavailable_reason()
        return {
            "name": self.name,
            "family": self.family,
            "backend": self.backend,
            "ops": list(self.ops),
            "dtypes": list(self.dtypes),
            "devices": list(self.devices),
            "requires": list(dict.fromkeys((*get_backend(self.backend).requires, *self.requires))),
            "max_n": dict(self.max_n),
            "max_elements": dict(self.max_elements),
            "compiles": self.compiles,
            "baseline": self.baseline,
            "tags": list(self.tags),
            "available": reason is None,
            "reason": reason,
            "description": self.description,
            "source": self.source,
            "distribution": distributions().get(self.name),
        }


class FixedOps:
    """The build function of :meth:`Implementation.from_ops`: the same op callables for every device."""

    def __init__(self, ops: Mapping[str, Callable[..., Any]]) -> None:
        self.ops = dict(ops)

    def __call__(self, device: str) -> Mapping[str, Callable[..., Any]]:
        return dict(self.ops)


_REGISTRY: dict[str, Implementation] = {}
#: (name, device) -> (the entry, its built ops): an unregistered entry of a registered entry's name
#: (``softgrad.testing.check``) is built for itself, never handed the other's ops
_BUILT: dict[tuple[str, str], tuple[Implementation, Mapping[str, Callable[..., Any]]]] = {}
_LOCK = threading.RLock()
_LOADED_PLUGINS: set[Path] = set()
_DISTRIBUTIONS: dict[str, dict[str, str]] = {}
#: set once a broken entry point was reported, so the worker processes of one command stay quiet
_WARNED_ENV = "SOFTGRAD_ENTRY_POINTS_WARNED"
_builtins_loaded = False


def _built(impl: Implementation, device: str) -> Mapping[str, Callable[..., Any]]:
    key = (impl.name, device)
    with _LOCK:
        if key not in _BUILT or _BUILT[key][0] is not impl:
            reason = impl.unavailable_reason()
            if reason:
                raise RuntimeError(f"{impl.name}: {reason}")
            get_backend(impl.backend).setup_process()  # the same settings for every entry of a framework
            ops = dict(impl.build(device))
            absent = [op for op in impl.ops if op not in ops]
            if absent:
                raise RuntimeError(f"{impl.name}: build() returned no callable for {', '.join(absent)}")
            _BUILT[key] = (impl, MappingProxyType(ops))
        return _BUILT[key][1]


def forget_built(impl: Implementation) -> None:
    """Drop what was built for ``impl`` (and only for that object): a throwaway entry leaves nothing behind."""
    with _LOCK:
        for key in [k for k, (built_for, _) in _BUILT.items() if built_for is impl]:
            del _BUILT[key]


def register(impl: Implementation) -> Implementation:
    """Add ``impl`` to the registry and return the registered entry. Registering the same entry again
    (the same object, or an equal definition from the same source file: a module imported by a test and
    also loaded as a plugin) keeps the first; another entry with the same name is an error."""
    with _LOCK:
        old = _REGISTRY.get(impl.name)
        if old is not None and (old is impl or (old == impl and old.source)):
            return old
        if old is not None:
            raise ValueError(f"an implementation named {impl.name!r} is already registered (from {old.source})")
        twin = next((o for o in _REGISTRY.values() if o.name != impl.name
                     and identifier(o.name) == identifier(impl.name)), None)
        if twin is not None:
            raise ValueError(f"implementation name {impl.name!r} is too close to {twin.name!r} (from {twin.source}): "
                             f"both would be benchmarked as {identifier(impl.name)!r}; rename one")
        _REGISTRY[impl.name] = impl
    return impl


def unregister(name: str) -> None:
    """Remove an entry (used by tests that register throwaway implementations)."""
    with _LOCK:
        _REGISTRY.pop(name, None)
        for key in [k for k in _BUILT if k[0] == name]:
            del _BUILT[key]


def implementation(
    name: str,
    *,
    family: str,
    backend: str = "numpy",
    ops: tuple[str, ...] = OPS,
    dtypes: tuple[str, ...] = ("float64", "float32"),
    devices: tuple[str, ...] = ("cpu",),
    requires: tuple[str, ...] = (),
    max_n: Mapping[str, int] | None = None,
    max_elements: Mapping[str, int] | None = None,
    compiles: bool = False,
    description: str = "",
    baseline: bool = False,
    tags: tuple[str, ...] = (),
) -> Callable[[BuildFn], BuildFn]:
    """Decorator registering a build function ``build(device) -> {op: callable}`` as an implementation.

    Example::

        @softgrad.implementation("mine", family="mine", dtypes=("float64",))
        def build(device):
            def softmax(x): ...
            def jacobian(x): ...
            def vjp(x, g): ...
            return {"softmax": softmax, "jacobian": jacobian, "vjp": vjp}
    """

    def decorate(build: BuildFn) -> BuildFn:
        register(
            Implementation(
                name=name,
                family=family,
                build=build,
                backend=backend,
                ops=ops,
                dtypes=dtypes,
                devices=devices,
                requires=requires,
                max_n=max_n or {},
                max_elements=max_elements or {},
                compiles=compiles,
                description=description or (build.__doc__ or "").strip().split("\n")[0],
                source=_source_of(build),
                baseline=baseline,
                tags=tags,
            )
        )
        return build

    return decorate


def _source_of(fn: Callable[..., Any]) -> str:
    module = sys.modules.get(getattr(fn, "__module__", "") or "")
    return str(getattr(module, "__file__", None) or getattr(fn, "__module__", ""))


def load_builtins() -> None:
    """Import the built-in implementation modules (each imports no framework at import time), then the
    entries installed distributions declare (:func:`load_entry_points`)."""
    global _builtins_loaded
    with _LOCK:
        if _builtins_loaded:
            return
        _builtins_loaded = True
        _ensure_implementations_package()
        for mod in BUILTIN_MODULES:
            importlib.import_module(f"softgrad.implementations.{mod}")
        _warn_once(load_entry_points())


def load_entry_points() -> list[str]:
    """Register the entries of every installed distribution's ``softgrad.implementations`` entry points
    and return a one-line problem per entry point that failed (nothing raises).

    An entry point names a module that registers entries when imported, an :class:`Implementation`, or a
    list of them::

        [project.entry-points."softgrad.implementations"]
        mylib = "mylib.softgrad_entries"

    Each entry point is loaded all or nothing: one that raises (``SystemExit`` included) after registering
    some entries, or a list with one entry :func:`register` refuses, has what it registered removed again,
    and its problem names the entry point, the entries rolled back and the error. One that would end the
    process itself (``os._exit``, a crash, a hang at import) is found by :func:`_probe` first and left out.
    """
    from importlib.metadata import entry_points

    problems = []
    try:
        found = list(entry_points(group=ENTRY_POINT_GROUP))
    except Exception as exc:  # a broken metadata folder elsewhere on the path
        return [f"entry points of group {ENTRY_POINT_GROUP!r} could not be read ({type(exc).__name__}: {exc})"]
    for ep in found:
        dist = getattr(ep, "dist", None)
        dist_name = getattr(dist, "name", None) or "an unknown distribution"
        version = getattr(dist, "version", None) or ""
        where = f"entry point {ep.name!r} ({ep.value}) of distribution {dist_name} {version}".rstrip()
        with _LOCK:
            problem = _probe(ep, dist)
            if problem is not None:
                problems.append(f"{where} is left out: {problem}")
                continue
            before = set(_REGISTRY)
            try:
                loaded = ep.load()
                for impl in _entries_of(loaded):
                    register(impl)
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # a library's broken entry must not break softgrad's command
                problems.append(f"{where} failed to load, so none of its entries is registered"
                                f"{_roll_back(before)}: {_failure(exc)}")
                continue
            for name in set(_REGISTRY) - before:
                _DISTRIBUTIONS[name] = {"distribution": dist_name, "version": version}
    return problems


def _roll_back(before: set[str]) -> str:
    """Unregister every entry registered since the registry held the names ``before`` (a plugin or an entry
    point that failed half-way: loading one is all or nothing); `` (rolled back: a, b)`` or ``""``."""
    added = sorted(set(_REGISTRY) - before)
    for name in added:
        unregister(name)
    return f" (rolled back: {', '.join(added)})" if added else ""


def _failure(exc: BaseException) -> str:
    """A plugin's or an entry point's exception in one line (``sys.exit`` said as such)."""
    if isinstance(exc, SystemExit):
        return f"called sys.exit({exc.code!r})"
    first = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {first}".rstrip(": ")


#: how long a probe process may take to import one entry point before the entry point is left out as hanging
PROBE_TIMEOUT_S = 60.0
#: set in a probe process, where the entry points met (an entry point that lists the registry) load directly
_PROBE_ENV = "SOFTGRAD_ENTRY_POINT_PROBE"
#: the probe verdicts this process knows (a JSON object: key digest -> the problem, or null), inherited by
#: the softgrad processes it starts (check workers, asv's benchmark processes), whatever their home
_PROBED_ENV = "SOFTGRAD_ENTRY_POINTS_PROBED"
#: the probe process: import the entry point on the parent's ``sys.path``; the token on stdout once it returns
#: (or raises: the in-process load reports that) says the process survived the import
_PROBE_CODE = """
import json, os, sys
parent, token, path, name, value, group = json.loads(sys.argv[1])
sys.path[:] = path
from softgrad.children import die_with_parent
die_with_parent(parent)
from importlib.metadata import EntryPoint
try:
    EntryPoint(name, value, group).load()
except BaseException:
    pass
sys.stdout.flush()
os.write(1, token.encode())
os._exit(0)
"""


def _probe(ep: Any, dist: Any) -> str | None:
    """Why importing entry point ``ep`` would end this process, or None where it returns (or raises).

    An exception, ``sys.exit`` included, is caught in the process and rolled back (:func:`load_entry_points`),
    but ``os._exit(7)``, a segfault or a hang while a distribution's module is imported would end or freeze
    every softgrad command (and pytest run) with no word of why, and nothing in the process can catch them.
    So an entry point is imported first in a probe process (a Python that imports it and softgrad: about
    0.3 s), once per distribution version: the verdict is cached under :func:`softgrad.paths.cache_dir`,
    ``entry-points/``, keyed by the interpreter and the distribution's name, version, location and entry
    point (an upgrade is probed again), and handed to the softgrad processes this one starts in the
    environment, so a command and its workers pay nothing for an entry point already known. A verdict that
    leaves an entry point out is cached too (a hang would otherwise cost :data:`PROBE_TIMEOUT_S` in every
    command); its problem names the file to delete for a new probe. Where no probe process can start, the
    entry point is loaded in the process, as with no probe.

    Not chosen: a probe in every command (its cost every time); ``os.fork`` (cheaper, but unsafe with the
    threads a test runner or a framework has started); a line printed before each import under a debug
    variable (it names the culprit only after the silent exit, and only to whoever thought of setting it).
    What stays open: an editable install changed without a new version keeps its cached verdict.
    """
    if os.environ.get(_PROBE_ENV) == "1":
        return None
    try:
        location = str(dist.locate_file("")) if dist is not None else ""
    except Exception:  # a distribution object without files: the other parts still key it
        location = ""
    key = json.dumps([sys.executable, getattr(dist, "name", None), getattr(dist, "version", None), location,
                      ep.group, ep.name, ep.value])
    digest = hashlib.sha256(key.encode()).hexdigest()[:24]
    known = _known_verdicts()
    if digest in known:
        return known[digest]
    cached = _probe_cache_file(digest)
    try:
        record = json.loads(cached.read_text()) if cached is not None and cached.is_file() else None
    except (OSError, ValueError):
        record = None  # unreadable: probe again
    if isinstance(record, dict) and record.get("key") == key:
        problem = record.get("problem")
    else:
        try:
            problem = _run_probe(ep)
        except OSError:
            return None  # no probe process here: load it in the process, as without a probe
        if problem is not None and cached is not None:
            problem += f"; a cached verdict: delete {cached} to probe again"
        if cached is not None:
            try:
                tmp = cached.with_name(f"{cached.name}.{os.getpid()}.tmp")
                tmp.write_text(json.dumps({"key": key, "problem": problem}))
                os.replace(tmp, cached)
            except OSError:
                pass
    os.environ[_PROBED_ENV] = json.dumps({**known, digest: problem})
    return problem


def _known_verdicts() -> dict[str, str | None]:
    """The probe verdicts this process or its parent softgrad process reached (:data:`_PROBED_ENV`)."""
    try:
        known = json.loads(os.environ.get(_PROBED_ENV) or "{}")
    except ValueError:
        return {}
    return known if isinstance(known, dict) else {}


def _run_probe(ep: Any) -> str | None:
    """Import ``ep`` in a probe process: None where that process survived the import, else how it ended."""
    from .children import neutral_cwd, python, python_env

    token = os.urandom(8).hex()
    arg = json.dumps([os.getpid(), token, sys.path, ep.name, ep.value, ep.group])
    try:
        proc = subprocess.run(python("-c", _PROBE_CODE, arg), stdin=subprocess.DEVNULL, capture_output=True,
                              env=python_env({_PROBE_ENV: "1", _WARNED_ENV: "1"}), cwd=neutral_cwd(),
                              timeout=PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return f"importing it did not finish within {PROBE_TIMEOUT_S:g} s (seen in a probe process, killed)"
    if token.encode() in proc.stdout:
        return None
    rc = proc.returncode
    try:
        how = f"killed by {signal.Signals(-rc).name}" if rc < 0 else f"exit status {rc}"
    except ValueError:  # a real-time signal has no name
        how = f"killed by signal {-rc}"
    said = [line for line in proc.stderr.decode(errors="replace").splitlines() if line.strip()]
    return f"importing it ends the process ({how}, seen in a probe process)" + (
        f"; it said: {said[-1][:200]}" if said else "")


def _probe_cache_file(digest: str) -> Path | None:
    """The file that holds the probe verdict of key ``digest``, in a folder created if needed; None where the
    home's cache folder is unusable."""
    from . import paths

    try:
        folder = paths.require_writable(paths.cache_dir() / "entry-points")
    except (paths.PathError, OSError):
        return None
    return folder / f"{digest}.json"


def _entries_of(loaded: Any) -> list[Implementation]:
    if isinstance(loaded, ModuleType):
        return []  # importing it registered its entries
    if isinstance(loaded, Implementation):
        return [loaded]
    if isinstance(loaded, (list, tuple)) and all(isinstance(i, Implementation) for i in loaded):
        return list(loaded)
    raise TypeError(f"it gave a {type(loaded).__name__}, not a module, an Implementation or a list of them")


def _warn_once(problems: list[str]) -> None:
    """One line per problem on stderr, once for a process and the softgrad processes it starts."""
    if problems and os.environ.get(_WARNED_ENV) != "1":
        for problem in problems:
            print(f"softgrad: warning: {problem}", file=sys.stderr)
    if problems:
        os.environ[_WARNED_ENV] = "1"


def distributions() -> dict[str, dict[str, str]]:
    """Entries that came from an installed distribution's entry point: name -> its distribution and version."""
    with _LOCK:
        return {name: dict(d) for name, d in sorted(_DISTRIBUTIONS.items()) if name in _REGISTRY}


def _ensure_implementations_package() -> None:
    """Make ``softgrad.implementations`` importable when softgrad runs from a source tree.

    An installed softgrad (editable or not) carries the top-level ``implementations/`` folder as
    ``softgrad.implementations``. Imported straight from a checkout (``python`` started in the repository
    root, so the source ``softgrad/`` shadows the installed one), that mapping does not exist; point the
    subpackage at the checkout's ``implementations/`` folder instead.
    """
    if "softgrad.implementations" in sys.modules or importlib.util.find_spec("softgrad.implementations"):
        return
    folder = Path(__file__).resolve().parent.parent / "implementations"
    spec = importlib.util.spec_from_file_location(
        "softgrad.implementations", folder / "__init__.py", submodule_search_locations=[str(folder)]
    )
    if spec is None or spec.loader is None or not folder.is_dir():
        raise ImportError(f"softgrad's built-in implementations are missing (looked in {folder})")
    package = importlib.util.module_from_spec(spec)
    sys.modules["softgrad.implementations"] = package
    spec.loader.exec_module(package)


class PluginError(Exception):
    """A plugin file is missing or failed to import."""


def load_plugin(path: str | os.PathLike[str]) -> None:
    """Import a Python file that registers implementations through the public API (once per file), all or
    nothing: a file that raises (or calls ``sys.exit``) has the entries it registered removed again and is a
    :class:`PluginError` naming them and the error."""
    load_builtins()  # a plugin reusing a built-in's name is the one refused, not the built-in
    try:
        p = Path(path).expanduser().resolve()
    except (OSError, RuntimeError, ValueError) as exc:
        raise PluginError(f"plugin file {path!r} is not a usable path ({exc})") from None
    with _LOCK:
        if p in _LOADED_PLUGINS:
            return
        if not p.is_file():
            raise PluginError(f"plugin file not found: {str(path)!r}")
        mod_name = f"softgrad_plugin_{abs(hash(str(p)))}"
        spec = importlib.util.spec_from_file_location(mod_name, p)
        if spec is None or spec.loader is None:
            raise PluginError(f"cannot import plugin file {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[mod_name] = module
        _LOADED_PLUGINS.add(p)
        before = set(_REGISTRY)
        try:
            spec.loader.exec_module(module)
        except KeyboardInterrupt:
            raise
        except BaseException as exc:  # a plugin's own bug (or sys.exit) must not look like ours, nor pass
            _LOADED_PLUGINS.discard(p)
            sys.modules.pop(mod_name, None)
            raise PluginError(f"plugin {path} failed to import{_roll_back(before)}: {_failure(exc)}") from None


def loaded_plugins() -> list[str]:
    """Paths of the plugin files loaded so far (worker processes load the same ones)."""
    with _LOCK:
        return [str(p) for p in sorted(_LOADED_PLUGINS)]


def export_plugins() -> None:
    """Name the loaded plugin files in the environment so that child processes (check workers, asv's
    benchmark processes) load the same ones (a JSON list: a path may hold the path separator)."""
    if loaded_plugins():
        os.environ[PLUGINS_JSON_ENV] = json.dumps(loaded_plugins())


def _env_plugin_paths() -> list[str]:
    paths = [item.strip() for item in os.environ.get(PLUGINS_ENV, "").split(os.pathsep) if item.strip()]
    raw = os.environ.get(PLUGINS_JSON_ENV, "")
    if raw:
        try:
            exported = json.loads(raw)
        except ValueError:
            exported = None
        if not isinstance(exported, list) or not all(isinstance(p, str) for p in exported):
            raise PluginError(f"{PLUGINS_JSON_ENV} must be a JSON list of file paths, not {raw[:60]!r}")
        paths += exported
    return paths


def load_env_plugins() -> None:
    """Load every file named in ``SOFTGRAD_PLUGINS`` (``os.pathsep``-separated) and in the list a parent
    softgrad process exported."""
    for item in _env_plugin_paths():
        load_plugin(item)


def all_implementations() -> list[Implementation]:
    """Every registered implementation (built-ins and ``SOFTGRAD_PLUGINS`` loaded first), by name."""
    load_builtins()
    load_env_plugins()
    return sorted(_REGISTRY.values(), key=lambda i: (i.family, i.name))


def with_role(tag: str | None = None, *, baseline: bool = False) -> list[Implementation]:
    """Registered entries carrying ``tag`` (or, with ``baseline=True``, the baseline entries), by name."""
    return [i for i in all_implementations() if (baseline and i.baseline) or (tag is not None and tag in i.tags)]


def get(name: str) -> Implementation:
    """The implementation called ``name``; ``KeyError`` listing the known names otherwise."""
    load_builtins()
    load_env_plugins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown implementation {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


__all__ = [
    "DTYPES",
    "ENTRY_POINT_GROUP",
    "OPS",
    "BuildFn",
    "FixedOps",
    "Implementation",
    "PluginError",
    "all_implementations",
    "distributions",
    "forget_built",
    "get",
    "implementation",
    "load_builtins",
    "load_entry_points",
    "load_env_plugins",
    "load_plugin",
    "loaded_plugins",
    "register",
    "unregister",
    "with_role",
]
