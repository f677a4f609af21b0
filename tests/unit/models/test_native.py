"""The ensemble graph compiled to C (engine.models.native, cext.ensemble) against ONNX
Runtime: operator semantics on hand-built graphs (tree comparisons at their thresholds,
post transforms, the binary layouts, Scaler, Gemm), both matrix kernels, the fallback to
ONNX Runtime when the program cannot be used, and a program that refuses bad offsets."""
import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from cext import ensemble as E  # noqa: E402
from engine.models import native  # noqa: E402

F = TensorProto.FLOAT


def _model(nodes, inputs, outputs, inits=()):
    g = helper.make_graph(nodes, "t", [helper.make_tensor_value_info(n, F, s) for n, s in inputs],
                          [helper.make_tensor_value_info(n, F, s) for n, s in outputs],
                          initializer=[numpy_helper.from_array(np.asarray(a, np.float32 if np.asarray(a).dtype.kind == "f"
                                                                          else np.int64), n) for n, a in inits])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)])
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m.SerializeToString()


def _compare(data, X, atol=2e-6):
    """Every row through the program and through ORT: outputs equal within atol."""
    g = native.compile_graph(data)
    s = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    outs = [o.name for o in s.get_outputs()]
    for row in X:
        ref = s.run(outs, {"x": row.reshape(1, -1)})
        g.view("x")[:] = row
        g.program.run()
        for n, r in zip(outs, ref):
            np.testing.assert_allclose(g.view(n), r.reshape(g.view(n).shape), atol=atol, rtol=0, err_msg=f"{n} {row}")
    return g


def _tree_classifier(modes, n_classes=3, post="NONE", base=None, weights=None, class_ids=None):
    """Trees of depth 1-2 on features 0..2 with the given branch modes (one per tree),
    thresholds 0.5, 1.0, 1.5."""
    nt, ni, nf, nv, nm, tt, ff = [], [], [], [], [], [], []
    ct, cn, ci, cw = [], [], [], []
    rng = np.random.default_rng(3)
    for t, mode in enumerate(modes):
        # node 0: x[t % 3] MODE th -> 1 else 2; node 1: leaf; node 2: x[(t+1)%3] MODE th2 -> 3 else 4
        th = [0.5, 1.0, 1.5][t % 3]
        for nid, (feat, m, v, a, b) in enumerate([(t % 3, mode, th, 1, 2), (0, "LEAF", 0, 0, 0),
                                                  ((t + 1) % 3, mode, th + 0.5, 3, 4), (0, "LEAF", 0, 0, 0),
                                                  (0, "LEAF", 0, 0, 0)]):
            nt.append(t); ni.append(nid); nf.append(feat); nv.append(v); nm.append(m); tt.append(a); ff.append(b)
        for leaf in (1, 3, 4):
            for c in (class_ids(t) if callable(class_ids) else class_ids if class_ids is not None else range(n_classes)):
                ct.append(t); cn.append(leaf); ci.append(c)
                cw.append(float(rng.random()) if weights is None else weights(rng))
    kw = dict(nodes_treeids=nt, nodes_nodeids=ni, nodes_featureids=nf, nodes_values=nv, nodes_modes=nm,
              nodes_truenodeids=tt, nodes_falsenodeids=ff, class_treeids=ct, class_nodeids=cn, class_ids=ci,
              class_weights=cw, classlabels_int64s=list(range(n_classes)), post_transform=post)
    if base is not None:
        kw["base_values"] = base
    return helper.make_node("TreeEnsembleClassifier", ["x"], ["label", "probabilities"], domain="ai.onnx.ml", **kw)


def _grid_rows():
    """Rows with features exactly at, just below and just above every threshold."""
    pts = []
    for th in (0.5, 1.0, 1.5, 2.0):
        pts += [th, np.nextafter(np.float32(th), np.float32(-9)), np.nextafter(np.float32(th), np.float32(9))]
    rng = np.random.default_rng(0)
    return np.array([[rng.choice(pts) for _ in range(4)] for _ in range(300)], np.float32)


