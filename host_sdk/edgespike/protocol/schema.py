"""Load the Python classes generated from ``protocol/edgespike.proto``.

The classes are generated with ``grpc_tools.protoc`` the first time they are needed (generated
code is never committed) into ``_generated/`` beside this file, or into the user cache folder
when the package folder is read-only. Regeneration happens whenever the .proto is newer.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import sys
from functools import lru_cache
from pathlib import Path
from types import ModuleType

from edgespike.errors import ToolMissing

log = logging.getLogger(__name__)

_PACKAGE_DIR = Path(__file__).resolve().parent


def proto_path() -> Path:
    """Path of ``edgespike.proto``: the repository's ``protocol/`` folder."""
    candidates = [
        Path(os.environ["EDGESPIKE_PROTO"]) if "EDGESPIKE_PROTO" in os.environ else None,
        _PACKAGE_DIR.parents[2] / "protocol" / "edgespike.proto",
    ]
    for c in candidates:
        if c is not None and c.is_file():
            return c
    raise ToolMissing(
        "protocol/edgespike.proto not found; run EdgeSpike from its repository checkout "
        "(pip install -e .) or set EDGESPIKE_PROTO to the .proto path"
    )


def _out_dir() -> Path:
    d = _PACKAGE_DIR / "_generated"
    try:
        d.mkdir(exist_ok=True)
        probe = d / ".write-test"
        probe.touch()
        probe.unlink()
        return d
    except OSError:
        d = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "edgespike" / "pb"
        d.mkdir(parents=True, exist_ok=True)
        return d


def _generate(proto: Path, out: Path) -> None:
    try:
        from grpc_tools import protoc  # type: ignore[import-untyped]
    except ImportError as exc:  # pragma: no cover - dependency of the package
        raise ToolMissing("grpcio-tools is needed to generate the protocol classes: "
                          "pip install grpcio-tools") from exc
    import grpc_tools

    include = Path(grpc_tools.__file__).parent / "_proto"
    args = ["protoc", f"-I{proto.parent}", f"-I{include}", f"--python_out={out}", str(proto)]
    if protoc.main(args) != 0:
        raise ToolMissing(f"protoc failed on {proto}")
    log.debug("generated %s", out / "edgespike_pb2.py")


@lru_cache(maxsize=1)
def _load() -> ModuleType:
    proto = proto_path()
    out = _out_dir()
    target = out / "edgespike_pb2.py"
    if not target.exists() or target.stat().st_mtime < proto.stat().st_mtime:
        _generate(proto, out)
    spec = importlib.util.spec_from_file_location("edgespike_pb2", target)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["edgespike_pb2"] = module
    spec.loader.exec_module(module)
    return module


class _LazyPb:
    """Attribute access to the generated module, generated on first use."""

    def __getattr__(self, name: str):
        return getattr(_load(), name)


pb = _LazyPb()
