"""ONNX export of each member, INT8 dynamic quantization where it keeps the outputs, and
the fused ensemble graph.

Members: logistic regression and random forest through skl2onnx, XGBoost through
onnxmltools, all with one input ``x`` [N, 25] float32 and a ``probabilities`` output
(no ZipMap); the LSTM through ``torch.onnx.export`` as one stateful step (``engine.models.lstm.ExportStep``):
``x`` [1, 25], ``h0 c0 h1 c1`` [1, 64] -> ``probs`` [1, 3], ``h0_out c0_out h1_out c1_out``.

Quantization (``onnxruntime.quantization.quantize_dynamic``, INT8 weights) is tried for
every member; the quantized model is kept only if, on the held-out rows,
argmax agreement >= ``QUANT_MIN_AGREEMENT`` (0.99) and the largest absolute probability
difference <= ``QUANT_MAX_PROB_DIFF`` (0.02). Both numbers are recorded either way. Tree
ensembles have no weights to quantize (the attempt leaves them as they were, said so).

Excluded features (by default the absolute price levels best_bid and best_ask, which do
not repeat from one day to the next) are zero in training; every exported member ignores
them exactly (trees never split on a constant column, the logistic regression's and the
LSTM's input weights for them are set to zero), so the graphs take the raw 25 features and
no masking node is needed. Training checks this: the fused graph fed raw features must
match the native models fed masked ones (``PARITY_TOL``), or the version is refused.

Fused graph: the four members side by side, sharing ``x``; each member's
probabilities scattered into (down, flat, up) by a constant MatMul where a member saw
fewer than three classes, stacked [4, 3] as ``members``, and averaged with the ``weights``
input [1, 4] (the regime's weights, summing to 1: ``EnsembleRuntime`` normalises them):
``probs = w @ members``. Inputs ``x`` [1, 25], ``weights`` [1, 4], LSTM state ``h0 c0 h1
c1`` [1, 64]; outputs ``probs`` [1, 3], ``members`` [4, 3], ``h0_out c0_out h1_out c1_out``. Every node is a plain ONNX or ONNX-ML operator, so the
graph runs on any ONNX Runtime build.
"""
from __future__ import annotations

import os
import tempfile

import numpy as np

from engine.features.vector import N_FEATURES
from engine.models.learners import HIDDEN, LAYERS, MEMBERS, N_CLASSES, class_map, state_names

OPSET = 17
ML_OPSET = 3
QUANT_MIN_AGREEMENT = 0.99
QUANT_MAX_PROB_DIFF = 0.02
PARITY_TOL = 1e-4          # fused graph vs native model, max |p diff|, non-quantized members


def export_member(member, feature_mask: np.ndarray | None = None) -> "onnx.ModelProto":
    """ONNX of one fitted member; ``feature_mask`` (0 = excluded) is folded into the LSTM."""
    import onnx
    if member.kind == "lstm":
        import torch

        from engine.models.lstm import ExportStep
        x = torch.zeros(1, N_FEATURES)
        st = tuple(torch.zeros(1, HIDDEN) for _ in range(2 * LAYERS))
        with tempfile.TemporaryDirectory() as d:
            p = os.path.join(d, "lstm.onnx")
            # The TorchScript exporter (dynamo=False): the torch.export one needs onnxscript
            # and gives nothing more for this fixed-shape graph. Its deprecation notice is muted.
            import warnings
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                torch.onnx.export(ExportStep(member.net, feature_mask).eval(), (x, *st), p,
                                  input_names=["x", *state_names()], output_names=["probs", *state_names("_out")],
                                  dynamo=False, opset_version=OPSET)
            return onnx.load(p)
    if member.kind == "xgb":
        import onnxmltools
        from onnxmltools.convert.common.data_types import FloatTensorType
        m = onnxmltools.convert_xgboost(member.model, initial_types=[("x", FloatTensorType([None, N_FEATURES]))],
                                        target_opset=15)
    else:
        from skl2onnx import convert_sklearn
        from skl2onnx.common.data_types import FloatTensorType
        clf = member.model.steps[-1][1] if member.kind == "lr" else member.model
        m = convert_sklearn(member.model, initial_types=[("x", FloatTensorType([None, N_FEATURES]))],
                            options={id(clf): {"zipmap": False}}, target_opset={"": OPSET, "ai.onnx.ml": ML_OPSET})
        if member.kind == "lr":
            fold_scaler(m)
    normalize_opsets(m)
    return m


