#!/usr/bin/python3
"""Train the two Fashion-MNIST sample models and export them to ONNX.

Outputs (relative to the repository root):
    onnx-samples/fashion_mnist_mlp.onnx   input "input"  [batch, 784]        -> "logits" [batch, 10]
    onnx-samples/fashion_mnist_cnn.onnx   input "input"  [batch, 1, 28, 28]  -> "logits" [batch, 10]

Preprocessing for both models: float32 pixel / 255 (range [0, 1]); no mean/std
normalisation.  The exported graphs contain no BatchNorm and no Dropout.

Each exported file is validated with onnx.checker and then evaluated on the full
10,000-image test set twice: with the PyTorch model and by running the exported
ONNX graph through a small NumPy interpreter (onnx_numpy_eval.py; Debian has no
Python onnxruntime and onnx 1.12 has no onnx.reference).  The measured numbers
are printed and written into the generated block of onnx-samples/README.md.

Usage (Debian's python, not a pyenv/venv one):
    /usr/bin/python3 tools/samples/train_fashion_mnist.py [--data-dir DIR] [--out-dir DIR]
"""
import argparse
import os
import re
import sys
import time

# Debian's torch calls the system BLAS (libblas.so.3).  If OpenBLAS provides it
# (apt-get install libopenblas0-pthread), keep its own thread pool at 1 so it does
# not oversubscribe the 2 cores with torch's OpenMP threads.  Must be set before
# numpy/torch are imported; an explicit value in the environment wins.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import onnx  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from idx_io import DEBIAN_FASHION_MNIST_DIR, load_split  # noqa: E402
from onnx_numpy_eval import NumpyOnnxModel  # noqa: E402

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
OPSET = 13
BATCH_SIZE = 128


