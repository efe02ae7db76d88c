"""FLOPs per image of the paper's models, from XLA's cost model.

For every input shape and model: floating-point operations of one forward
pass (inference mode) and of forward plus backward (the gradient of the
cross-entropy with respect to every trainable weight, training mode), per
image, and each model's ratio to ResNet-18. The ratio is the floor that a
GradAttn/ResNet-18 step-time ratio can reach where the hardware runs both
models equally efficiently, which is what the speed targets of
`benchmark_models.py` are measured against.

    python scripts/count_flops.py --input-shapes 28x28x1,32x32x3,64x64x3,224x224x3

It always runs on JAX, whatever KERAS_BACKEND says: only XLA exposes a cost
model of a whole traced step, and the model's operations are the same on
every backend. (Called from Python after Keras was imported with another
backend, `main` refuses in one line.) Nothing is compiled or run, so it takes seconds even on a CPU.
XLA counts a convolution's multiply-adds where the window overlaps the image,
not over the zero padding, and two FLOPs per multiply-add.
"""

import sys

from keras_gradattn.cli.arguments import HelpFormatter
from keras_gradattn.cli.arguments import OneLineErrorParser
from keras_gradattn.cli.arguments import image_shapes
from keras_gradattn.cli.arguments import names
from keras_gradattn.cli.arguments import parse_command_line
from keras_gradattn.cli.arguments import program_arguments
from keras_gradattn.cli.arguments import positive_int
from keras_gradattn.cli.arguments import fail
from keras_gradattn.cli.keras_backend import choose_keras_backend

DEFAULT_MODELS = "resnet18,plain_resnet18,gradattn_nope,gradattn_learned_pe,gradattn_rope"
DEFAULT_SHAPES = "28x28x1,32x32x3,64x64x3,224x224x3"
BASELINE = "resnet18"
PROG = "count_flops.py"
# FLOPs grow linearly with the batch; a few images keep any batch-1 special
# case of the compiler out of the count.
COUNTED_BATCH = 4


def build_parser():
    parser = OneLineErrorParser(
        prog=PROG,
        description=__doc__.split("\n\n")[0],
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--models", type=names, default=DEFAULT_MODELS.split(","),
                        help=f"create_model names; ratios are taken against {BASELINE}")
    parser.add_argument("--input-shapes", type=image_shapes, default=image_shapes(DEFAULT_SHAPES),
                        help="comma-separated HxWxC input shapes")
    parser.add_argument("--num-classes", type=positive_int, default=10)
    parser.add_argument("--output", default="results/benchmarks/flops",
                        help="path prefix of the .json and .md results")
    return parser


def _cost(lowered):
    analysis = lowered.cost_analysis()
    # Older JAX releases return one dict per device.
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0]
    return float(analysis["flops"])


def count_flops(model, input_shape, num_classes):
    """`(forward, forward_and_backward)` FLOPs per image of a built model."""
    import jax
    import jax.numpy as jnp
    import keras

    trainable = [variable.value for variable in model.trainable_variables]
    non_trainable = [variable.value for variable in model.non_trainable_variables]
    images = jax.ShapeDtypeStruct((COUNTED_BATCH, *input_shape), "float32")
    labels = jnp.zeros((COUNTED_BATCH,), "int32")  # any class: FLOPs do not depend on it

    def forward(trainable, non_trainable, images):
        logits, _ = model.stateless_call(trainable, non_trainable, images, training=False)
        return logits

    def loss(trainable, non_trainable, images):
        logits, _ = model.stateless_call(trainable, non_trainable, images, training=True)
        return keras.ops.mean(
            keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
        )

    forward_flops = _cost(jax.jit(forward).lower(trainable, non_trainable, images))
    training_flops = _cost(jax.jit(jax.grad(loss)).lower(trainable, non_trainable, images))
    return forward_flops / COUNTED_BATCH, training_flops / COUNTED_BATCH


def measure(args, progress=print):
    from keras_gradattn import create_model

    rows = []
    for shape in args.input_shapes:
        label = "x".join(map(str, shape))
        counts = {}
        for name in args.models:
            progress(f"{label}: {name}")
            model = create_model(name, num_classes=args.num_classes, input_shape=shape)
            counts[name] = count_flops(model, shape, args.num_classes)
        baseline = counts.get(BASELINE)
        for name, (forward, training) in counts.items():
            rows.append({
                "input_shape": label,
                "model": name,
                "forward_mflops": forward / 1e6,
                "training_mflops": training / 1e6,
                "training_ratio_vs_resnet18": training / baseline[1] if baseline else None,
            })
    return rows


def format_table(rows, args):
    lines = [
        f"FLOPs per image ({args.num_classes} classes), from XLA's cost model of the traced "
        "forward pass (inference mode) and of forward + backward (the loss gradient with "
        "respect to every trainable weight, training mode; the optimizer update is left out).",
        "",
        "| input | model | forward (MFLOPs) | forward + backward (MFLOPs) | forward + backward / ResNet-18 |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for row in rows:
        ratio = row["training_ratio_vs_resnet18"]
        lines.append(
            f"| {row['input_shape']} | {row['model']} | {row['forward_mflops']:,.1f} | "
            f"{row['training_mflops']:,.1f} | {'' if ratio is None else f'{ratio:.3f}'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = build_parser()
    argv = program_arguments(parser, argv)
    args, status = parse_command_line(parser, argv)
    if args is None:
        return status
    problem = choose_keras_backend("jax", flag="counting FLOPs needs the backend")
    if problem:
        return fail(parser.prog, problem)

    from keras_gradattn.utils import atomic_write_json
    from keras_gradattn.utils import atomic_write_text

    rows = measure(args, progress=lambda message: print(f"counting {message}", file=sys.stderr))
    table = format_table(rows, args)
    command = ("python scripts/count_flops.py " + " ".join(argv)).strip()
    atomic_write_json(f"{args.output}.json", {"command": command, "results": rows})
    atomic_write_text(f"{args.output}.md", f"Command: `{command}`\n\n{table}")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
