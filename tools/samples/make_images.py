#!/usr/bin/python3
"""Copy six colour photos from Debian's python3-skimage into onnx-samples/images/.

Each image is converted to RGB, resized (Lanczos) so its SHORTER side is 256 px
(aspect ratio kept), and saved as JPEG quality 90 or PNG, whichever file is
smaller.  The output feeds the ImageNet ResNet18 featurizer tests, so keep the
originals' content: no cropping, no colour changes.  Provenance/licences of the
chosen images (from the skimage.data docstrings) are listed in
onnx-samples/README.md.

Usage:
    /usr/bin/python3 tools/samples/make_images.py [--src DIR] [--out-dir DIR] [--short-side 256]
"""
import argparse
import io
import os

import skimage
from PIL import Image

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

# file in skimage/data -> licence note (quoted/summarised from skimage.data docstrings)
IMAGES = [
    "chelsea.png",            # CC0, photographer Stefan van der Walt
    "coffee.png",             # CC0, photographer Rachel Michetti
    "astronaut.png",          # NASA, public domain
    "rocket.jpg",             # SpaceX, released into the public domain
    "hubble_deep_field.jpg",  # NASA/HubbleSite, public domain
    "retina.jpg",             # Wikimedia Commons, CC0 1.0
]


def encode_smallest(img):
    """Return (extension, bytes) of the smaller of JPEG q90 and PNG encodings."""
    jpg, png = io.BytesIO(), io.BytesIO()
    img.save(jpg, format="JPEG", quality=90, optimize=True)
    img.save(png, format="PNG", optimize=True)
    return min((".jpg", jpg.getvalue()), (".png", png.getvalue()), key=lambda t: len(t[1]))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--src", default=os.path.join(os.path.dirname(skimage.__file__), "data"))
    ap.add_argument("--out-dir", default=os.path.join(REPO_ROOT, "onnx-samples", "images"))
    ap.add_argument("--short-side", type=int, default=256)
    args = ap.parse_args()

    os.makedirs(args.out_dir, exist_ok=True)
    for name in IMAGES:
        img = Image.open(os.path.join(args.src, name)).convert("RGB")
        w, h = img.size
        scale = args.short_side / min(w, h)
        size = (round(w * scale), round(h * scale))
        # make sure the short side is exactly the requested length after rounding
        size = (args.short_side, size[1]) if w <= h else (size[0], args.short_side)
        small = img.resize(size, Image.LANCZOS)
        ext, data = encode_smallest(small)
        out = os.path.join(args.out_dir, os.path.splitext(name)[0] + ext)
        with open(out, "wb") as f:
            f.write(data)
        print(f"{name} {w}x{h} -> {os.path.basename(out)} {size[0]}x{size[1]} ({len(data)} B)")


if __name__ == "__main__":
    main()
