"""Minimal reader/writer for the (gzipped) IDX files used by (Fashion-)MNIST.

IDX layout (big-endian):
    bytes 0-1  : 0x00 0x00
    byte  2    : element type code (0x08 = unsigned byte)
    byte  3    : number of dimensions N
    N x int32  : size of each dimension
    payload    : row-major element data
Only the unsigned-byte type is needed for Fashion-MNIST.
"""
import gzip
import struct

import numpy as np

_UBYTE = 0x08

# Default location of Debian's `dataset-fashion-mnist` package.
DEBIAN_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

# File names exactly as shipped by Debian (and by Zalando upstream).
FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}


def read_idx(path):
    """Read a gzipped (or plain) IDX file of unsigned bytes into a numpy array."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype_code != _UBYTE:
        raise ValueError(f"{path}: unsupported IDX header (zero={zero}, type=0x{dtype_code:02x})")
    shape = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    payload = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if payload.size != int(np.prod(shape)):
        raise ValueError(f"{path}: payload size {payload.size} does not match shape {shape}")
    return payload.reshape(shape)


def write_idx(path, array):
    """Write a uint8 numpy array as a gzipped IDX file (deterministic: mtime=0, no file name)."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = struct.pack(">HBB", 0, _UBYTE, array.ndim) + struct.pack(">" + "I" * array.ndim, *array.shape)
    with open(path, "wb") as raw:
        # filename="" and mtime=0 keep the .gz bytes reproducible run to run.
        with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=9, mtime=0) as f:
            f.write(header)
            f.write(array.tobytes())


def load_split(directory, split):
    """Return (images uint8 [N,28,28], labels uint8 [N]) for split 'train' or 'test'."""
    import os
    img_name, lbl_name = FILES[split]
    images = read_idx(os.path.join(directory, img_name))
    labels = read_idx(os.path.join(directory, lbl_name))
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{split}: {images.shape[0]} images but {labels.shape[0]} labels")
    return images, labels
