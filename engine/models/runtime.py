"""The ensemble at run time: the fused graph, one thread, inputs and outputs preallocated
and bound once, LSTM state carried.

    rt = EnsembleRuntime.from_dir(version_dir)       # or registry.load()
    rt.set_regime("NORMAL")                          # the regime's weights (manifest table)
    probs = rt.predict(features)                     # [3] float32 view: down, flat, up
    rt.predict(features, commit=False)               # score without advancing the LSTM
    rt.rehearse(features)                            # run it for the caches only (changes nothing)
    rt.backend                                       # "native" or "onnxruntime"

Two ways to run the same graph (``backend``): ``"onnxruntime"``, an ONNX Runtime session
with I/O binding; ``"native"``, the graph compiled to one C program
(``engine.models.native``: ~10 us a call against ORT's ~25 us back to back, and far
less memory touched when the caches are cold). ``"auto"`` (the default) compiles the
program, runs ``native.PROBE_ROWS`` rows through it and through the ONNX Runtime session
(LSTM state carried), and uses it only if every output agrees within
``native.NATIVE_TOL``; otherwise, or if the graph holds an operator the program does not
do, the session serves and ``backend_note`` says why. ``"native"`` raises instead of
falling back. The session is made in every case: it is the reference.

``predict`` copies the 25 features into the bound input buffer, runs, and returns a view
of the bound output buffer (valid until the next call). The LSTM state advances only on
``commit=True`` (once per sampled row, as in training); scoring between sample times
uses ``commit=False``. ORT: the state is double-buffered between two bindings, so
committing costs nothing; native: committing copies the 256 state numbers after the run.
Regime weights are normalised to sum to 1 before they reach the graph. ``members`` holds
each member's probabilities after the call.
"""
from __future__ import annotations

import math
import os

import numpy as np

from engine.features.regime import NAMES as REGIMES
from engine.features.vector import N_FEATURES
from engine.models.learners import HIDDEN, MEMBERS, N_CLASSES, state_names


def session_options():
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.set_denormal_as_zero", "1")
    return so


BACKENDS = ("auto", "native", "onnxruntime")


