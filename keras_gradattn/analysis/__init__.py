"""Post-hoc gradient-flow analysis: the probe, its statistics, figures, reports."""

from keras_gradattn.analysis.event_reader import RunEvents
from keras_gradattn.analysis.event_reader import read_events
from keras_gradattn.analysis.probe import PROBE_FILE_NAME
from keras_gradattn.analysis.probe import GradientFlowProbe
from keras_gradattn.analysis.probe import GradientFlowReport
from keras_gradattn.analysis.probe import default_probe_targets
from keras_gradattn.analysis.probe import probe_gradient_flow
from keras_gradattn.analysis.gradient_statistics import gradient_flow_statistics
