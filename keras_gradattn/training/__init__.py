"""The paper's training protocol: optimizer, callbacks, run directories, metrics.

`run_training(TrainConfig(...))` is what `gradattn-train` runs; see
docs/training.md.
"""

from keras_gradattn.training import metrics
from keras_gradattn.training.callbacks import BestModelCheckpoint
from keras_gradattn.training.callbacks import DivergenceMonitor
from keras_gradattn.training.callbacks import ResumableEarlyStopping
from keras_gradattn.training.callbacks import ResumableReduceLROnPlateau
from keras_gradattn.training.callbacks import TrainingJournal
from keras_gradattn.training.errors import TrainingDiverged
from keras_gradattn.training.errors import TrainingSetupError
from keras_gradattn.training.protocol import build_callbacks
from keras_gradattn.training.protocol import build_optimizer
from keras_gradattn.training.trainer import TrainConfig
from keras_gradattn.training.trainer import TrainingResult
from keras_gradattn.training.trainer import run_training