class EnsembleRuntime:
    def __init__(self, model_bytes: bytes, regime_weights: dict, version: str = "?", backend: str = "auto"):
        import onnxruntime as ort
        if backend not in BACKENDS:
            raise ValueError(f"backend {backend!r}: one of {', '.join(BACKENDS)}")
        self.version = version
        self.sess = ort.InferenceSession(model_bytes, session_options(), providers=["CPUExecutionProvider"])
        self.regime_weights = {k: np.asarray(v, np.float32) for k, v in regime_weights.items()}
        for r in REGIMES:
            w = self.regime_weights.get(r)
            if w is None or w.shape != (len(MEMBERS),) or not np.all(np.isfinite(w)) or w.min() < 0 or w.sum() <= 0:
                raise ValueError(f"regime weights for {r}: need {len(MEMBERS)} finite non-negative numbers "
                                 f"with a positive sum, got {None if w is None else w.tolist()}")
        self.native = None
        self.native_diff = None
        self.backend_note = "backend onnxruntime asked for" if backend == "onnxruntime" else ""
        if backend != "onnxruntime":
            from engine.models import native
            try:
                g = native.compile_graph(model_bytes)
                self.native_diff = native.check(g, self.sess, N_FEATURES)
                bad = {k: v for k, v in self.native_diff.items() if not v <= native.NATIVE_TOL}
                if bad:
                    raise native.Unsupported(f"outputs differ from ONNX Runtime's by more than "
                                             f"{native.NATIVE_TOL:g}: {bad}")
                self.native = g
            except (native.Unsupported, ImportError) as e:
                if backend == "native":
                    raise
                self.backend_note = f"native program not used: {e}"
        names = state_names()
        if self.native is not None:
            g = self.native
            self.backend = "native"
            self.prog = g.program
            self.x, self.w = g.view("x"), g.view("weights")
            self.probs_out, self.members = g.view("probs"), g.view("members")
            # state[0]: what the next run reads (committed); state[1]: what a run wrote
            self.state = [[g.view(n) for n in names], [g.view(n + "_out") for n in names]]
            self.prog.set_commit([(g.slots[n + "_out"][0], g.slots[n][0], HIDDEN) for n in names])
            self.prog.set_row_input(g.slots["x"][0], N_FEATURES)
            self.bindings = []
        else:
            self.backend = "onnxruntime"
            self.prog = None
            self.x = np.zeros((1, N_FEATURES), np.float32)
            self.w = np.zeros((1, len(MEMBERS)), np.float32)
            self.probs_out = np.zeros((1, N_CLASSES), np.float32)
            self.members = np.zeros((len(MEMBERS), N_CLASSES), np.float32)
            # LSTM state, double-buffered: binding k reads state[k] and writes state[1 - k];
            # committing a step is switching to the other binding (no copy).
            self.state = [[np.zeros((1, HIDDEN), np.float32) for _ in names] for _ in range(2)]
            ov = ort.OrtValue.ortvalue_from_numpy
            self.bindings = []
            for k in range(2):
                b = self.sess.io_binding()
                b.bind_ortvalue_input("x", ov(self.x))
                b.bind_ortvalue_input("weights", ov(self.w))
                b.bind_ortvalue_output("probs", ov(self.probs_out))
                b.bind_ortvalue_output("members", ov(self.members))
                for n, arr_in, arr_out in zip(names, self.state[k], self.state[1 - k]):
                    b.bind_ortvalue_input(n, ov(arr_in))
                    b.bind_ortvalue_output(n + "_out", ov(arr_out))
                self.bindings.append(b)
        self.probs = self.probs_out[0]
        self._zero_row = np.zeros(N_FEATURES)
        self.active = 0
        self.regime = "NORMAL"
        self.set_regime("NORMAL")
        self.calls = 0

    @classmethod
    def from_dir(cls, path: str, manifest: dict | None = None, backend: str = "auto") -> "EnsembleRuntime":
        import json
        if manifest is None:
            with open(os.path.join(path, "manifest.json")) as f:
                manifest = json.load(f)
        with open(os.path.join(path, manifest["files"]["fused"]["name"]), "rb") as f:
            data = f.read()
        return cls(data, manifest["regime_weights"], manifest.get("version", os.path.basename(path)), backend)

    def set_regime(self, regime: str | int) -> None:
        name = REGIMES[regime] if isinstance(regime, (int, np.integer)) else regime
        if name not in self.regime_weights:
            raise ValueError(f"unknown regime {regime!r}; known: {', '.join(REGIMES)}")
        w = self.regime_weights[name]
        self.w[0] = w / w.sum()             # the graph takes weights that sum to 1
        self.regime = name

    def reset_state(self) -> None:
        for buf in self.state:
            for a in buf:
                a[:] = 0
        if self.prog is not None:
            self.prog.invalidate()          # the program's prelude read the old state

    def predict(self, features: np.ndarray, commit: bool = True) -> np.ndarray:
        """Ensemble probabilities (down, flat, up) for one feature row. Features must all be
        ready (finite): a non-finite row raises instead of scoring garbage."""
        if self.prog is not None:               # copy, check and run in one C call
            try:
                ok = self.prog.run_row(features, commit)
            except TypeError:                   # not a contiguous float64/float32 vector: as numpy takes it
                ok = self.prog.run_row(np.ascontiguousarray(features, np.float64), commit)
            if not ok:
                raise ValueError("features not all finite: the model only scores rows whose 25 features are ready")
            self.calls += 1
            return self.probs
        x = self.x[0]
        x[:] = features
        if not math.isfinite(x.dot(x)):          # NaN/inf anywhere -> NaN/inf (0.7 us vs 1.4 for isfinite)
            raise ValueError("features not all finite: the model only scores rows whose 25 features are ready")
        self.sess.run_with_iobinding(self.bindings[self.active])   # (passing RunOptions costs ~30 us here)
        if commit:
            self.active ^= 1
        self.calls += 1
        return self.probs

    def rehearse(self, features: np.ndarray | None = None, times: int = 1) -> None:
        """Run the session as ``predict(features, commit=False)`` does, for nothing: the
        committed LSTM state, ``calls`` and the caller's view of the last result are what
        matters afterwards and none changes (``probs``/``members`` hold the rehearsal's
        numbers until the next ``predict``, which overwrites them). For warming up after
        loading (ORT's first runs allocate) and, in a busy-polling engine, keeping the
        trees in the CPU caches between messages. ``features`` None: a zero row."""
        if self.prog is not None:               # the very call predict makes
            row = self._zero_row if features is None else features
            for _ in range(times):
                try:
                    if not self.prog.run_row(row, False):
                        return
                except TypeError:
                    row = np.ascontiguousarray(row, np.float64)
            return
        self.x[0] = 0.0 if features is None else features
        if not math.isfinite(float(self.x[0].dot(self.x[0]))):
            return
        for _ in range(times):
            self.sess.run_with_iobinding(self.bindings[self.active])

    @property
    def lstm_state(self) -> list:
        """The committed LSTM state (h0, c0, h1, c1), views."""
        return self.state[self.active]

    def predict_rows(self, X: np.ndarray) -> np.ndarray:
        """Step through rows in order (state committed each row); [n, 3] copy."""
        out = np.zeros((len(X), N_CLASSES), np.float32)
        for i in range(len(X)):
            out[i] = self.predict(X[i])
        return out