@pytest.mark.parametrize("post", ["NONE", "SOFTMAX", "LOGISTIC", "SOFTMAX_ZERO"])
def test_tree_classifier_every_comparison_at_its_thresholds(post):
    modes = ["BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ"] * 2
    data = _model([_tree_classifier(modes, post=post, base=[0.1, -0.2, 0.3])], [("x", [1, 4])],
                  [("probabilities", [1, 3])])
    _compare(data, _grid_rows())


@pytest.mark.parametrize("mode", ["BRANCH_LEQ", "BRANCH_LT"])
def test_tree_classifier_one_comparison_fast_path(mode):
    data = _model([_tree_classifier([mode] * 20)], [("x", [1, 4])], [("probabilities", [1, 3])])
    g = _compare(data, _grid_rows())
    assert g.n_ops == 1


def test_binary_tree_layouts_match_onnxruntime():
    # a forest's probability (weights >= 0, no transform) and boosted trees' logit (LOGISTIC)
    prob = _tree_classifier(["BRANCH_LEQ"] * 8, n_classes=2, class_ids=[0], weights=lambda r: float(r.random()) / 8)
    logit = _tree_classifier(["BRANCH_LT"] * 8, n_classes=2, class_ids=[0], post="LOGISTIC", base=[0.7],
                             weights=lambda r: float(r.normal()))
    for node in (prob, logit):
        _compare(_model([node], [("x", [1, 4])], [("probabilities", [1, 2])]), _grid_rows())


def test_binary_layout_it_does_not_know_is_refused():
    node = _tree_classifier(["BRANCH_LEQ"] * 4, n_classes=2, class_ids=[1])      # weights under class 1
    with pytest.raises(native.Unsupported, match="weights for classes"):
        native.compile_graph(_model([node], [("x", [1, 4])], [("probabilities", [1, 2])]))


def _mixed_graph(sizes, W, coef, b):
    """x -> Scaler -> LinearClassifier (lin [1,3]); x -> Gemm (transB) -> Tanh -> Split(sizes)
    -> s1 * Sigmoid(s2) + s1 -> Softmax (sm); out = Concat(Concat(lin, sm), same, axis 0)."""
    nodes = [helper.make_node("Scaler", ["x"], ["xs"], domain="ai.onnx.ml", offset=[0.5, -1.0, 2.0, 0.0],
                              scale=[2.0, 0.5, 1.0, 3.0]),
             helper.make_node("LinearClassifier", ["xs"], ["lab", "lin"], domain="ai.onnx.ml",
                              classlabels_ints=[0, 1, 2], coefficients=coef.ravel().tolist(),
                              intercepts=[0.1, 0.2, -0.3], post_transform="SOFTMAX"),
             helper.make_node("Gemm", ["x", "W", "b"], ["gm"], transB=1),
             helper.make_node("Tanh", ["gm"], ["th"]),
             helper.make_node("Split", ["th", "sizes"], ["s1", "s2", "s3"], axis=1),
             helper.make_node("Sigmoid", ["s2"], ["sg"]),
             helper.make_node("Mul", ["s1", "sg"], ["m"]),
             helper.make_node("Add", ["m", "s1"], ["a"]),
             helper.make_node("Softmax", ["a"], ["sm"], axis=-1),
             helper.make_node("Identity", ["lin"], ["li"]),
             helper.make_node("Concat", ["li", "sm"], ["row"], axis=1),
             helper.make_node("Concat", ["row", "row"], ["out"], axis=0)]
    return _model(nodes, [("x", [1, 4])], [("out", [2, 3 + sizes[0]])],
                  inits=[("W", W), ("b", b), ("sizes", np.array(sizes))])


