"""Datasets of the GradAttn paper (and a few more) as Keras input pipelines.

```python
from keras_gradattn import data

spec = data.get_dataset_spec("fashion_mnist")
splits = data.load_dataset("fashion_mnist", split="paper", seed=42)
train = data.make_pipeline(splits.train, splits.spec, batch_size=128, training=True)
```
See docs/data.md. Importing this package does not import TensorFlow: only
TFDS loading and `make_pipeline(pipeline="tf.data")` do.
"""

from keras_gradattn.data.augmentation import build_augmentation
from keras_gradattn.data.augmentation_layers import RandomPadCrop
from keras_gradattn.data.augmentation_layers import RandomResizedCrop
from keras_gradattn.data.device_resident import DeviceDataModel
from keras_gradattn.data.device_resident import make_index_pipeline
from keras_gradattn.data.device_resident import trained_classifier
from keras_gradattn.data.discovery import DATA_ENV_VAR
from keras_gradattn.data.errors import DatasetError
from keras_gradattn.data.loading import load_dataset
from keras_gradattn.data.pipeline import denormalize
from keras_gradattn.data.pipeline import make_pipeline
from keras_gradattn.data.pipeline import make_pydataset
from keras_gradattn.data.pipeline import measure_pipeline_throughput
from keras_gradattn.data.pipeline import normalize
from keras_gradattn.data.registry import DatasetSpec
from keras_gradattn.data.registry import get_dataset_spec
from keras_gradattn.data.registry import list_datasets
from keras_gradattn.data.registry import register_dataset_spec
from keras_gradattn.data.splits import DatasetSplit
from keras_gradattn.data.splits import DatasetSplits
