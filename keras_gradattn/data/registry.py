"""Dataset specifications: one `DatasetSpec` per dataset the project knows.

A spec is pure data (no loading code), so importing the registry costs nothing
and never imports TensorFlow. Figures come from the paper
(docs/paper.md#datasets-and-splits) unless a comment says otherwise.
"""

import dataclasses

from keras_gradattn.data.errors import DatasetError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Split policies (what `split="paper"` means for a dataset).
POOLED_RESPLIT = "pooled_resplit"  # every official split pooled, re-split 70/15/15
OFFICIAL = "official"  # the official train/validation/test as shipped

# Source formats, one module each under keras_gradattn/data/.
TFDS = "tfds"
IDX = "idx"
MEDMNIST_NPZ = "medmnist_npz"
TINY_IMAGENET_FOLDER = "tiny_imagenet_folder"
PAD_UFES_FOLDER = "pad_ufes_folder"
SKLEARN = "sklearn"
SYNTHETIC = "synthetic"

# Augmentation recipes, built by `augmentation.build_augmentation`.
NO_AUGMENTATION = "none"
FLIP_PAD_CROP = "flip_pad_crop"
FLIP_ROTATE_TRANSLATE = "flip_rotate_translate"
ROTATE_TRANSLATE = "rotate_translate"
MEDMNIST_JITTER = "medmnist_jitter"
DERMOSCOPY_JITTER_CROP = "dermoscopy_jitter_crop"
AUGMENTATION_RECIPES = (
    NO_AUGMENTATION,
    FLIP_PAD_CROP,
    FLIP_ROTATE_TRANSLATE,
    ROTATE_TRANSLATE,
    MEDMNIST_JITTER,
    DERMOSCOPY_JITTER_CROP,
)

FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
CIFAR10_CLASSES = (
    "airplane", "automobile", "bird", "cat", "deer",
    "dog", "frog", "horse", "ship", "truck",
)  # fmt: skip
DIGIT_CLASSES = tuple(str(digit) for digit in range(10))
# MedMNIST v2 label names (medmnist INFO["..."]["label"], in label order).
BLOODMNIST_CLASSES = (
    "basophil", "eosinophil", "erythroblast", "immature granulocytes",
    "lymphocyte", "monocyte", "neutrophil", "platelet",
)  # fmt: skip
TISSUEMNIST_CLASSES = (
    "Collecting Duct, Connecting Tubule", "Distal Convoluted Tubule",
    "Glomerular endothelial cells", "Interstitial endothelial cells",
    "Leukocytes", "Podocytes", "Proximal Tubule Segments",
    "Thick Ascending Limb",
)  # fmt: skip
# PAD-UFES-20 `diagnostic` codes; the label is the index in this sorted order,
# as in the reference (sorted unique values of the column).
PAD_UFES_CLASSES = ("ACK", "BCC", "MEL", "NEV", "SCC", "SEK")


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """Everything the pipeline and the model need to know about a dataset.

    Attributes:
        name: registry name, e.g. `"cifar10"`.
        num_classes: number of classes; labels are `0 .. num_classes - 1`.
        input_shape: `(height, width, channels)` of the images the MODEL sees,
            after resizing and channel conversion.
        stored_shape: `(height, width, channels)` of the images as loaded
            (uint8); the pipeline resizes and converts them to `input_shape`.
            `None` dimensions are not checked.
        mean, std: per-channel normalisation statistics on the [0, 1] scale,
            one value per channel of `input_shape`.
        augmentation: the training augmentation recipe (see `augmentation.py`).
        paper_split: `POOLED_RESPLIT` or `OFFICIAL`.
        official_splits: the splits the source ships, in pooling order.
        source_formats: formats this dataset can be read from, in the order
            discovery tries them.
        expected_files: one line naming the files or folder a loader needs.
        where_to_get: one line saying where to obtain them.
        class_names: names in label order, or `None` when not known.
        tfds_name: the tensorflow-datasets name, for TFDS sources.
        folder_names: folder names searched for under a data root.
        notes: free text shown in docs.
    """

    name: str
    num_classes: int
    input_shape: tuple
    stored_shape: tuple
    mean: tuple
    std: tuple
    augmentation: str
    paper_split: str
    official_splits: tuple
    source_formats: tuple
    expected_files: str
    where_to_get: str
    class_names: tuple = None
    tfds_name: str = None
    folder_names: tuple = ()
    notes: str = ""

    def __post_init__(self):
        channels = self.input_shape[-1]
        if len(self.mean) != channels or len(self.std) != channels:
            raise ValueError(
                f"DatasetSpec {self.name!r}: mean {self.mean} and std "
                f"{self.std} need one value per channel ({channels})."
            )
        if any(value <= 0 for value in self.std):
            raise ValueError(
                f"DatasetSpec {self.name!r}: std must be positive, got {self.std}."
            )
        if self.augmentation not in AUGMENTATION_RECIPES:
            raise ValueError(
                f"DatasetSpec {self.name!r}: unknown augmentation "
                f"{self.augmentation!r}; expected one of {AUGMENTATION_RECIPES}."
            )
        if self.class_names is not None and len(self.class_names) != self.num_classes:
            raise ValueError(
                f"DatasetSpec {self.name!r}: {len(self.class_names)} class names "
                f"for {self.num_classes} classes."
            )

    @property
    def image_size(self):
        return self.input_shape[:2]

    @property
    def channels(self):
        return self.input_shape[-1]

    @property
    def has_official_test(self):
        return "test" in self.official_splits


