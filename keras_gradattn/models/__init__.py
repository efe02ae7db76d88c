"""Backbones, classifiers and the model registry."""

from keras_gradattn.models.classifiers import Classifier
from keras_gradattn.models.classifiers import GradAttnClassifier
from keras_gradattn.models.classifiers import ImageClassifier
from keras_gradattn.models.registry import create_model
from keras_gradattn.models.registry import describe_models
from keras_gradattn.models.registry import list_models
from keras_gradattn.models.registry import register_model
from keras_gradattn.models.resnet_backbone import ResNetBackbone
from keras_gradattn.models.resnet_backbone import TapInfo
