"""Models that train another model, and how callbacks find the one inside."""


def trained_classifier(model):
    """The classifier `model` trains: a training wrapper's (such as
    `data.DeviceDataModel`, which feeds it images it holds on the device)
    `wrapped_classifier`, else `model` itself. Callbacks save and inspect
    this one; `fit` and the optimizer work on `model`."""
    return getattr(model, "wrapped_classifier", model)
