"""Training-time callbacks: the gradient-flow instrument and the protocol's resumable callbacks."""

from keras_gradattn.callbacks.best_model_checkpoint import BestModelCheckpoint
from keras_gradattn.callbacks.divergence_monitor import DivergenceMonitor
from keras_gradattn.callbacks.gradient_norm_logger import GradientNormLogger
from keras_gradattn.callbacks.resumable import ResumableEarlyStopping
from keras_gradattn.callbacks.resumable import ResumableReduceLROnPlateau
from keras_gradattn.callbacks.resumable import TrainingJournal
