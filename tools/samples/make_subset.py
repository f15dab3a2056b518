#!/usr/bin/python3
"""Write a small labelled Fashion-MNIST subset in Debian's on-disk layout.

Writes the first N (default 1,000) images+labels of the TEST split and the first
N of the TRAIN split (for calibration) to onnx-samples/fashion-mnist/ using the
same gzipped IDX format and the same file names as Debian's dataset-fashion-mnist
package (/usr/share/datasets/fashion-mnist/):

    t10k-images-idx3-ubyte.gz   t10k-labels-idx1-ubyte.gz
    train-images-idx3-ubyte.gz  train-labels-idx1-ubyte.gz

so any loader that reads the Debian folder reads this one unchanged.  Output is
byte-for-byte reproducible (gzip mtime 0, no embedded file name).  Images are
kept in their original order (no shuffling).

Usage:
    /usr/bin/python3 tools/samples/make_subset.py [--count 1000] [--data-dir DIR] [--out-dir DIR]
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from idx_io import DEBIAN_FASHION_MNIST_DIR, FILES, load_split, read_idx, write_idx  # noqa: E402

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=DEBIAN_FASHION_MNIST_DIR)
    ap.add_argument("--out-dir", default=os.path.join(REPO_ROOT, "onnx-samples", "fashion-mnist"))
    ap.add_argument("--count", type=int, default=1000)
    args = ap.parse_args()

    os.makedirs(args.out_dir, exist_ok=True)
    for split in ("test", "train"):
        images, labels = load_split(args.data_dir, split)
        images, labels = images[:args.count], labels[:args.count]
        img_name, lbl_name = FILES[split]
        write_idx(os.path.join(args.out_dir, img_name), images)
        write_idx(os.path.join(args.out_dir, lbl_name), labels)

        # Read back and verify the round trip.
        back_img = read_idx(os.path.join(args.out_dir, img_name))
        back_lbl = read_idx(os.path.join(args.out_dir, lbl_name))
        assert np.array_equal(back_img, images) and np.array_equal(back_lbl, labels)
        counts = np.bincount(labels, minlength=10)
        print(f"{split}: {images.shape} images, labels per class {counts.tolist()} -> "
              f"{img_name} ({os.path.getsize(os.path.join(args.out_dir, img_name))} B), "
              f"{lbl_name} ({os.path.getsize(os.path.join(args.out_dir, lbl_name))} B)")


if __name__ == "__main__":
    main()