def fold_scaler(model) -> None:
    """skl2onnx writes the pipeline as Scaler -> LinearClassifier (softmax) -> Normalizer (L1).
    Fold the standardisation into the coefficients, C.((x - o) * s) + b = (C * s).x + (b - C.(o * s)),
    and drop the L1 normalisation of a softmax output (it already sums to 1): one node
    instead of three (each node costs ~0.4 us per call). Anything else is left as it was."""
    from onnx import helper
    g = model.graph
    by_type = {n.op_type: n for n in g.node}
    if sorted(by_type) != ["LinearClassifier", "Normalizer", "Scaler"] or len(g.node) != 3:
        return
    sc, lc, nz = by_type["Scaler"], by_type["LinearClassifier"], by_type["Normalizer"]
    attr = {a.name: helper.get_attribute_value(a) for a in (*sc.attribute, *lc.attribute, *nz.attribute)}
    post = attr.get("post_transform", b"NONE")
    if lc.input[0] != sc.output[0] or nz.input[0] != lc.output[1] or post != b"SOFTMAX" or attr.get("norm") != b"L1":
        return
    off = np.asarray(attr["offset"], np.float64)
    scale = np.asarray(attr["scale"], np.float64)
    coef = np.asarray(attr["coefficients"], np.float64).reshape(-1, len(off))
    icpt = np.asarray(attr["intercepts"], np.float64)
    new_coef = coef * scale
    new_icpt = icpt - coef @ (off * scale)
    keep = [a for a in lc.attribute if a.name not in ("coefficients", "intercepts")]
    node = helper.make_node("LinearClassifier", [sc.input[0]], [lc.output[0], nz.output[0]], name=lc.name,
                            domain=lc.domain)
    node.attribute.extend(keep)
    node.attribute.extend([helper.make_attribute("coefficients", new_coef.astype(np.float32).ravel().tolist()),
                           helper.make_attribute("intercepts", new_icpt.astype(np.float32).tolist())])
    del g.node[:]
    g.node.append(node)
    gone = {sc.output[0], lc.output[1]}
    kept_vi = [v for v in g.value_info if v.name not in gone]
    del g.value_info[:]
    g.value_info.extend(kept_vi)


def member_output(kind: str) -> str:
    return "probs" if kind == "lstm" else "probabilities"