def test_scaler_linear_classifier_gemm_and_friends():
    rng = np.random.default_rng(1)
    coef = rng.normal(size=(3, 4)).astype(np.float32)
    W = rng.normal(size=(5, 4)).astype(np.float32)            # Gemm transB: [5, 4] used as [4, 5]
    b = rng.normal(size=5).astype(np.float32)
    _compare(_mixed_graph([2, 2, 1], W, coef, b), rng.normal(size=(200, 4)).astype(np.float32) * 3)
    # [1, 2] * [1, 1]: a column broadcast the program does not do -> refused, and it says where
    with pytest.raises(native.Unsupported, match="Mul"):
        native.compile_graph(_mixed_graph([2, 1, 2], W, coef, b))


def test_unsupported_operator_names_itself():
    data = _model([helper.make_node("Relu", ["x"], ["y"])], [("x", [1, 4])], [("y", [1, 4])])
    with pytest.raises(native.Unsupported, match="operator Relu"):
        native.compile_graph(data)


def test_both_matrix_kernels_agree():
    rng = np.random.default_rng(2)
    W = rng.normal(size=(89, 200)).astype(np.float32)          # 200: six blocks of 32 and a remainder of 8
    data = _model([helper.make_node("MatMul", ["x", "W"], ["y"])], [("x", [1, 89])], [("y", [1, 200])], inits=[("W", W)])
    X = rng.normal(size=(50, 89)).astype(np.float32)
    wide = E.kernel()
    try:
        assert E.use_wide(False) == "baseline"
        a = _compare(data, X, atol=2e-5)
        E.use_wide(True)
        b = _compare(data, X, atol=2e-5)
        a.program.run(); b.program.run()
    finally:
        E.use_wide(wide != "baseline")


@pytest.mark.parametrize("wide", [True, False])
def test_vector_sigmoid_and_tanh_are_float32_exact_to_two_ulp(wide):
    """The LSTM's activations, 8 (AVX2) or 4 lanes at a time: on a dense grid, the extremes,
    infinities and every tail length, within 1.5e-7 of the float64 truth (relative; numpy's
    own float32 tanh/exp are as far), limits exact, NaN kept."""
    x = np.concatenate([np.linspace(-100, 100, 400_001), np.linspace(-1, 1, 200_001),
                        [0.0, -0.0, 1e-30, -1e-30, 1e-45, 87.9, 88.0, 88.5, -88.5, 1e30, -1e30]]).astype(np.float32)
    x64 = x.astype(np.float64)
    truth = {"sigmoid": 1 / (1 + np.exp(-np.clip(x64, -700, 700))), "tanh": np.tanh(x64)}
    old = E.kernel()
    try:
        E.use_wide(wide)
        for name, ref in truth.items():
            y = E.activation(name, x).astype(np.float64)
            big = np.abs(ref) > 1e-30
            assert np.max(np.abs(y - ref)) < 1e-7
            assert np.max(np.abs(y - ref)[big] / np.abs(ref)[big]) < 1.5e-7
            lim = E.activation(name, np.array([np.inf, -np.inf, np.nan], np.float32))
            assert lim[0] == 1.0
            assert (0.0 <= lim[1] < 1e-38) if name == "sigmoid" else lim[1] == -1.0
            assert np.isnan(lim[2])
            for n in range(1, 18):                       # the tail goes through the same vector code
                assert np.array_equal(E.activation(name, x[1000:1000 + n]), E.activation(name, x[1000:1032])[:n])
        with pytest.raises(ValueError, match="sigmoid or tanh"):
            E.activation("relu", x[:4])
    finally:
        E.use_wide(old != "baseline")


