"""Datasets shipped as folders of image files: Tiny ImageNet and PAD-UFES-20.

Images are decoded with Pillow into uint8 arrays held in memory (Tiny
ImageNet: 110,000 x 64x64x3 = 1.35 GB; PAD-UFES-20 at 224x224: 0.35 GB).
"""

import csv
import glob
import os

import numpy as np

from keras_gradattn.data import discovery
from keras_gradattn.data.errors import DatasetError

IMAGE_EXTENSIONS = (".jpeg", ".jpg", ".png")


def _decode(path, size=None):
    from PIL import Image  # Pillow comes with matplotlib and keras' extras

    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
            if size is not None and image.size != (size[1], size[0]):
                # PIL's bilinear resize (with antialiasing when shrinking), the
                # reference's transforms.Resize on PIL images.
                image = image.resize((size[1], size[0]), Image.BILINEAR)
            return np.asarray(image, dtype=np.uint8)
    except OSError as error:
        raise DatasetError(f"Cannot decode image {path}: {error}.") from None


def _decode_all(paths, spec, size=None):
    images = np.empty((len(paths),) + tuple(spec.stored_shape), np.uint8)
    for index, path in enumerate(paths):
        image = _decode(path, size)
        if image.shape != images.shape[1:]:
            raise DatasetError(
                f"{path} is {image.shape[1]}x{image.shape[0]} pixels with "
                f"{image.shape[2]} channels; expected {spec.stored_shape} for {spec.name}."
            )
        images[index] = image
    return images


# -- Tiny ImageNet ------------------------------------------------------------


def find_tiny_imagenet(spec, data_dir):
    for folder in discovery.folder_candidates(spec, data_dir):
        if os.path.isfile(os.path.join(folder, "wnids.txt")) and os.path.isdir(
            os.path.join(folder, "train")
        ):
            return folder
    return None


def load_tiny_imagenet(spec, folder):
    """`{"train": ..., "test": ...}`; the official labelled `val` is the test.

    Labels are indices into the sorted wnids (the order of a sorted
    `ImageFolder`), so they do not depend on the order of `wnids.txt`.
    """
    with open(os.path.join(folder, "wnids.txt")) as file:
        wnids = sorted({line.strip() for line in file if line.strip()})
    if len(wnids) != spec.num_classes:
        raise DatasetError(
            f"{folder}/wnids.txt lists {len(wnids)} classes; expected {spec.num_classes}."
        )
    label_of = {wnid: index for index, wnid in enumerate(wnids)}

    train_paths, train_labels = [], []
    for wnid in wnids:
        paths = sorted(
            path
            for path in glob.glob(os.path.join(folder, "train", wnid, "images", "*"))
            if path.lower().endswith(IMAGE_EXTENSIONS)
        )
        if not paths:
            raise DatasetError(
                f"No images in {folder}/train/{wnid}/images/; expected the "
                "official tiny-imagenet-200 layout."
            )
        train_paths += paths
        train_labels += [label_of[wnid]] * len(paths)

    annotations = os.path.join(folder, "val", "val_annotations.txt")
    if not os.path.isfile(annotations):
        raise DatasetError(f"Missing {annotations}; expected the official tiny-imagenet-200 layout.")
    val_paths, val_labels = [], []
    with open(annotations) as file:
        for line_number, line in enumerate(file, start=1):
            fields = line.strip().split("\t")
            if not fields[0]:
                continue
            if len(fields) < 2 or fields[1] not in label_of:
                raise DatasetError(
                    f"{annotations} line {line_number}: {line.strip()!r} does not "
                    "name an image and a wnid from wnids.txt."
                )
            val_paths.append(os.path.join(folder, "val", "images", fields[0]))
            val_labels.append(label_of[fields[1]])
    missing = [path for path in val_paths if not os.path.isfile(path)]
    if missing:
        raise DatasetError(
            f"{len(missing)} images named in {annotations} are missing, e.g. {missing[0]}."
        )
    return {
        "train": (_decode_all(train_paths, spec), np.array(train_labels, np.int32)),
        "test": (_decode_all(val_paths, spec), np.array(val_labels, np.int32)),
    }


# -- PAD-UFES-20 --------------------------------------------------------------


def find_pad_ufes(spec, data_dir):
    for folder in discovery.folder_candidates(spec, data_dir):
        if os.path.isfile(os.path.join(folder, "metadata.csv")):
            return folder
    return None


def _pad_ufes_image_index(folder):
    """`{file name: path}` over `images/`, `imgs_part_*/` and `images/imgs_part_*/`."""
    patterns = ("images", "imgs_part_*", os.path.join("images", "imgs_part_*"))
    index = {}
    for pattern in patterns:
        for directory in sorted(glob.glob(os.path.join(folder, pattern))):
            if not os.path.isdir(directory):
                continue
            for name in os.listdir(directory):
                if name.lower().endswith(IMAGE_EXTENSIONS):
                    index.setdefault(name, os.path.join(directory, name))
    return index


def load_pad_ufes(spec, folder):
    """`{"all": (images resized to 224x224, labels)}` in metadata.csv order."""
    metadata = os.path.join(folder, "metadata.csv")
    with open(metadata, newline="") as file:
        reader = csv.DictReader(file)
        columns = reader.fieldnames or []
        if "img_id" not in columns or "diagnostic" not in columns:
            raise DatasetError(
                f"{metadata} has columns {columns}; expected at least 'img_id' and 'diagnostic'."
            )
        rows = [(row["img_id"], row["diagnostic"]) for row in reader]
    if not rows:
        raise DatasetError(f"{metadata} lists no images.")
    label_of = {name: index for index, name in enumerate(spec.class_names)}
    unknown = sorted({diagnostic for _, diagnostic in rows} - set(label_of))
    if unknown:
        raise DatasetError(
            f"{metadata}: diagnostic labels out of range {unknown}; expected "
            f"one of {list(spec.class_names)}."
        )
    index = _pad_ufes_image_index(folder)
    missing = [name for name, _ in rows if name not in index]
    if missing:
        raise DatasetError(
            f"{len(missing)} of {len(rows)} images in {metadata} are not under "
            f"{folder}/images/ or imgs_part_*/, e.g. {missing[0]}."
        )
    paths = [index[name] for name, _ in rows]
    labels = np.array([label_of[diagnostic] for _, diagnostic in rows], np.int32)
    images = _decode_all(paths, spec, size=spec.stored_shape[:2])
    return {"all": (images, labels)}
