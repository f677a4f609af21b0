"""The fused ensemble graph compiled to a flat C program (``cext.ensemble.Program``).

ONNX Runtime spends most of a single-row call on per-node dispatch (~0.4 us a node, about 40
nodes here) and on memory it touches cold after the loop slept: on the engine's hot path the
fused graph took ~50 us a call where its arithmetic is ~60 k multiply-adds and ~1,700 tree
node visits. ``compile_graph`` turns the graph into one float32 arena (every tensor and
initializer at a fixed offset) and a list of operations that ``Program.run`` executes in one
C loop, without the GIL.

Only what the exporter emits is supported, with ONNX's semantics: MatMul, Gemm (no
transposed A, alpha = beta = 1), Add and Mul (row broadcast), Sigmoid, Tanh, Softmax (last
axis), Concat and Split (2-D), Identity, Constant, and ONNX-ML Scaler, LinearClassifier
(a row of coefficients per class) and TreeEnsembleClassifier (every class with weights,
post transforms NONE, SOFTMAX, SOFTMAX_ZERO, LOGISTIC; or the binary layout with one
score under class 0, see ``_trees``). Every tensor has a fixed shape of at most two dimensions. Anything
else raises ``Unsupported`` with the reason, and ``EnsembleRuntime`` runs the graph in ONNX
Runtime instead.

A Concat of the row's input with recurrent state read only by MatMuls with constant
weights (the exported LSTM's ``concat(x, h) @ W``) is not copied: each MatMul becomes the
state's rows of W times h, in the program's prelude (run again only when the state is
committed), plus the input's rows times x, summed from it (``MATMUL_FROM``). The sums
then add the state's rows first: a different order of the same float32 additions.

``EnsembleRuntime`` never uses a program it has not checked against ONNX Runtime on the
same graph (``check``): ``PROBE_ROWS`` rows built around the trees' split points, stepped
through both with the LSTM state carried, every output within ``NATIVE_TOL``.
"""
from __future__ import annotations

import numpy as np

NATIVE_TOL = 1e-5          # max |difference| / max(1, |ONNX Runtime's value|) of any output (probabilities, LSTM state)
PROBE_ROWS = 256

_POST = {b"NONE": 0, b"SOFTMAX": 1, b"LOGISTIC": 2, b"SOFTMAX_ZERO": 3}
BIN_PROB, BIN_LOGIT = 4, 5           # binary trees' one score s -> [1 - s, s] / [sigmoid(-s), sigmoid(s)]
_MODES = {b"BRANCH_LEQ": 0, b"BRANCH_LT": 1, b"BRANCH_GTE": 2, b"BRANCH_GT": 3, b"BRANCH_EQ": 4, b"BRANCH_NEQ": 5}


class Unsupported(ValueError):
    """The graph holds something the native program does not do (the reason says what)."""


class NativeGraph:
    """A compiled graph: ``program`` (cext.ensemble.Program) over ``arena``; ``view(name)``
    is a graph input's or output's [rows, cols] float32 view of the arena (write the inputs,
    ``run``, read the outputs); ``split_points`` maps a feature index to the thresholds the
    trees compare it with."""

    def __init__(self, program, arena, slots, split_points, n_ops):
        self.program, self.arena, self.slots = program, arena, slots
        self.split_points, self.n_ops = split_points, n_ops

    def view(self, name: str) -> np.ndarray:
        off, r, n = self.slots[name]
        return self.arena[off:off + r * n].reshape(r, n)