def test_op_ns_times_every_operation():
    rng = np.random.default_rng(3)
    W = rng.normal(size=(8, 6)).astype(np.float32)
    g = native.compile_graph(_model([helper.make_node("MatMul", ["x", "W"], ["m"]), helper.make_node("Tanh", ["m"], ["y"])],
                                    [("x", [1, 8])], [("y", [1, 6])], inits=[("W", W)]))
    ns = g.program.op_ns(20)
    assert len(ns) == g.n_ops and all(isinstance(v, int) and v >= 0 for v in ns)
    g.view("x")[:] = rng.normal(size=8)
    g.program.run()
    y = g.view("y").copy()
    cold = g.program.op_ns(5, evict_bytes=1 << 20)        # caches written over before each run
    assert len(cold) == g.n_ops and np.array_equal(g.view("y"), y)


def test_program_refuses_offsets_outside_its_arena():
    arena = np.zeros(64, np.float32)
    z = np.zeros(0)
    ok = np.array([[E.MATMUL, 0, 8, 40, 1, 4, 4, 0, 0, 0, 0, 0]], np.int64)
    E.Program(arena, ok, z, z, z, z, z, z, z, z, z, z)
    bad = ok.copy()
    bad[0, 3] = 62                                              # out [62, 66) of 64
    with pytest.raises(ValueError, match="outside the arena"):
        E.Program(arena, bad, z, z, z, z, z, z, z, z, z, z)
    with pytest.raises(ValueError, match="unknown code"):
        E.Program(arena, np.array([[42] + [0] * 11], np.int64), z, z, z, z, z, z, z, z, z, z)
    # a tree: root x[0] <= 0.5 -> node 1 (leaf: +1.0 to class 0) else node 2 (leaf: +2.0 to class 1)
    tree = np.array([[E.TREES, 0, 0, 8, 1, 4, 3, 0, 1, 0, 16, 0]], np.int64)

    def args(**o):
        base = dict(feat=np.array([0, -1, -1]), thr=np.array([0.5, 0.0, 0.0]), mode=np.array([0, 0, 0]),
                    tnext=np.array([1, 0, 0]), fnext=np.array([2, 0, 0]), wstart=np.array([0, 0, 1]),
                    wcount=np.array([0, 1, 1]), roots=np.array([0]), wcls=np.array([0, 1]), wval=np.array([1.0, 2.0]))
        base.update(o)
        return list(base.values())

    with pytest.raises(ValueError, match="cycle"):
        E.Program(arena, tree, *args(fnext=np.array([0, 0, 0])))          # false branch back to the root
    with pytest.raises(ValueError, match="class 5 outside 3"):
        E.Program(arena, tree, *args(wcls=np.array([0, 5])))
    with pytest.raises(ValueError, match="feature 7 outside 4"):
        E.Program(arena, tree, *args(feat=np.array([7, -1, -1])))
    p = E.Program(arena, tree, *args())
    arena[16:19] = [0.25, 0, 0]                                            # base values
    arena[0] = 0.5                                                         # x[0] <= 0.5: the true branch
    p.run()
    assert arena[8:11].tolist() == [1.25, 0, 0]
    arena[0] = np.nextafter(np.float32(0.5), np.float32(1))
    p.run()
    assert arena[8:11].tolist() == [0.25, 2.0, 0]


def test_commit_copies_are_checked():
    arena = np.zeros(32, np.float32)
    z = np.zeros(0)
    p = E.Program(arena, np.zeros((0, 12), np.int64), z, z, z, z, z, z, z, z, z, z)
    with pytest.raises(ValueError, match="overlapping"):
        p.set_commit([(0, 4, 8)])
    with pytest.raises(ValueError, match="outside"):
        p.set_commit([(0, 30, 4)])
    p.set_commit([(0, 16, 4)])
    arena[:4] = [1, 2, 3, 4]
    p.run(False)
    assert arena[16:20].tolist() == [0, 0, 0, 0]
    p.run(True)
    assert arena[16:20].tolist() == [1, 2, 3, 4]


