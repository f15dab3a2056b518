#!/usr/bin/python3
"""Score the sample ONNX models on the 1,000-image subsets in onnx-samples/fashion-mnist/.

Runs the exported .onnx files with the NumPy interpreter (onnx_numpy_eval.py),
so the numbers are those of the ONNX graphs themselves.  Handy as expected
values for tests that evaluate the models on the small subset.

Usage:
    /usr/bin/python3 tools/samples/eval_subset.py [--data-dir DIR] [--models-dir DIR]
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from idx_io import load_split  # noqa: E402
from onnx_numpy_eval import NumpyOnnxModel  # noqa: E402

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
MODELS = [("fashion_mnist_mlp.onnx", (-1, 784)), ("fashion_mnist_cnn.onnx", (-1, 1, 28, 28))]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models-dir", default=os.path.join(REPO_ROOT, "onnx-samples"))
    ap.add_argument("--data-dir", default=os.path.join(REPO_ROOT, "onnx-samples", "fashion-mnist"))
    args = ap.parse_args()

    for split in ("test", "train"):
        images, labels = load_split(args.data_dir, split)
        x = images.astype(np.float32) / 255.0  # same preprocessing as training
        for name, shape in MODELS:
            logits = NumpyOnnxModel(os.path.join(args.models_dir, name)).run(x.reshape(shape))
            correct = int((logits.argmax(1) == labels).sum())
            print(f"{split:5s} subset ({len(labels)} images)  {name}: {correct}/{len(labels)} "
                  f"= {100.0 * correct / len(labels):.1f}%")


if __name__ == "__main__":
    main()
