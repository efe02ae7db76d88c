"""What a run needs installed, and what it will compute on, checked before training.

`check_packages(config)` names every package a run would fail without, with
the pip command that installs them (one `TrainingSetupError`, before the run
directory exists), and returns a notice for those whose only loss is a
figure (matplotlib: the run's results do not depend on it). `pip install
"keras-gradattn[<backend>]"` brings all of them, but an environment assembled
otherwise (`--no-deps`, a system Python) may lack some.

`describe_devices()` lists the devices the backend will use
(`keras_gradattn.backend.compute_devices`), and `gpu_advice` says what to
install when nvidia-smi shows an NVIDIA GPU the backend does not see.
"""

import dataclasses

from keras_gradattn.training.errors import TrainingSetupError
from keras_gradattn.utils.dependencies import module_available
from keras_gradattn.utils.machine import gpu_names

# How to get each backend onto an NVIDIA GPU (docs: README, "On a GPU").
GPU_INSTALLS = {
    "jax": "JAX's CUDA build: pip install \"keras-gradattn[jax-cuda]\"",
    "tensorflow": (
        "TensorFlow with its CUDA libraries: pip uninstall -y tensorflow-cpu; "
        "pip install \"keras-gradattn[tensorflow-cuda]\""
    ),
    "torch": (
        "a CUDA build of PyTorch (PyPI's default Linux torch wheel carries CUDA, '+cpu' builds do not): "
        "pip install --force-reinstall torch"
    ),
}


@dataclasses.dataclass(frozen=True)
class Requirement:
    module: str  # what is imported
    package: str  # what pip installs
    purpose: str  # what the run needs it for
    figure_only: bool = False  # without it the run finishes, less that figure


def required_packages(config):
    """The `Requirement`s of a resolved `config`'s run, in the order they are used."""
    from keras_gradattn.data import registry

    needed = []
    spec = registry.get_dataset_spec(config.dataset)
    if registry.SKLEARN in spec.source_formats:
        needed.append(Requirement("sklearn", "scikit-learn", f"the {config.dataset} dataset"))
    if config.pipeline == "tf.data":
        needed.append(Requirement("tensorflow", "tensorflow", "--pipeline tf.data"))
    if config.log_gradients != 0 and not module_available("tensorflow"):
        # The gradient logs are written with tensorboard's event records, or
        # with tf.summary where TensorFlow is installed.
        needed.append(Requirement("tensorboard", "tensorboard", "the TensorBoard gradient logs"))
    needed.append(Requirement("matplotlib", "matplotlib", "confusion_matrix.png", figure_only=True))
    return needed


def missing_packages(config):
    """The `Requirement`s of `config`'s run that this environment lacks."""
    return [requirement for requirement in required_packages(config) if not module_available(requirement.module)]


def check_packages(config):
    """Raises `TrainingSetupError` (one line with the pip command) when a
    package the run needs is not installed; returns the one-line notices
    for missing packages that only a figure needs."""
    missing = missing_packages(config)
    notices = [
        f"note: {requirement.package} is not installed: {requirement.purpose} will be skipped "
        f"(pip install {requirement.package})"
        for requirement in missing
        if requirement.figure_only
    ]
    missing = [requirement for requirement in missing if not requirement.figure_only]
    if not missing:
        return notices
    listed = ", ".join(f"{requirement.package} (for {requirement.purpose})" for requirement in missing)
    command = " ".join(dict.fromkeys(requirement.package for requirement in missing))
    raise TrainingSetupError(
        f"missing package(s) {listed}; install with: pip install {command} "
        "(pip install \"keras-gradattn[<backend>]\" installs them all)"
    )


def describe_devices():
    """`{"backend", "devices", "nvidia_gpus"}`: what the backend computes on,
    and the NVIDIA GPUs nvidia-smi lists on this machine (empty without it)."""
    import keras

    from keras_gradattn.backend import compute_devices

    return {"backend": keras.backend.backend(), "devices": compute_devices(), "nvidia_gpus": gpu_names()}


def device_line(description):
    """One line for the start of a run: the backend and its devices."""
    return f"Devices ({description['backend']} backend): {', '.join(description['devices'])}"


def gpu_advice(description):
    """A one-line warning when nvidia-smi lists GPUs but the backend has only
    CPUs, saying what to install; `None` otherwise."""
    from keras_gradattn.backend import only_cpus

    if not description["nvidia_gpus"] or not only_cpus(description["devices"]):
        return None
    backend = description["backend"]
    return (
        f"warning: this machine has NVIDIA GPU(s) ({', '.join(description['nvidia_gpus'])}, from nvidia-smi) but "
        f"the {backend} backend sees only CPUs and will train on them; for the GPU install "
        f"{GPU_INSTALLS.get(backend, 'a CUDA build of the backend')}"
    )