def run_member(model_bytes: bytes, kind: str, X: np.ndarray, classes=None) -> np.ndarray:
    """Probabilities [n, 3] from an exported member (the LSTM stepped row by row)."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    s = ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])
    X = np.ascontiguousarray(X, np.float32)
    if kind != "lstm":
        p = s.run(["probabilities"], {"x": X})[0]
        return p.astype(np.float32) @ class_map(classes)
    names = state_names()
    st = [np.zeros((1, HIDDEN), np.float32) for _ in names]
    out = np.zeros((len(X), N_CLASSES), np.float32)
    for i in range(len(X)):
        p, *st = s.run(None, {"x": X[i:i + 1], **dict(zip(names, st))})
        out[i] = p[0]
    return out


def normalize_opsets(model) -> None:
    """One import per domain, the default domain present (converters may repeat or omit it);
    and a fixed graph name (converters draw a random one), so the same fit gives the same bytes."""
    from onnx import helper
    model.graph.name = "member"
    seen = {}
    for o in model.opset_import:
        seen[o.domain] = max(seen.get(o.domain, 0), o.version)
    seen.setdefault("", OPSET)
    del model.opset_import[:]
    model.opset_import.extend(helper.make_opsetid(d, v) for d, v in sorted(seen.items()))


def quantize(model_bytes: bytes) -> bytes:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    import logging
    m = onnx.load_from_string(model_bytes)
    normalize_opsets(m)
    root = logging.getLogger()
    level = root.level
    with tempfile.TemporaryDirectory() as d:
        a, b = os.path.join(d, "in.onnx"), os.path.join(d, "out.onnx")
        onnx.save(m, a)
        root.setLevel(logging.ERROR)        # its "consider pre-processing" notice, once per model
        try:
            quantize_dynamic(a, b, weight_type=QuantType.QInt8)
        finally:
            root.setLevel(level)
        with open(b, "rb") as f:
            return f.read()


def quantization_check(model_bytes: bytes, kind: str, X: np.ndarray, classes=None) -> tuple[bytes, dict]:
    """(bytes to use, record): the quantized model if it keeps the outputs, else the original."""
    try:
        q = quantize(model_bytes)
    except Exception as e:            # a converter limitation is a recorded outcome, not a crash
        return model_bytes, {"tried": True, "kept": False, "error": f"{type(e).__name__}: {e}"}
    import onnx
    qm = onnx.load_from_string(q)
    n_int8 = sum(1 for n in qm.graph.node if n.op_type in ("DynamicQuantizeLinear", "MatMulInteger",
                                                             "DynamicQuantizeMatMul", "DynamicQuantizeLSTM", "QGemm"))
    if n_int8 == 0:
        return model_bytes, {"tried": True, "kept": False, "reason": "nothing to quantize (no MatMul/Gemm/LSTM weights)"}
    p0 = run_member(model_bytes, kind, X, classes)
    p1 = run_member(q, kind, X, classes)
    agree = float((p0.argmax(1) == p1.argmax(1)).mean())
    diff = float(np.abs(p0 - p1).max())
    kept = agree >= QUANT_MIN_AGREEMENT and diff <= QUANT_MAX_PROB_DIFF
    rec = {"tried": True, "kept": kept, "agreement": agree, "max_prob_diff": diff, "rows": int(len(X)),
           "size_bytes": [len(model_bytes), len(q)],
           "rule": f"agreement >= {QUANT_MIN_AGREEMENT} and max_prob_diff <= {QUANT_MAX_PROB_DIFF}"}
    return (q if kept else model_bytes), rec


def fuse(members: dict) -> "onnx.ModelProto":
    """members: kind -> (model bytes, classes or None). One graph, see the module doc."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    state = state_names()
    nodes, inits, vinfo = [], [], []
    stacked = []
    for kind in MEMBERS:
        mb, classes = members[kind]
        m = onnx.load_from_string(mb)
        pre = f"{kind}__"
        g = onnx.compose.add_prefix(m, pre).graph
        # wire the member straight to the shared tensors (renaming, not Identity nodes: each
        # node costs about half a microsecond per call here)
        rename = {pre + "x": "x", **{pre + n: n for n in state}, **{pre + n + "_out": n + "_out" for n in state}}
        for node in g.node:
            node.input[:] = [rename.get(t, t) for t in node.input]
            node.output[:] = [rename.get(t, t) for t in node.output]
        nodes.extend(g.node)
        inits.extend(g.initializer)
        vinfo.extend(g.value_info)
        out = pre + member_output(kind)
        if kind == "lstm":
            pass
        elif len(classes) != N_CLASSES:              # scatter k < 3 class columns into three
            cm = numpy_helper.from_array(class_map(classes), pre + "classmap")
            inits.append(cm)
            nodes.append(helper.make_node("MatMul", [out, cm.name], [pre + "p3"]))
            out = pre + "p3"
        stacked.append(out)
    nodes += [helper.make_node("Concat", stacked, ["members"], axis=0),            # [4, 3]
              helper.make_node("MatMul", ["weights", "members"], ["probs"])]        # [1, 3]
    F = TensorProto.FLOAT
    graph = helper.make_graph(
        nodes, "cryptoscalp_ensemble",
        [helper.make_tensor_value_info("x", F, [1, N_FEATURES]),
         helper.make_tensor_value_info("weights", F, [1, len(MEMBERS)]),
         *[helper.make_tensor_value_info(n, F, [1, HIDDEN]) for n in state]],
        [helper.make_tensor_value_info("probs", F, [1, N_CLASSES]),
         helper.make_tensor_value_info("members", F, [len(MEMBERS), N_CLASSES]),
         *[helper.make_tensor_value_info(n + "_out", F, [1, HIDDEN]) for n in state]],
        initializer=inits, value_info=vinfo)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET),
                                                    helper.make_opsetid("ai.onnx.ml", ML_OPSET),
                                                    helper.make_opsetid("com.microsoft", 1)],
                              producer_name="cryptoscalp")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model