class _Builder:
    def __init__(self):
        self.chunks = []            # (offset, float32 data or None)
        self.size = 0
        self.shape = {}             # tensor -> (offset, rows, cols)
        self.ints = {}              # integer constants (Split sizes)
        self.ops = []
        self.pre_ops = []           # the prelude: operations on the recurrent state and constants only
        self.trees = dict(feat=[], thr=[], mode=[], tnext=[], fnext=[], wstart=[], wcount=[], roots=[],
                          wcls=[], wval=[])
        self.split_points = {}
        self.concats = {}           # a Concat of [input, state] never copied: (rows, columns, its parts)

    def alloc(self, name, r, n, data=None):
        if name in self.shape:
            raise Unsupported(f"tensor {name!r} is written twice")
        off = self.size
        self.size += r * n + (-(r * n)) % 16          # 64-byte aligned starts
        self.shape[name] = (off, r, n)
        if data is not None:
            self.chunks.append((off, np.asarray(data, np.float32).reshape(-1)))
        return off

    def get(self, name):
        if name not in self.shape:
            raise Unsupported(f"tensor {name!r} is used before it is computed (or is not a float tensor)")
        return self.shape[name]

    def op(self, code, a=0, b=0, out=0, r=0, k=0, n=0, p1=0, p2=0, p3=0, p4=0, p5=0, prelude=False):
        (self.pre_ops if prelude else self.ops).append((code, a, b, out, r, k, n, p1, p2, p3, p4, p5))


def _two_d(shape, what):
    if len(shape) == 1:
        return 1, int(shape[0])
    if len(shape) == 2:
        return int(shape[0]), int(shape[1])
    raise Unsupported(f"{what}: shape {tuple(shape)} (only 1-D and 2-D tensors)")