def test_run_row_copies_checks_and_runs():
    W = np.arange(12, dtype=np.float32).reshape(4, 3)
    data = _model([helper.make_node("MatMul", ["x", "W"], ["y"])], [("x", [1, 4])], [("y", [1, 3])], inits=[("W", W)])
    g = native.compile_graph(data)
    p = g.program
    with pytest.raises(ValueError, match="set_row_input"):
        p.run_row(np.zeros(4))
    p.set_row_input(g.slots["x"][0], 4)
    for row in (np.array([1.0, 2.0, 3.0, 4.0]), np.array([1, 2, 3, 4], np.float32)):
        assert p.run_row(row)
        assert g.view("y")[0].tolist() == (np.array([1, 2, 3, 4], np.float32) @ W).tolist()
    runs = p.runs
    for bad in (np.array([1.0, np.nan, 0, 0]), np.array([1.0, np.inf, 0, 0]), np.array([1e39, 0, 0, 0])):
        assert not p.run_row(bad)                      # not finite as a float32: nothing run
    assert p.runs == runs
    with pytest.raises(ValueError, match="a row of 4 values"):
        p.run_row(np.zeros(5))
    with pytest.raises(TypeError, match="float64 or float32"):
        p.run_row(np.zeros(4, np.int64))
    with pytest.raises(TypeError, match="contiguous"):
        p.run_row(np.zeros((4, 2))[:, 0])
    with pytest.raises(TypeError):
        p.run_row([1.0, 2.0, 3.0, 4.0])                # not a buffer (EnsembleRuntime converts these)


def _recurrent_graph(rng, n_x=5, n_h=8):
    """y = tanh(concat(x, h) @ W + b): the shape of the exported LSTM's steps, with the next
    state h_out = y (and a second reader of the concat, as the LSTM's gates have)."""
    W = rng.standard_normal((n_x + n_h, n_h)).astype(np.float32)
    V = rng.standard_normal((n_x + n_h, 3)).astype(np.float32)
    b = rng.standard_normal((1, n_h)).astype(np.float32)
    nodes = [helper.make_node("Concat", ["x", "h"], ["xh"], axis=1),
             helper.make_node("MatMul", ["xh", "W"], ["m"]), helper.make_node("Add", ["m", "b"], ["a"]),
             helper.make_node("Tanh", ["a"], ["h_out"]), helper.make_node("MatMul", ["xh", "V"], ["y"])]
    return _model(nodes, [("x", [1, n_x]), ("h", [1, n_h])], [("y", [1, 3]), ("h_out", [1, n_h])],
                  [("W", W), ("V", V), ("b", b)])


def test_the_recurrent_product_runs_once_per_state():
    """concat(x, h) @ W is h's rows of W times h in the prelude (no concat copy) plus x's rows
    times x: what ONNX Runtime computes within float rounding; run_row runs the prelude again
    only when the state was committed (or invalidated), and its answers equal a full run's."""
    rng = np.random.default_rng(7)
    data = _recurrent_graph(rng)
    g = native.compile_graph(data)
    assert g.program.n_pre == 2                     # h @ W[5:], h @ V[5:]
    s = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    full = native.compile_graph(data)                   # the same program, always run whole
    for p in (g, full):
        p.program.set_commit([(p.slots["h_out"][0], p.slots["h"][0], 8)])
        p.program.set_row_input(p.slots["x"][0], 5)
    h = np.zeros((1, 8), np.float32)
    for step in range(30):
        x = rng.standard_normal(5)
        commit = step % 3 == 2
        ref_y, ref_h = s.run(["y", "h_out"], {"x": x.reshape(1, -1).astype(np.float32), "h": h})
        assert g.program.run_row(x, commit)
        full.view("x")[:] = x
        full.program.run(commit)
        assert np.array_equal(g.view("y"), full.view("y")) and np.array_equal(g.view("h"), full.view("h"))
        np.testing.assert_allclose(g.view("y"), ref_y, atol=1e-5, rtol=1e-5)
        if commit:
            h = ref_h
        np.testing.assert_allclose(g.view("h"), h, atol=1e-5, rtol=1e-5)
    g.view("h")[:] = 0                                  # a reset from outside: stale until told
    g.program.invalidate()
    full.view("h")[:] = 0
    x = rng.standard_normal(5)
    g.program.run_row(x, False)
    full.view("x")[:] = x
    full.program.run(False)
    assert np.array_equal(g.view("y"), full.view("y"))