_TFDS_HINT = (
    "run `tfds build {tfds} --data_dir DIR` (or tfds.load('{tfds}', "
    "data_dir=DIR)) on a machine with internet, then copy DIR/{tfds} here"
)


def _tfds_spec(name, tfds_name, **kwargs):
    return DatasetSpec(
        name=name,
        tfds_name=tfds_name,
        expected_files=(
            f"a prepared tensorflow-datasets folder <data_dir>/{tfds_name}/<version>/"
        ),
        where_to_get=_TFDS_HINT.format(tfds=tfds_name),
        **kwargs,
    )


_SPECS = (
    _tfds_spec(
        "cifar10",
        "cifar10",
        num_classes=10,
        input_shape=(32, 32, 3),
        stored_shape=(32, 32, 3),
        mean=(0.4914, 0.4822, 0.4465),
        std=(0.2023, 0.1994, 0.2010),
        augmentation=FLIP_PAD_CROP,
        paper_split=POOLED_RESPLIT,
        official_splits=("train", "test"),
        source_formats=(TFDS,),
        class_names=CIFAR10_CLASSES,
    ),
    _tfds_spec(
        "cifar100",
        "cifar100",
        num_classes=100,
        input_shape=(32, 32, 3),
        stored_shape=(32, 32, 3),
        # Not in the paper. The widely used CIFAR-100 training-set statistics
        # (per-channel mean and std of the 50,000 training images).
        mean=(0.5071, 0.4865, 0.4409),
        std=(0.2673, 0.2564, 0.2762),
        augmentation=FLIP_PAD_CROP,
        paper_split=POOLED_RESPLIT,
        official_splits=("train", "test"),
        source_formats=(TFDS,),
        notes="Not in the paper; treated like CIFAR-10 (fine labels, 100 classes).",
    ),
    _tfds_spec(
        "svhn",
        "svhn_cropped",
        num_classes=10,
        input_shape=(32, 32, 3),
        stored_shape=(32, 32, 3),
        mean=(0.4377, 0.4438, 0.4728),
        std=(0.1980, 0.2010, 0.1970),
        augmentation=NO_AUGMENTATION,
        paper_split=POOLED_RESPLIT,
        official_splits=("train", "test", "extra"),
        source_formats=(TFDS,),
        class_names=DIGIT_CLASSES,
        notes="train+test+extra pooled (630,420 images), as the paper.",
    ),
    _tfds_spec(
        "fashion_mnist",
        "fashion_mnist",
        num_classes=10,
        input_shape=(28, 28, 1),
        stored_shape=(28, 28, 1),
        mean=(0.2860,),
        std=(0.3530,),
        augmentation=FLIP_ROTATE_TRANSLATE,
        paper_split=POOLED_RESPLIT,
        official_splits=("train", "test"),
        source_formats=(IDX, TFDS),
        class_names=FASHION_MNIST_CLASSES,
        folder_names=("fashion_mnist", "fashion-mnist", "FashionMNIST"),
    ),
    _tfds_spec(
        "mnist",
        "mnist",
        num_classes=10,
        input_shape=(28, 28, 1),
        stored_shape=(28, 28, 1),
        # Not in the paper: the standard MNIST training-set statistics.
        mean=(0.1307,),
        std=(0.3081,),
        # FashionMNIST's recipe without the flip: a mirrored digit is another
        # symbol (or none).
        augmentation=ROTATE_TRANSLATE,
        paper_split=POOLED_RESPLIT,
        official_splits=("train", "test"),
        source_formats=(IDX, TFDS),
        class_names=DIGIT_CLASSES,
        folder_names=("mnist", "MNIST"),
        notes="Not in the paper; split and stem as FashionMNIST.",
    ),
    _tfds_spec(
        "pcam",
        "patch_camelyon",
        num_classes=2,
        input_shape=(96, 96, 3),
        stored_shape=(96, 96, 3),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        augmentation=NO_AUGMENTATION,
        paper_split=OFFICIAL,
        official_splits=("train", "validation", "test"),
        source_formats=(TFDS,),
        class_names=("normal", "metastatic"),
        notes="Streamed from the tfds files (too large for memory: 7 GB of train images).",
    ),
    DatasetSpec(
        name="tissuemnist",
        num_classes=8,
        input_shape=(64, 64, 3),
        stored_shape=(28, 28, 1),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        augmentation=MEDMNIST_JITTER,
        paper_split=OFFICIAL,
        official_splits=("train", "validation", "test"),
        source_formats=(MEDMNIST_NPZ,),
        expected_files="tissuemnist.npz (MedMNIST v2, 28x28) with train/val/test _images and _labels",
        where_to_get="`pip install medmnist` and download with it, or fetch tissuemnist.npz from the MedMNIST Zenodo record (doi 10.5281/zenodo.10519652)",
        class_names=TISSUEMNIST_CLASSES,
        folder_names=("medmnist", ".medmnist"),
        notes="28x28 gray, upsized to 64x64 and repeated to 3 channels, as the reference.",
    ),
    DatasetSpec(
        name="bloodmnist",
        num_classes=8,
        input_shape=(64, 64, 3),
        stored_shape=(28, 28, 3),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        augmentation=MEDMNIST_JITTER,
        paper_split=OFFICIAL,
        official_splits=("train", "validation", "test"),
        source_formats=(MEDMNIST_NPZ,),
        expected_files="bloodmnist.npz (MedMNIST v2, 28x28) with train/val/test _images and _labels",
        where_to_get="`pip install medmnist` and download with it, or fetch bloodmnist.npz from the MedMNIST Zenodo record (doi 10.5281/zenodo.10519652)",
        class_names=BLOODMNIST_CLASSES,
        folder_names=("medmnist", ".medmnist"),
        notes="28x28 RGB, upsized to 64x64, as the reference.",
    ),
    DatasetSpec(
        name="tiny_imagenet",
        num_classes=200,
        input_shape=(64, 64, 3),
        stored_shape=(64, 64, 3),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        augmentation=NO_AUGMENTATION,
        paper_split=POOLED_RESPLIT,
        # The official test split has no labels; its labelled val is the test.
        official_splits=("train", "test"),
        source_formats=(TINY_IMAGENET_FOLDER,),
        expected_files="tiny-imagenet-200/ with wnids.txt, train/<wnid>/images/*.JPEG, val/images/*.JPEG and val/val_annotations.txt",
        where_to_get="tiny-imagenet-200.zip from the Stanford CS231n site (cs231n.stanford.edu), unzipped",
        folder_names=("tiny-imagenet-200", "tiny_imagenet", "tiny-imagenet"),
        notes="Labels are indices of the sorted wnids.",
    ),
    DatasetSpec(
        name="pad_ufes_20",
        num_classes=6,
        input_shape=(224, 224, 3),
        stored_shape=(224, 224, 3),
        mean=IMAGENET_MEAN,
        std=IMAGENET_STD,
        augmentation=DERMOSCOPY_JITTER_CROP,
        paper_split=POOLED_RESPLIT,
        official_splits=("all",),
        source_formats=(PAD_UFES_FOLDER,),
        expected_files="PAD-UFES-20 folder with metadata.csv (img_id, diagnostic) and the PNGs in images/ or imgs_part_*/",
        where_to_get="the PAD-UFES-20 archive from Mendeley Data (doi 10.17632/zr7vgbcyr2.1), unzipped",
        class_names=PAD_UFES_CLASSES,
        folder_names=("pad_ufes_20", "pad-ufes-20", "PAD-UFES-20"),
        notes="Images resized to 224x224 at load time (the reference's first transform).",
    ),
    DatasetSpec(
        name="digits",
        num_classes=10,
        # 8x8 is too small for the ImageNet stem (7x7 stride 2 then 3x3
        # stride-2 pooling; GradAttn's five taps need >= 17x17 to keep a
        # non-empty map at the last stage). 32x32 is the CIFAR/SVHN size, so
        # the model sees the same tap sizes (8, 8, 4, 2, 1) as there.
        input_shape=(32, 32, 1),
        stored_shape=(8, 8, 1),
        # Statistics of all 1,797 sklearn 8x8 digits on the [0, 1] scale
        # (pixel / 16): mean 0.30526, std 0.37605.
        mean=(0.3053,),
        std=(0.3760,),
        augmentation=NO_AUGMENTATION,
        paper_split=POOLED_RESPLIT,
        official_splits=("all",),
        source_formats=(SKLEARN,),
        expected_files="nothing: the 1,797 8x8 digits ship with scikit-learn",
        where_to_get="`pip install scikit-learn`",
        class_names=DIGIT_CLASSES,
        notes="Offline smoke-test data: 8x8 upsampled (bilinear) to 32x32.",
    ),
    DatasetSpec(
        name="synthetic",
        num_classes=10,
        input_shape=(32, 32, 3),
        stored_shape=(32, 32, 3),
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
        augmentation=NO_AUGMENTATION,
        paper_split=POOLED_RESPLIT,
        official_splits=("all",),
        source_formats=(SYNTHETIC,),
        expected_files="nothing: generated from the seed",
        where_to_get="generated",
        notes="Deterministic class prototypes plus noise; learnable in a few steps.",
    ),
)

_REGISTRY = {spec.name: spec for spec in _SPECS}


def list_datasets():
    """Names of every registered dataset, sorted."""
    return sorted(_REGISTRY)


def get_dataset_spec(name):
    """The `DatasetSpec` registered under `name`."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise DatasetError(
            f"Unknown dataset {name!r}; expected one of {list_datasets()}."
        ) from None


def register_dataset_spec(spec, overwrite=False):
    """Adds `spec` to the registry (for datasets defined outside the package)."""
    if not isinstance(spec, DatasetSpec):
        raise ValueError(f"Expected a DatasetSpec, got {type(spec).__name__}.")
    if spec.name in _REGISTRY and not overwrite:
        raise ValueError(
            f"Dataset {spec.name!r} is already registered; pass overwrite=True "
            "to replace it."
        )
    _REGISTRY[spec.name] = spec
