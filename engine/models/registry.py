"""Versioned model directories, the current pointer, hot reload and rollback.

Layout of a registry root::

    root/
      v0001/  manifest.json  fused.onnx  lr.onnx  rf.onnx  xgb.onnx  lstm.onnx  report.*
      v0002/  ...
      CURRENT            the serving version's name (replaced atomically)
      history.jsonl      one JSON line per promotion, rollback or refusal, with its numbers

``manifest.json``: version, created (UTC ISO), parent (the version serving when it was
trained), feature_schema_hash (sha256 of the feature kernel's schema string), content_hash
(sha256 over the model files, in name order), files (name, sha256, bytes), data (paths,
symbols, first/last row time), label spec, metrics, quantization records, parity, and the
regime weight table.

Loading checks the file hashes and refuses a model whose feature schema hash differs from
the engine's (``SchemaMismatch``, naming both hashes). ``ModelHandle`` is what the brain
holds: ``reload()`` (what the admin ``reload-model`` command calls) builds the new
session first and swaps only if that worked; ``rollback()`` goes back to the version that
served before the current one and marks the current one bad.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import threading

from engine.features.vector import SCHEMA_HASH_SOURCE

MANIFEST = "manifest.json"
_VERSION_RE = re.compile(r"^v(\d{4,})$")


class SchemaMismatch(ValueError):
    pass


class RegistryError(ValueError):
    pass


def feature_schema_hash() -> str:
    return hashlib.sha256(SCHEMA_HASH_SOURCE.encode()).hexdigest()


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


class ModelRegistry:
    def __init__(self, root: str):
        self.root = os.path.abspath(root)
        os.makedirs(self.root, exist_ok=True)

    # -- versions
    def versions(self) -> list[str]:
        return sorted((d for d in os.listdir(self.root) if _VERSION_RE.match(d)
                       and os.path.isfile(os.path.join(self.root, d, MANIFEST))),
                      key=lambda d: int(d[1:]))

    def new_version_dir(self) -> tuple[str, str]:
        """(name, path) of a fresh version directory (created, empty)."""
        vs = [int(d[1:]) for d in os.listdir(self.root) if _VERSION_RE.match(d)]
        name = f"v{(max(vs) + 1 if vs else 1):04d}"
        path = os.path.join(self.root, name)
        os.makedirs(path)
        return name, path

    def path(self, version: str) -> str:
        return os.path.join(self.root, version)

    def manifest(self, version: str) -> dict:
        p = os.path.join(self.root, version, MANIFEST)
        if not os.path.isfile(p):
            raise RegistryError(f"no model version {version!r} in {self.root} (have: {', '.join(self.versions()) or 'none'})")
        with open(p) as f:
            return json.load(f)

    def write_manifest(self, version: str, manifest: dict) -> dict:
        """Fill in files, hashes, version and time, then write the manifest."""
        d = self.path(version)
        files = {}
        for name in sorted(os.listdir(d)):
            if name.endswith(".onnx"):
                files[name.removesuffix(".onnx")] = {"name": name, "sha256": sha256_file(os.path.join(d, name)),
                                                     "bytes": os.path.getsize(os.path.join(d, name))}
        if "fused" not in files:
            raise RegistryError(f"{d}: no fused.onnx")
        content = hashlib.sha256("".join(files[k]["sha256"] for k in sorted(files)).encode()).hexdigest()
        manifest = dict(manifest, version=version, files=files, content_hash=content,
                        feature_schema_hash=manifest.get("feature_schema_hash", feature_schema_hash()),
                        created=manifest.get("created", utc_now()), parent=manifest.get("parent", self.current()))
        tmp = os.path.join(d, MANIFEST + ".tmp")
        with open(tmp, "w") as f:
            json.dump(manifest, f, indent=1, sort_keys=True)
        os.replace(tmp, os.path.join(d, MANIFEST))
        return manifest

    def verify(self, version: str) -> dict:
        """Manifest after checking schema hash and every file's hash; raises otherwise."""
        m = self.manifest(version)
        mine = feature_schema_hash()
        if m.get("feature_schema_hash") != mine:
            raise SchemaMismatch(f"model {version} was trained on feature schema {str(m.get('feature_schema_hash'))[:12]}, "
                                 f"this engine computes {mine[:12]}: retrain it (cryptoscalp train) or run the engine "
                                 f"version it was trained with")
        for k, f in m["files"].items():
            p = os.path.join(self.path(version), f["name"])
            if not os.path.isfile(p) or sha256_file(p) != f["sha256"]:
                raise RegistryError(f"model {version}: {f['name']} is missing or does not match its manifest hash")
        return m

    # -- serving pointer and history
    def current(self) -> str | None:
        p = os.path.join(self.root, "CURRENT")
        if not os.path.isfile(p):
            return None
        with open(p) as f:
            return f.read().strip() or None

    def _set_current(self, version: str) -> None:
        tmp = os.path.join(self.root, "CURRENT.tmp")
        with open(tmp, "w") as f:
            f.write(version + "\n")
        os.replace(tmp, os.path.join(self.root, "CURRENT"))

    def log(self, event: str, **fields) -> dict:
        rec = {"time": utc_now(), "event": event, **fields}
        with open(os.path.join(self.root, "history.jsonl"), "a") as f:
            f.write(json.dumps(rec, sort_keys=True) + "\n")
        return rec

    def history(self) -> list[dict]:
        p = os.path.join(self.root, "history.jsonl")
        if not os.path.isfile(p):
            return []
        with open(p) as f:
            return [json.loads(line) for line in f if line.strip()]

    def promote(self, version: str, reason: str = "manual", **numbers) -> dict:
        self.verify(version)
        prev = self.current()
        self._set_current(version)
        return self.log("promote", version=version, previous=prev, reason=reason, **numbers)

    def bad_versions(self) -> set:
        return {h["version"] for h in self.history() if h["event"] == "mark_bad"}

    def rollback(self, reason: str = "manual", **numbers) -> dict:
        """Serve the version that served before the current one (skipping bad ones)."""
        cur = self.current()
        if cur is None:
            raise RegistryError("nothing is serving: no version to roll back from")
        bad = self.bad_versions() | {cur}
        served = [h["version"] for h in self.history() if h["event"] in ("promote", "rollback")]
        for v in reversed(served):
            if v not in bad and os.path.isdir(self.path(v)):
                self.verify(v)
                self.log("mark_bad", version=cur, reason=reason, **numbers)
                self._set_current(v)
                return self.log("rollback", version=v, previous=cur, reason=reason, **numbers)
        raise RegistryError(f"no earlier good version to roll back to from {cur}")

    def load(self, version: str | None = None, backend: str = "auto"):
        """The version (default: the current one), verified, as an ``EnsembleRuntime`` on
        ``backend`` (auto | native | onnxruntime, see engine.models.runtime)."""
        from engine.models.runtime import EnsembleRuntime
        version = version or self.current()
        if version is None:
            raise RegistryError(f"{self.root}: no current model (train one: cryptoscalp train --out {self.root})")
        m = self.verify(version)
        return EnsembleRuntime.from_dir(self.path(version), m, backend)


class ModelHandle:
    """What the brain holds: the serving runtime, swapped whole on reload/rollback."""

    def __init__(self, registry: ModelRegistry):
        self.registry = registry
        self.runtime = registry.load()
        self.version = self.runtime.version
        self._lock = threading.Lock()

    def reload(self) -> dict:
        """Load the registry's current version; keep the old one if that fails."""
        with self._lock:
            target = self.registry.current()
            if target == self.version:
                return {"ok": True, "version": self.version, "changed": False}
            try:
                rt = self.registry.load(target)
            except Exception as e:
                self.registry.log("reload_refused", version=target, serving=self.version, error=str(e))
                return {"ok": False, "version": self.version, "error": str(e)}
            rt.set_regime(self.runtime.regime)
            old, self.runtime, self.version = self.version, rt, rt.version
            return {"ok": True, "version": self.version, "previous": old, "changed": True}

    def rollback(self, reason: str = "admin") -> dict:
        self.registry.rollback(reason=reason)
        return self.reload()