def compile_graph(model_bytes: bytes) -> NativeGraph:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from cext import ensemble as E
    m = onnx.load_from_string(model_bytes)
    g = m.graph
    B = _Builder()
    consumers = {}
    for node in g.node:
        for t in node.input:
            consumers.setdefault(t, []).append(node.op_type)
    for o in g.output:
        consumers.setdefault(o.name, []).append("graph output")
    init_names = {i.name for i in g.initializer}
    split = _state_splits(g, init_names)
    for vi in g.input:
        if vi.name in init_names:
            continue
        tt = vi.type.tensor_type
        if tt.elem_type != TensorProto.FLOAT:
            raise Unsupported(f"input {vi.name!r}: element type {tt.elem_type} (float only)")
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
        if None in dims:
            raise Unsupported(f"input {vi.name!r}: a dimension without a fixed size")
        B.alloc(vi.name, *_two_d(dims, vi.name))
    for vi in g.output:                              # outputs next to each other, in order
        tt = vi.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tt.shape.dim]
        if None in dims or tt.elem_type != TensorProto.FLOAT:
            raise Unsupported(f"output {vi.name!r}: not a fixed-shape float tensor")
        B.alloc(vi.name, *_two_d(dims, vi.name))
    outputs_declared = {vi.name: B.shape[vi.name] for vi in g.output}
    produced = set()

    def out_tensor(name, r, n):
        """The output's offset: the declared slot of a graph output (its shape must agree)."""
        if name in outputs_declared:
            off, r0, n0 = outputs_declared[name]
            if (r0, n0) != (r, n):
                raise Unsupported(f"output {name!r}: declared [{r0}, {n0}], computed [{r}, {n}]")
            if name in produced:
                raise Unsupported(f"tensor {name!r} is written twice")
            produced.add(name)
            return off
        produced.add(name)
        return B.alloc(name, r, n)

    for init in g.initializer:
        a = numpy_helper.to_array(init)
        if a.dtype.kind in "iu":
            B.ints[init.name] = a.astype(np.int64)
        elif a.dtype.kind == "f":
            B.alloc(init.name, *_two_d(a.shape, init.name), data=a)
        else:
            raise Unsupported(f"initializer {init.name!r}: dtype {a.dtype}")

    for node in g.node:
        at = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        t = node.op_type
        ins = list(node.input)
        if node.domain not in ("", "ai.onnx", "ai.onnx.ml"):
            raise Unsupported(f"node {node.name or t}: domain {node.domain!r}")
        if t == "Constant":
            if "value" not in at:
                raise Unsupported(f"Constant {node.name}: only the 'value' attribute")
            a = numpy_helper.to_array(at["value"])
            if a.dtype.kind in "iu":
                B.ints[node.output[0]] = a.astype(np.int64)
            else:
                B.alloc(node.output[0], *_two_d(a.shape or (1,), node.name), data=a)
                produced.add(node.output[0])
        elif t == "Scaler":                          # ONNX-ML: (x - offset) * scale, per column or one for all
            off, r, k = B.get(ins[0])
            o_ = np.asarray(at.get("offset", [0.0]), np.float32)
            s_ = np.asarray(at.get("scale", [1.0]), np.float32)
            if o_.size not in (1, k) or s_.size not in (1, k):
                raise Unsupported(f"Scaler {node.name}: {o_.size} offsets / {s_.size} scales for {k} columns")
            neg = B.alloc(node.name + "__negoffset", 1, k, data=np.broadcast_to(-o_, (k,)))
            sc = B.alloc(node.name + "__scale", 1, k, data=np.broadcast_to(s_, (k,)))
            mid = B.alloc(node.name + "__centred", r, k)
            B.op(E.ADD, a=off, b=neg, out=mid, r=r, n=k, p1=1)
            B.op(E.MUL, a=mid, b=sc, out=out_tensor(node.output[0], r, k), r=r, n=k, p1=1)
        elif t == "Identity":
            off, r, n = B.get(ins[0])
            B.op(E.COPY, a=off, out=out_tensor(node.output[0], r, n), r=r, k=n, n=n, p1=n)
        elif t == "Concat":
            shapes = [B.get(x) for x in ins]
            axis = at.get("axis", 0)
            axis = axis + 2 if axis < 0 else axis
            if node.output[0] in split and axis == 1 and len({s[1] for s in shapes}) == 1:
                # [input, state] read only by MatMuls: no copy; each MatMul reads the parts (below)
                col, parts = 0, []
                for x, (off, r, n) in zip(ins, shapes):
                    parts.append((x, off, col, n))
                    col += n
                B.concats[node.output[0]] = (shapes[0][1], col, parts)
            elif axis == 1:
                r = shapes[0][1]
                if any(s[1] != r for s in shapes):
                    raise Unsupported(f"Concat {node.name}: rows differ")
                total = sum(s[2] for s in shapes)
                out = out_tensor(node.output[0], r, total)
                col = 0
                for off, _, n in shapes:
                    B.op(E.COPY, a=off, out=out + col, r=r, k=n, n=n, p1=total)
                    col += n
            elif axis == 0:
                n = shapes[0][2]
                if any(s[2] != n for s in shapes):
                    raise Unsupported(f"Concat {node.name}: columns differ")
                out = out_tensor(node.output[0], sum(s[1] for s in shapes), n)
                row = 0
                for off, r, _ in shapes:
                    B.op(E.COPY, a=off, out=out + row * n, r=1, k=r * n, n=r * n, p1=r * n)
                    row += r
            else:
                raise Unsupported(f"Concat {node.name}: axis {axis}")
        elif t == "Split":
            off, r, n = B.get(ins[0])
            axis = at.get("axis", 0)
            axis = axis + 2 if axis < 0 else axis
            if axis != 1:
                raise Unsupported(f"Split {node.name}: axis {axis} (columns only)")
            if len(ins) > 1 and ins[1]:
                if ins[1] not in B.ints:
                    raise Unsupported(f"Split {node.name}: sizes not a constant")
                sizes = [int(v) for v in B.ints[ins[1]]]
            elif "split" in at:
                sizes = [int(v) for v in at["split"]]
            else:
                if n % len(node.output):
                    raise Unsupported(f"Split {node.name}: {n} columns into {len(node.output)}")
                sizes = [n // len(node.output)] * len(node.output)
            if sum(sizes) != n or len(sizes) != len(node.output):
                raise Unsupported(f"Split {node.name}: sizes {sizes} for {n} columns")
            col = 0
            for name, s in zip(node.output, sizes):
                B.op(E.COPY, a=off + col, out=out_tensor(name, r, s), r=r, k=n, n=s, p1=s)
                col += s
        elif t == "MatMul" and ins[0] in B.concats:
            r, k, parts = B.concats[ins[0]]
            b_off, k2, n = B.get(ins[1])
            if k != k2:
                raise Unsupported(f"MatMul {node.name}: [{r}, {k}] @ [{k2}, {n}]")
            out = out_tensor(node.output[0], r, n)
            # concat(x, h) @ W = h @ W[rows of h] (the prelude: once per state) + x @ W[rows of x]
            state = [p for p in parts if p[0] in split[ins[0]]]
            inputs = [p for p in parts if p[0] not in split[ins[0]]]
            acc = B.alloc(node.output[0] + "__state", r, n)
            for i, (_, off, col, w) in enumerate(state):
                B.op(E.MATMUL if i == 0 else E.MATMUL_FROM, a=off, b=b_off + col * n, out=acc, r=r, k=w, n=n,
                     p1=acc, prelude=True)
            for i, (_, off, col, w) in enumerate(inputs):
                B.op(E.MATMUL_FROM, a=off, b=b_off + col * n, out=out, r=r, k=w, n=n, p1=acc if i == 0 else out)
        elif t in ("MatMul", "Gemm"):
            a_off, r, k = B.get(ins[0])
            b_off, k2, n = B.get(ins[1])
            if t == "Gemm":
                if at.get("transA", 0) or at.get("alpha", 1.0) != 1.0 or at.get("beta", 1.0) != 1.0:
                    raise Unsupported(f"Gemm {node.name}: transA, alpha or beta")
                if at.get("transB", 0):
                    src = [i for i in g.initializer if i.name == ins[1]]
                    if not src:
                        raise Unsupported(f"Gemm {node.name}: transposed B that is not an initializer")
                    bt = numpy_helper.to_array(src[0]).T
                    b_off = B.alloc(ins[1] + "__T", *bt.shape, data=bt)
                    k2, n = bt.shape
            if k != k2:
                raise Unsupported(f"{t} {node.name}: [{r}, {k}] @ [{k2}, {n}]")
            if t == "Gemm" and len(ins) > 2 and ins[2]:
                mid = B.alloc(node.output[0] + "__mm", r, n)
                B.op(E.MATMUL, a=a_off, b=b_off, out=mid, r=r, k=k, n=n)
                c_off, cr, cn = B.get(ins[2])
                if cn != n or cr not in (1, r):
                    raise Unsupported(f"Gemm {node.name}: C [{cr}, {cn}] for [{r}, {n}]")
                B.op(E.ADD, a=mid, b=c_off, out=out_tensor(node.output[0], r, n), r=r, n=n, p1=cr)
            else:
                B.op(E.MATMUL, a=a_off, b=b_off, out=out_tensor(node.output[0], r, n), r=r, k=k, n=n)
        elif t in ("Add", "Mul"):
            (a_off, ra, na), (b_off, rb, nb) = B.get(ins[0]), B.get(ins[1])
            if ra < rb:                                 # both commute: the full one first
                (a_off, ra, na), (b_off, rb, nb) = (b_off, rb, nb), (a_off, ra, na)
            if na != nb or rb not in (1, ra):
                raise Unsupported(f"{t} {node.name}: [{ra}, {na}] with [{rb}, {nb}]")
            B.op(E.ADD if t == "Add" else E.MUL, a=a_off, b=b_off, out=out_tensor(node.output[0], ra, na),
                 r=ra, n=na, p1=rb)
        elif t in ("Sigmoid", "Tanh"):
            off, r, n = B.get(ins[0])
            B.op(E.SIGMOID if t == "Sigmoid" else E.TANH, a=off, out=out_tensor(node.output[0], r, n), r=r, n=n)
        elif t == "Softmax":
            off, r, n = B.get(ins[0])
            axis = at.get("axis", -1)
            if axis not in (-1, 1):
                raise Unsupported(f"Softmax {node.name}: axis {axis}")
            B.op(E.SOFTMAX, a=off, out=out_tensor(node.output[0], r, n), r=r, n=n)
        elif t == "LinearClassifier":
            off, r, k = B.get(ins[0])
            labels = at.get("classlabels_ints") or at.get("classlabels_strings") or []
            n = len(labels)
            coef = np.asarray(at["coefficients"], np.float32)
            icpt = np.asarray(at.get("intercepts", [0.0] * n), np.float32)
            if n < 2 or coef.size != n * k or icpt.size != n:
                raise Unsupported(f"LinearClassifier {node.name}: {coef.size} coefficients for {n} classes x {k} "
                                  f"features (the binary one-row layout is not done here)")
            post = _POST.get(at.get("post_transform", b"NONE"))
            if post is None:
                raise Unsupported(f"LinearClassifier {node.name}: post_transform {at['post_transform']!r}")
            _label_unused(node, consumers)
            c_off = B.alloc(node.name + "__coef", n, k, data=coef)
            i_off = B.alloc(node.name + "__icpt", 1, n, data=icpt)
            B.op(E.LINEAR, a=off, b=c_off, out=out_tensor(node.output[1], r, n), r=r, k=k, n=n, p1=i_off, p2=post)
        elif t == "TreeEnsembleClassifier":
            off, r, k = B.get(ins[0])
            _label_unused(node, consumers)
            n, root0, n_trees, post, base = _trees(node, at, k, B)
            b_off = B.alloc(node.name + "__base", 1, n, data=base)
            complete = _complete(B, root0, n_trees, n)
            if complete is not None:                 # shallow trees, one comparison: laid out complete
                nodes, leaves, cls, depth, cmp_ = complete
                nd_off = B.alloc(node.name + "__nodes", 1, nodes.size, data=nodes)
                lv_off = B.alloc(node.name + "__leaves", 1, leaves.size, data=leaves)
                cls_off = B.alloc(node.name + "__classes", 1, cls.size, data=cls) if cls is not None else 0
                B.op(E.TREES_COMPLETE, a=off, b=nd_off, out=out_tensor(node.output[1], r, n), r=r, k=k, n=n,
                     p1=lv_off, p2=n_trees, p3=post, p4=b_off, p5=cls_off * 128 + cmp_ * 16 + depth)
            else:
                B.op(E.TREES, a=off, out=out_tensor(node.output[1], r, n), r=r, k=k, n=n,
                     p1=root0, p2=n_trees, p3=post, p4=b_off)
        else:
            raise Unsupported(f"operator {t} ({node.name})")

    missing = [o for o in outputs_declared if o not in produced]
    if missing:
        raise Unsupported(f"graph outputs never computed: {missing}")
    arena = np.zeros(B.size + 16, np.float32)
    for off, data in B.chunks:
        arena[off:off + data.size] = data
    tr = B.trees
    ops = np.array(B.pre_ops + B.ops, np.int64).reshape(-1, E.OP_WIDTH)
    prog = E.Program(arena, ops, np.array(tr["feat"], np.int32), np.array(tr["thr"], np.float32),
                     np.array(tr["mode"], np.int8), np.array(tr["tnext"], np.int32), np.array(tr["fnext"], np.int32),
                     np.array(tr["wstart"], np.int32), np.array(tr["wcount"], np.int32),
                     np.array(tr["roots"], np.int32), np.array(tr["wcls"], np.int32), np.array(tr["wval"], np.float32),
                     len(B.pre_ops))
    slots = {vi.name: B.shape[vi.name] for vi in (*g.input, *g.output) if vi.name not in init_names}
    points = {f: np.unique(np.array(v, np.float32)) for f, v in B.split_points.items()}
    return NativeGraph(prog, arena, slots, points, len(ops))


def _state_splits(g, init_names) -> dict:
    """Concat outputs (axis 1) that join the row's input with recurrent state (a graph input
    ``h`` whose next value is the output ``h_out``) and are read only by MatMuls with a
    constant right side: {output: the state inputs among its parts}. Each such MatMul is
    split by rows of its weights, the state's product moved to the prelude."""
    state = {i.name for i in g.input} & {o.name[:-4] for o in g.output if o.name.endswith("_out")}
    readers = {}
    for node in g.node:
        for x in node.input:
            readers.setdefault(x, []).append(node)
    outputs = {o.name for o in g.output}
    out = {}
    for node in g.node:
        if node.op_type != "Concat" or node.output[0] in outputs:
            continue
        parts = set(node.input)
        if not parts & state or parts <= state:
            continue
        rd = readers.get(node.output[0], [])
        if rd and all(r.op_type == "MatMul" and r.input[0] == node.output[0] and r.input[1] in init_names
                      and node.output[0] not in r.input[1:] for r in rd):
            out[node.output[0]] = parts & state
    return out


def _label_unused(node, consumers):
    if consumers.get(node.output[0]):
        raise Unsupported(f"{node.op_type} {node.name}: its label output is used (only probabilities are computed)")


def _trees(node, at, k, B):
    """Append a TreeEnsembleClassifier's trees to the builder's node arrays."""
    for a in ("nodes_values_as_tensor", "class_weights_as_tensor", "base_values_as_tensor", "nodes_hitrates_as_tensor"):
        if a in at:
            raise Unsupported(f"TreeEnsembleClassifier {node.name}: attribute {a}")
    labels = at.get("classlabels_int64s") or at.get("classlabels_strings") or []
    n = len(labels)
    cls = [int(c) for c in at.get("class_ids", [])]
    post = _POST.get(at.get("post_transform", b"NONE"))
    if post is None:
        raise Unsupported(f"TreeEnsembleClassifier {node.name}: post_transform {at['post_transform']!r}")
    base = np.asarray(at.get("base_values") or [], np.float32)
    if n == 2 and set(cls) == {0}:
        # The binary layout (skl2onnx's random forest, onnxmltools' XGBoost): one score s =
        # base + sum of the leaves, written under class 0, and ONNX Runtime's output for it:
        # [1 - s, s] when every weight is >= 0 and there is no post transform (a
        # probability), [sigmoid(-s), sigmoid(s)] with LOGISTIC (a logit).
        w = np.asarray(at["class_weights"], np.float32)
        if base.size > 1:
            raise Unsupported(f"TreeEnsembleClassifier {node.name}: binary with {base.size} base values")
        if post == _POST[b"NONE"] and (w >= 0).all():
            post = BIN_PROB
        elif post == _POST[b"LOGISTIC"] and not (w >= 0).all():
            post = BIN_LOGIT
        else:
            raise Unsupported(f"TreeEnsembleClassifier {node.name}: binary with post_transform "
                              f"{at.get('post_transform')!r} and weights {'all >= 0' if (w >= 0).all() else 'of both signs'}")
        base = np.array([base[0] if base.size else 0.0, 0.0], np.float32)
    elif n < 2 or sorted(set(cls)) != list(range(n)):
        raise Unsupported(f"TreeEnsembleClassifier {node.name}: weights for classes {sorted(set(cls))} of {n}")
    else:
        base = base if base.size else np.zeros(n, np.float32)
        if base.size != n:
            raise Unsupported(f"TreeEnsembleClassifier {node.name}: {base.size} base values for {n} classes")
    tids, nids = at["nodes_treeids"], at["nodes_nodeids"]
    feats, vals, modes = at["nodes_featureids"], at["nodes_values"], at["nodes_modes"]
    tn, fn = at["nodes_truenodeids"], at["nodes_falsenodeids"]
    if not (len(tids) == len(nids) == len(feats) == len(vals) == len(modes) == len(tn) == len(fn)):
        raise Unsupported(f"TreeEnsembleClassifier {node.name}: node attributes differ in length")
    tr = B.trees
    base_idx = len(tr["feat"])
    index = {}
    for j, key in enumerate(zip(tids, nids)):
        if key in index:
            raise Unsupported(f"TreeEnsembleClassifier {node.name}: node {key} twice")
        index[key] = base_idx + j
    leaf_w = {}
    for t, nd, c, w in zip(at["class_treeids"], at["class_nodeids"], cls, at["class_weights"]):
        if (t, nd) not in index:
            raise Unsupported(f"TreeEnsembleClassifier {node.name}: weight for unknown node {(t, nd)}")
        leaf_w.setdefault(index[(t, nd)], []).append((c, float(w)))
    children = set()
    for j in range(len(tids)):
        mode = modes[j]
        if mode == b"LEAF":
            tr["feat"].append(-1)
            tr["thr"].append(0.0)
            tr["mode"].append(0)
            tr["tnext"].append(0)
            tr["fnext"].append(0)
        else:
            if mode not in _MODES:
                raise Unsupported(f"TreeEnsembleClassifier {node.name}: node mode {mode!r}")
            if not 0 <= feats[j] < k:
                raise Unsupported(f"TreeEnsembleClassifier {node.name}: feature {feats[j]} of {k}")
            try:
                t_idx, f_idx = index[(tids[j], tn[j])], index[(tids[j], fn[j])]
            except KeyError:
                raise Unsupported(f"TreeEnsembleClassifier {node.name}: a branch to a missing node") from None
            children.update((t_idx, f_idx))
            tr["feat"].append(int(feats[j]))
            tr["thr"].append(float(vals[j]))
            tr["mode"].append(_MODES[mode])
            tr["tnext"].append(t_idx)
            tr["fnext"].append(f_idx)
            B.split_points.setdefault(int(feats[j]), []).append(float(vals[j]))
        ws = leaf_w.get(base_idx + j, [])
        if ws and mode != b"LEAF":
            raise Unsupported(f"TreeEnsembleClassifier {node.name}: class weights on a branch node")
        tr["wstart"].append(len(tr["wcls"]))
        tr["wcount"].append(len(ws))
        for c, w in ws:
            tr["wcls"].append(c)
            tr["wval"].append(w)
    roots = {}
    for j, t in enumerate(tids):
        if base_idx + j not in children:
            if t in roots:
                raise Unsupported(f"TreeEnsembleClassifier {node.name}: tree {t} has two roots")
            roots[t] = base_idx + j
    root0 = len(tr["roots"])
    tr["roots"].extend(roots[t] for t in sorted(roots))
    return n, root0, len(roots), post, base


COMPLETE_MAX_DEPTH = 6      # deeper trees stay nodes and pointers (a complete layout would grow as 2^depth)


def _complete(B, root0: int, n_trees: int, n: int):
    """The trees [root0, root0 + n_trees) of the builder's node arrays laid out complete
    (``cs_trees_complete``): (nodes [trees, 2^D - 1, 2] as threshold and feature index (its
    int32 bits), leaves [trees, 2^D, n] as class weights, or [trees, 2^D] with each tree's
    class (int32 bits) when every leaf of a tree adds one weight to one class, else None;
    D, the comparison), or None when a tree is deeper than COMPLETE_MAX_DEPTH or the
    branches do not all compare the same way. Float32 arrays: they go into the arena."""
    tr = B.trees
    feat, thr, mode, tn, fn = tr["feat"], tr["thr"], tr["mode"], tr["tnext"], tr["fnext"]
    roots = tr["roots"][root0:root0 + n_trees]
    modes, depth = set(), 0
    todo = [(r, 0) for r in roots]
    while todo:
        i, d = todo.pop()
        if feat[i] < 0:
            depth = max(depth, d)
            continue
        if d >= COMPLETE_MAX_DEPTH:
            return None
        modes.add(mode[i])
        todo += [(tn[i], d + 1), (fn[i], d + 1)]
    if len(modes) > 1:
        return None
    inner = (1 << depth) - 1
    nodes = np.zeros((n_trees, max(inner, 0), 2), np.float32)
    feats = nodes.view(np.int32)
    leaves = np.zeros((n_trees, inner + 1, n), np.float32)
    tree_cls = np.full(n_trees, -1, np.int64)           # the one class a tree's leaves add to (-2: several)
    for t, r in enumerate(roots):
        todo = [(r, 0)]                              # (node, breadth-first position)
        while todo:
            i, pos = todo.pop()
            if pos >= inner:                         # depth D: the leaf's weights
                w0, nw = tr["wstart"][i], tr["wcount"][i]
                for j in range(w0, w0 + nw):
                    leaves[t, pos - inner, tr["wcls"][j]] += tr["wval"][j]
                c = tr["wcls"][w0] if nw == 1 else -2
                tree_cls[t] = c if tree_cls[t] in (-1, c) else -2
                continue
            if feat[i] >= 0:
                nodes[t, pos, 0] = thr[i]
                feats[t, pos, 1] = feat[i]
                todo += [(tn[i], 2 * pos + 1), (fn[i], 2 * pos + 2)]
            else:                                    # a leaf above depth D: under it, itself both ways
                todo += [(i, 2 * pos + 1), (i, 2 * pos + 2)]
    cls = None
    if (tree_cls >= 0).all():                            # one weight per leaf, one class per tree
        leaves = leaves[np.arange(n_trees), :, tree_cls].copy()
        cls = tree_cls.astype(np.int32).view(np.float32)
    return nodes, leaves, cls, depth, (modes.pop() if modes else 0)


def probe_rows(graph: NativeGraph, n_features: int, rows: int = PROBE_ROWS, seed: int = 0) -> np.ndarray:
    """Rows that take the trees down many paths: each feature at one of its split points,
    just below, exactly at or just above it (features no tree uses: standard normal)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((rows, n_features)).astype(np.float32)
    for f, pts in graph.split_points.items():
        if f >= n_features or not len(pts):
            continue
        v = pts[rng.integers(0, len(pts), rows)]
        step = np.maximum(np.abs(v) * 1e-4, 1e-6).astype(np.float32)
        X[:, f] = v + rng.integers(-1, 2, rows).astype(np.float32) * step
    return X


def check(graph: NativeGraph, sess, n_features: int, rows: int = PROBE_ROWS) -> dict:
    """Run ``probe_rows`` through the program and through the ONNX Runtime session ``sess``
    of the same graph, the recurrent state (inputs ``h*``/``c*`` fed from outputs
    ``*_out``) carried in both and the ``weights`` input drawn anew each row; returns
    {output: largest |difference| / max(1, |ONNX Runtime's value|)} (absolute for
    probabilities; relative for an LSTM cell state that grows past 1), NaN where either
    side is not finite. The program's inputs and outputs are zeroed afterwards."""
    X = probe_rows(graph, n_features, rows)
    rng = np.random.default_rng(1)
    inputs = [i.name for i in sess.get_inputs()]
    outputs = [o.name for o in sess.get_outputs()]
    if set(inputs) != {n for n in graph.slots if not n.endswith("_out") and n not in outputs} \
            or set(outputs) - set(graph.slots):
        raise Unsupported(f"inputs/outputs differ: session {inputs} -> {outputs}, program {sorted(graph.slots)}")
    recurrent = [n for n in inputs if n + "_out" in outputs]
    feeds = {n: np.zeros(graph.view(n).shape, np.float32) for n in inputs}
    worst = dict.fromkeys(outputs, 0.0)
    try:
        for v in graph.slots:
            graph.view(v)[:] = 0
        for i in range(rows):
            feeds["x"] = X[i:i + 1]
            if "weights" in feeds:
                w = rng.random(feeds["weights"].shape).astype(np.float32)
                feeds["weights"] = w / w.sum()
            for n in inputs:
                graph.view(n)[:] = feeds[n]
            got = sess.run(outputs, feeds)
            graph.program.run(False)
            for n, ref in zip(outputs, got):
                ref = ref.reshape(graph.view(n).shape)
                d = float((np.abs(graph.view(n) - ref) / np.maximum(1.0, np.abs(ref))).max())
                if not np.isfinite(d):
                    worst[n] = float("nan")
                elif np.isfinite(worst[n]):
                    worst[n] = max(worst[n], d)
            for n in recurrent:
                feeds[n] = got[outputs.index(n + "_out")]
    finally:
        for v in graph.slots:
            graph.view(v)[:] = 0
    return worst
