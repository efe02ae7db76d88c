"""Grids of training runs and honest comparisons across seeds.

`gradattn-reproduce` (keras_gradattn/cli/reproduce.py) runs a grid of
`gradattn-train` runs, one subprocess each (`grid`), collects their small
files into `results/<experiment>/` (`experiment`), and turns them into
tables: mean and std per cell, paired differences against a baseline with an
exact sign-flip test (`seed_statistics`, `aggregate`), and markdown beside
the paper's reported figures (`paper`, `results_markdown`). It also writes
TensorBoard HParams summaries of the finished runs into the runs folder
(`tensorboard_hparams`), and lays out the skip-connection comparison of
docs/design_space.md (`design_space`). See docs/reproduce.md and
docs/tensorboard.md.
"""

from keras_gradattn.experiments.seed_statistics import confidence_interval_95
from keras_gradattn.experiments.seed_statistics import mean_std
from keras_gradattn.experiments.seed_statistics import paired_comparison
from keras_gradattn.experiments.seed_statistics import sign_flip_p_value
from keras_gradattn.experiments.seed_statistics import smallest_attainable_p_value
