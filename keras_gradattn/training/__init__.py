"""Training with the paper's protocol: the run's config, the protocol, run directories, metrics.

`run_training(TrainConfig(...))` is what `gradattn-train` runs; see
docs/training.md.
"""

from keras_gradattn.training import metrics
from keras_gradattn.training.config import ConfigFieldError
from keras_gradattn.training.config import TrainConfig
from keras_gradattn.training.config import validate_config
from keras_gradattn.training.errors import ProcessLost
from keras_gradattn.training.errors import RunDirectoryInUse
from keras_gradattn.training.errors import TrainingDiverged
from keras_gradattn.training.errors import TrainingSetupError
from keras_gradattn.training.protocol import build_callbacks
from keras_gradattn.training.protocol import build_optimizer
from keras_gradattn.training.trainer import TrainingResult
from keras_gradattn.training.trainer import run_training
