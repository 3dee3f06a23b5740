#!/usr/bin/env python3
"""Draws the example data set's product images (examples/data/images/*.png, 224x224) with
Pillow: simple product shapes in colours, so the image model embeds real pixels. Run once;
the images are shipped. Deterministic: the same files on every run.

    python3 examples/python/make_images.py examples/data/images
"""

import sys
from pathlib import Path

from PIL import Image, ImageDraw

SIDE = 224
COLOURS = {"red": (200, 30, 40), "navy": (20, 30, 110), "green": (30, 140, 60),
           "yellow": (230, 200, 40), "black": (20, 20, 20), "white": (245, 245, 240)}


def canvas(bg=(235, 235, 235)):
    img = Image.new("RGB", (SIDE, SIDE), bg)
    return img, ImageDraw.Draw(img)


def mug(c):
    img, d = canvas()
    d.rectangle([60, 60, 150, 180], fill=c)
    d.ellipse([135, 85, 190, 150], outline=c, width=12)
    return img


def backpack(c):
    img, d = canvas()
    d.rounded_rectangle([55, 50, 170, 195], radius=30, fill=c)
    d.rounded_rectangle([75, 120, 150, 180], radius=10, outline=(0, 0, 0), width=3)
    d.arc([80, 20, 145, 80], 180, 360, fill=c, width=10)
    return img


def shoe(c):
    img, d = canvas()
    d.polygon([(30, 150), (60, 90), (120, 100), (190, 140), (195, 165), (30, 165)], fill=c)
    d.rectangle([30, 165, 195, 178], fill=(250, 250, 250))
    return img


def lamp(c):
    img, d = canvas()
    d.polygon([(70, 40), (155, 40), (180, 110), (45, 110)], fill=c)
    d.rectangle([105, 110, 120, 180], fill=(90, 90, 90))
    d.ellipse([70, 175, 155, 195], fill=(60, 60, 60))
    return img


def stripes(c):
    img, d = canvas((250, 250, 250))
    for x in range(0, SIDE, 28):
        d.rectangle([x, 0, x + 13, SIDE], fill=c)
    return img


SHAPES = {"mug": mug, "backpack": backpack, "shoe": shoe, "lamp": lamp, "towel": stripes}
ITEMS = [("mug", "red"), ("mug", "navy"), ("backpack", "green"), ("backpack", "red"),
         ("shoe", "black"), ("shoe", "white"), ("lamp", "yellow"), ("towel", "navy")]


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "examples/data/images")
    out.mkdir(parents=True, exist_ok=True)
    for shape, colour in ITEMS:
        SHAPES[shape](COLOURS[colour]).save(out / f"{colour}-{shape}.png", optimize=True)


if __name__ == "__main__":
    main()
