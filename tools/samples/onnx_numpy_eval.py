"""Tiny NumPy interpreter for the handful of ONNX ops the sample models use.

Debian ships no Python onnxruntime and onnx 1.12 has no `onnx.reference`, so this
module runs an exported graph independently of PyTorch to verify the .onnx file
numerically.  Supported ops: Gemm, MatMul, Add, Relu, Conv (group=1), MaxPool,
Flatten, Reshape, Identity, Constant.  Anything else raises NotImplementedError.
"""
import numpy as np
import onnx
from onnx import numpy_helper
from numpy.lib.stride_tricks import sliding_window_view


def _attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _pad_nchw(x, pads, value):
    # ONNX pads = [top, left, bottom, right] for 2-D spatial input.
    if not any(pads):
        return x
    t, l, b, r = pads
    return np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)), constant_values=value)


def _conv(x, w, b, a):
    if a.get("group", 1) != 1 or any(d != 1 for d in a.get("dilations", [1, 1])):
        raise NotImplementedError("Conv with group/dilation != 1")
    kh, kw = w.shape[2:]
    sh, sw = a.get("strides", [1, 1])
    xp = _pad_nchw(x, a.get("pads", [0, 0, 0, 0]), 0.0)
    win = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]  # N,C,Ho,Wo,kh,kw
    y = np.tensordot(win, w, axes=([1, 4, 5], [1, 2, 3]))  # N,Ho,Wo,O
    y = y.transpose(0, 3, 1, 2)
    if b is not None:
        y = y + b.reshape(1, -1, 1, 1)
    return y.astype(np.float32)


def _maxpool(x, a):
    kh, kw = a["kernel_shape"]
    sh, sw = a.get("strides", [1, 1])
    if a.get("ceil_mode", 0) or any(d != 1 for d in a.get("dilations", [1, 1])):
        raise NotImplementedError("MaxPool with ceil_mode/dilations")
    xp = _pad_nchw(x, a.get("pads", [0, 0, 0, 0]), -np.inf)
    win = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw]
    return win.max(axis=(4, 5))


def _gemm(A, B, C, a):
    if a.get("transA", 0):
        A = A.T
    if a.get("transB", 0):
        B = B.T
    y = a.get("alpha", 1.0) * (A @ B)
    if C is not None:
        y = y + a.get("beta", 1.0) * C
    return y.astype(np.float32)


class NumpyOnnxModel:
    def __init__(self, path):
        self.model = onnx.load(path)
        g = self.model.graph
        self.weights = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        init_names = set(self.weights)
        self.input_names = [i.name for i in g.input if i.name not in init_names]
        self.output_names = [o.name for o in g.output]

    def run(self, x):
        g = self.model.graph
        env = dict(self.weights)
        env[self.input_names[0]] = x.astype(np.float32)
        for node in g.node:
            ins = [env[n] if n else None for n in node.input]
            a = _attrs(node)
            op = node.op_type
            if op == "Gemm":
                out = _gemm(ins[0], ins[1], ins[2] if len(ins) > 2 else None, a)
            elif op == "MatMul":
                out = ins[0] @ ins[1]
            elif op == "Add":
                out = ins[0] + ins[1]
            elif op == "Relu":
                out = np.maximum(ins[0], 0)
            elif op == "Conv":
                out = _conv(ins[0], ins[1], ins[2] if len(ins) > 2 else None, a)
            elif op == "MaxPool":
                out = _maxpool(ins[0], a)
            elif op == "Flatten":
                axis = a.get("axis", 1)
                s = ins[0].shape
                out = ins[0].reshape(int(np.prod(s[:axis])), -1)
            elif op == "Reshape":
                shape = [ins[0].shape[i] if d == 0 else d for i, d in enumerate(ins[1].tolist())]
                out = ins[0].reshape(shape)
            elif op == "Identity":
                out = ins[0]
            elif op == "Constant":
                out = numpy_helper.to_array(a["value"])
            else:
                raise NotImplementedError(f"ONNX op {op} not supported by the NumPy evaluator")
            env[node.output[0]] = out
        return env[self.output_names[0]]

    def op_types(self):
        return [n.op_type for n in self.model.graph.node]