@pytest.mark.parametrize("mode", ["BRANCH_LEQ", "BRANCH_LT", "BRANCH_GTE", "BRANCH_GT", "BRANCH_EQ", "BRANCH_NEQ"])
def test_shallow_trees_of_one_comparison_are_laid_out_complete(mode):
    """Every comparison, at, just below and just above each threshold, through the complete
    layout (a leaf above the full depth repeated under padding nodes): ONNX Runtime's
    answers; a mixed ensemble keeps the node walk."""
    data = _model([_tree_classifier([mode] * 20, post="SOFTMAX", base=[0.1, -0.2, 0.3])], [("x", [1, 4])],
                  [("probabilities", [1, 3])])
    g = _compare(data, _grid_rows())
    assert g.program.codes() == [E.TREES_COMPLETE]
    mixed = _model([_tree_classifier(["BRANCH_LEQ", "BRANCH_GT"] * 5)], [("x", [1, 4])], [("probabilities", [1, 3])])
    assert _compare(mixed, _grid_rows()).program.codes() == [E.TREES]
    # boosted trees' layout: each tree adds one weight to one class (tree t to class t % 3)
    boosted = _model([_tree_classifier([mode] * 21, post="SOFTMAX", class_ids=lambda t: [t % 3],
                                       weights=lambda r: float(r.normal()))], [("x", [1, 4])],
                     [("probabilities", [1, 3])])
    assert _compare(boosted, _grid_rows()).program.codes() == [E.TREES_COMPLETE]


def _chain_tree(depth):
    """One tree, a chain of ``depth`` branches (x[d % 4] <= d / 4: a leaf, else on)."""
    nt, ni, nf, nv, nm, tt, ff, cn, ci, cw = [], [], [], [], [], [], [], [], [], []
    for d in range(depth):
        nt += [0, 0]; ni += [2 * d, 2 * d + 1]; nf += [d % 4, 0]; nv += [d / 4, 0.0]
        nm += ["BRANCH_LEQ", "LEAF"]; tt += [2 * d + 1, 0]; ff += [2 * d + 2, 0]
        cn += [2 * d + 1] * 3; ci += [0, 1, 2]; cw += [d / 10, 1 - d / 10, 0.5]
    nt.append(0); ni.append(2 * depth); nf.append(0); nv.append(0.0); nm.append("LEAF"); tt.append(0); ff.append(0)
    cn += [2 * depth] * 3; ci += [0, 1, 2]; cw += [0.9, 0.1, 0.2]
    return helper.make_node("TreeEnsembleClassifier", ["x"], ["label", "probabilities"], domain="ai.onnx.ml",
                            nodes_treeids=nt, nodes_nodeids=ni, nodes_featureids=nf, nodes_values=nv, nodes_modes=nm,
                            nodes_truenodeids=tt, nodes_falsenodeids=ff, class_treeids=[0] * len(cn),
                            class_nodeids=cn, class_ids=ci, class_weights=cw, classlabels_int64s=[0, 1, 2])


@pytest.mark.parametrize("depth, code", [(native.COMPLETE_MAX_DEPTH, E.TREES_COMPLETE),
                                         (native.COMPLETE_MAX_DEPTH + 1, E.TREES)])
def test_deep_trees_keep_the_node_walk(depth, code):
    data = _model([_chain_tree(depth)], [("x", [1, 4])], [("probabilities", [1, 3])])
    rows = np.random.default_rng(1).uniform(-0.5, 2.0, (300, 4)).astype(np.float32)
    assert _compare(data, rows).program.codes() == [code]