# --------------------------------------------------------------------------- models
class FashionMlp(nn.Module):
    """784 -> 256 -> 128 -> 10, ReLU activations; input is the flattened image."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(784, 256), nn.ReLU(),
            nn.Linear(256, 128), nn.ReLU(),
            nn.Linear(128, 10),
        )

    def forward(self, x):
        return self.net(x)


class FashionCnn(nn.Module):
    """Two conv blocks followed by a deliberately large FC layer (3136 -> 256).

    Dropout is used only in training; in eval mode it is the identity and
    torch.onnx.export (which exports in eval mode) drops it from the graph.
    """

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(64 * 7 * 7, 256), nn.ReLU(),
            nn.Dropout(0.3),
            nn.Linear(256, 10),
        )

    def forward(self, x):
        return self.classifier(self.features(x))


# --------------------------------------------------------------------------- helpers
def seed_everything(seed):
    torch.manual_seed(seed)
    np.random.seed(seed)
    torch.use_deterministic_algorithms(True)


def load_tensors(data_dir):
    """Load both splits as float32 tensors in [0, 1] ([N,1,28,28]) and int64 labels."""
    out = {}
    for split in ("train", "test"):
        images, labels = load_split(data_dir, split)
        x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
        y = torch.from_numpy(labels.astype(np.int64))
        out[split] = (x, y)
    return out


def train(model, x, y, epochs, lr, seed, flatten):
    """Adam + cross-entropy, batch 128, cosine LR decay over all steps, seeded shuffling."""
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps_per_epoch = (x.shape[0] + BATCH_SIZE - 1) // BATCH_SIZE
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(epochs):
        model.train()
        t0 = time.time()
        perm = torch.randperm(x.shape[0], generator=gen)
        total, correct, loss_sum = 0, 0, 0.0
        for i in range(0, x.shape[0], BATCH_SIZE):
            idx = perm[i:i + BATCH_SIZE]
            xb, yb = x[idx], y[idx]
            if flatten:
                xb = xb.reshape(xb.shape[0], -1)
            logits = model(xb)
            loss = loss_fn(logits, yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.item() * yb.shape[0]
            correct += (logits.argmax(1) == yb).sum().item()
            total += yb.shape[0]
        print(f"  epoch {epoch + 1}/{epochs}: loss {loss_sum / total:.4f}, "
              f"train acc {correct / total:.4f}, {time.time() - t0:.1f}s", flush=True)


@torch.no_grad()
def torch_logits(model, x, flatten):
    model.eval()
    chunks = []
    for i in range(0, x.shape[0], 1000):
        xb = x[i:i + 1000]
        if flatten:
            xb = xb.reshape(xb.shape[0], -1)
        chunks.append(model(xb))
    return torch.cat(chunks).numpy()


def onnx_logits(path, x, flatten):
    runner = NumpyOnnxModel(path)
    xs = x.numpy()
    if flatten:
        xs = xs.reshape(xs.shape[0], -1)
    return np.concatenate([runner.run(xs[i:i + 500]) for i in range(0, xs.shape[0], 500)])


def export(model, path, example, description):
    """Export with opset 13, dynamic batch axis, then add metadata and validate."""
    model.eval()
    torch.onnx.export(
        model, example, path,
        export_params=True,
        opset_version=OPSET,
        do_constant_folding=True,
        input_names=["input"],
        output_names=["logits"],
        dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
    )
    m = onnx.load(path)
    m.doc_string = description
    for k, v in {
        "dataset": "Fashion-MNIST (Zalando Research, MIT licence)",
        "preprocessing": "float32 pixel/255 in [0,1], no mean/std normalisation",
        "labels": ",".join(CLASS_NAMES),
        "source": "tools/samples/train_fashion_mnist.py",
    }.items():
        p = m.metadata_props.add()
        p.key, p.value = k, v
    onnx.checker.check_model(m)
    onnx.save(m, path)
    return m


def describe_io(m):
    def shape(vi):
        return "[" + ", ".join(d.dim_param or str(d.dim_value) for d in vi.type.tensor_type.shape.dim) + "]"
    ins = ", ".join(f'"{i.name}" {shape(i)}' for i in m.graph.input)
    outs = ", ".join(f'"{o.name}" {shape(o)}' for o in m.graph.output)
    return ins, outs


def update_readme(out_dir, rows, settings):
    """Replace the block between the GENERATED markers in onnx-samples/README.md."""
    begin, end = "<!-- BEGIN GENERATED: train_fashion_mnist.py -->", "<!-- END GENERATED: train_fashion_mnist.py -->"
    lines = [begin, "",
             "| File | Input | Output | Opset / IR | Size (bytes) | Test acc. (ONNX, NumPy eval) | Test acc. (PyTorch) | max abs logit diff |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| `{r['file']}` | {r['input']} | {r['output']} | {r['opset']} / {r['ir']} | {r['size']} | "
                     f"{r['acc_onnx'] * 100:.2f}% | {r['acc_torch'] * 100:.2f}% | {r['maxdiff']:.2e} |")
    lines += ["", "Accuracies are on the full 10,000-image Fashion-MNIST test set.", "",
              "Training settings: " + settings, "", end]
    block = "\n".join(lines)
    path = os.path.join(out_dir, "README.md")
    text = open(path).read() if os.path.exists(path) else "# ONNX samples\n\n" + begin + "\n" + end + "\n"
    if begin in text and end in text:
        text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    with open(path, "w") as f:
        f.write(text)


# --------------------------------------------------------------------------- main
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=DEBIAN_FASHION_MNIST_DIR)
    ap.add_argument("--out-dir", default=os.path.join(REPO_ROOT, "onnx-samples"))
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--mlp-epochs", type=int, default=12)
    ap.add_argument("--cnn-epochs", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    os.makedirs(args.out_dir, exist_ok=True)
    data = load_tensors(args.data_dir)
    x_train, y_train = data["train"]
    x_test, y_test = data["test"]
    print(f"torch {torch.__version__}, onnx {onnx.__version__}, numpy {np.__version__}; "
          f"train {tuple(x_train.shape)}, test {tuple(x_test.shape)}")

    specs = [
        # name, model class, flatten input?, epochs, lr, example input, description
        ("fashion_mnist_mlp.onnx", FashionMlp, True, args.mlp_epochs, 1e-3, torch.zeros(1, 784),
         "Fashion-MNIST MLP 784-256-128-10 (ReLU). input [batch,784] float32 pixel/255; output logits [batch,10]."),
        ("fashion_mnist_cnn.onnx", FashionCnn, False, args.cnn_epochs, 1e-3, torch.zeros(1, 1, 28, 28),
         "Fashion-MNIST CNN conv32-pool-conv64-pool-fc256-fc10. input [batch,1,28,28] float32 pixel/255; "
         "output logits [batch,10]."),
    ]
    rows = []
    for file_name, cls, flatten, epochs, lr, example, desc in specs:
        seed_everything(args.seed)  # same seed per model, independent of training order
        model = cls()
        print(f"Training {file_name} ({sum(p.numel() for p in model.parameters())} params, "
              f"{epochs} epochs, lr {lr}, batch {BATCH_SIZE})", flush=True)
        t0 = time.time()
        train(model, x_train, y_train, epochs, lr, args.seed, flatten)
        train_s = time.time() - t0

        path = os.path.join(args.out_dir, file_name)
        m = export(model, path, example, desc)
        ref = torch_logits(model, x_test, flatten)
        got = onnx_logits(path, x_test, flatten)
        labels = y_test.numpy()
        acc_torch = float((ref.argmax(1) == labels).mean())
        acc_onnx = float((got.argmax(1) == labels).mean())
        maxdiff = float(np.abs(ref - got).max())
        ins, outs = describe_io(m)
        print(f"  {file_name}: trained in {train_s:.0f}s; ops {[n.op_type for n in m.graph.node]}\n"
              f"  input {ins}, output {outs}, opset {m.opset_import[0].version}, IR {m.ir_version}\n"
              f"  test accuracy: ONNX (NumPy eval) {acc_onnx:.4f}, PyTorch {acc_torch:.4f}, "
              f"max |logit diff| {maxdiff:.2e}", flush=True)
        if maxdiff > 1e-3:
            raise SystemExit(f"{file_name}: ONNX graph disagrees with the PyTorch model (max diff {maxdiff})")
        rows.append(dict(file=file_name, input=ins, output=outs, opset=m.opset_import[0].version,
                         ir=m.ir_version, size=os.path.getsize(path), acc_onnx=acc_onnx,
                         acc_torch=acc_torch, maxdiff=maxdiff))

    settings = (f"seed {args.seed}, torch.set_num_threads({args.threads}), Adam (lr 1e-3, cosine decay to 0), "
                f"batch {BATCH_SIZE}, cross-entropy, full 60,000-image train split; MLP {args.mlp_epochs} epochs, "
                f"CNN {args.cnn_epochs} epochs (Dropout 0.3 before the last Linear in training only); "
                f"torch {torch.__version__}, onnx {onnx.__version__}.")
    update_readme(args.out_dir, rows, settings)
    print("Wrote", ", ".join(r["file"] for r in rows), "and updated README.md")


if __name__ == "__main__":
    main()
