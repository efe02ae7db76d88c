#!/usr/bin/env python
"""Draws docs/images/architecture.png: ResNet-18 against GradAttn.

    python scripts/make_architecture_diagram.py [--output docs/images/architecture.png]

Top: the ResNet-18 baseline, whose identity shortcuts (arcs over every
block) carry the gradient past each block. Bottom: GradAttn, the same
network without shortcuts; the features after the stem and after each stage
(the five taps) are pooled and projected into one depth token each
(`TapTokenizer`), the tokens get positional information (none, learned or
rotary) and a 3-layer transformer encoder (`DepthTokenEncoder`) attends over
them; the classifier reads the mean of the encoded tokens. Needs matplotlib
only; the shapes written in the boxes are those of a 32x32x3 input.
"""

import argparse
import itertools
import os
import sys

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUTPUT = os.path.join(REPOSITORY, "docs", "images", "architecture.png")

# (name, label, channels, side of a 32x32 input's feature map)
TAPS = (
    ("stem", "stem\n7x7/2 conv, BN, ReLU\n3x3/2 max-pool", 64, 8),
    ("stage1", "stage1\n2 blocks", 64, 8),
    ("stage2", "stage2\n2 blocks, /2", 128, 4),
    ("stage3", "stage3\n2 blocks, /2", 256, 2),
    ("stage4", "stage4\n2 blocks, /2", 512, 1),
)
COLORS = {
    "input": "#e8e8e8",
    "conv": "#cfe2f3",
    "token": "#fce5cd",
    "encoder": "#d9ead3",
    "head": "#ead1dc",
    "shortcut": "#1c7c54",
    "tap": "#b45f06",
    "removed": "#cc0000",
}


def _box(axis, x, y, width, height, text, color, fontsize=8, weight="normal"):
    from matplotlib.patches import FancyBboxPatch

    axis.add_patch(
        FancyBboxPatch(
            (x - width / 2, y - height / 2),
            width,
            height,
            boxstyle="round,pad=0.02,rounding_size=0.08",
            facecolor=color,
            edgecolor="#333333",
            linewidth=0.9,
        )
    )
    axis.text(x, y, text, ha="center", va="center", fontsize=fontsize, weight=weight)


def _arrow(axis, start, end, color="#333333", style="-|>", linewidth=1.0, **kwargs):
    from matplotlib.patches import FancyArrowPatch

    axis.add_patch(
        FancyArrowPatch(
            start,
            end,
            arrowstyle=style,
            mutation_scale=10,
            color=color,
            linewidth=linewidth,
            shrinkA=0,
            shrinkB=0,
            **kwargs,
        )
    )


def _backbone_row(axis, y, with_shortcuts):
    """Input, stem and the four stages along a row; returns the boxes' x."""
    xs = [0.9, 2.9, 5.0, 7.1, 9.2, 11.3]
    _box(axis, xs[0], y, 1.2, 0.9, "image\n32x32x3", COLORS["input"])
    for x, (_, label, channels, side) in zip(xs[1:], TAPS):
        _box(
            axis,
            x,
            y,
            1.75,
            1.05,
            f"{label}\n-> {side}x{side}x{channels}",
            COLORS["conv"],
            fontsize=7,
        )
    for left, right in itertools.pairwise(xs):
        left_edge = left + (0.6 if left == xs[0] else 0.875)
        _arrow(axis, (left_edge, y), (right - 0.875, y))
    # Two blocks per stage: an arc over each block stands for its shortcut.
    for x in xs[2:]:
        for offset in (-0.42, 0.42):
            centre = x + offset
            start, end = (centre - 0.38, y + 0.53), (centre + 0.38, y + 0.53)
            if with_shortcuts:
                _arrow(
                    axis,
                    start,
                    end,
                    color=COLORS["shortcut"],
                    linewidth=1.4,
                    connectionstyle="arc3,rad=-0.9",
                )
            else:
                axis.plot(
                    [centre - 0.12, centre + 0.12],
                    [y + 0.62, y + 0.82],
                    color=COLORS["removed"],
                    linewidth=1.2,
                )
                axis.plot(
                    [centre - 0.12, centre + 0.12],
                    [y + 0.82, y + 0.62],
                    color=COLORS["removed"],
                    linewidth=1.2,
                )
    return xs


def draw(output):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(14, 8.6))
    axis.set_xlim(0, 14.3)
    axis.set_ylim(0, 9.4)
    axis.axis("off")

    # --- ResNet-18 -----------------------------------------------------------
    top = 8.0
    axis.text(
        0.2,
        9.15,
        "ResNet-18 (baseline): identity shortcuts carry the gradient past every block",
        fontsize=11,
        weight="bold",
        va="center",
    )
    xs = _backbone_row(axis, top, with_shortcuts=True)
    _box(
        axis,
        13.35,
        top,
        1.5,
        1.05,
        "global avg pool\nDense(512 -> K)\nlogits",
        COLORS["head"],
        fontsize=7,
    )
    _arrow(axis, (xs[-1] + 0.875, top), (12.6, top))
    axis.text(
        7.1,
        top - 0.95,
        "block: conv3x3-BN-ReLU-conv3x3-BN (+ shortcut: identity, or 1x1 conv + BN when the shape changes) - ReLU",
        ha="center",
        fontsize=7.5,
        style="italic",
    )

    # --- GradAttn ------------------------------------------------------------
    row = 5.55
    axis.text(
        0.2,
        6.75,
        "GradAttn: no shortcuts; five taps become depth tokens, an encoder attends over them",
        fontsize=11,
        weight="bold",
        va="center",
    )
    xs = _backbone_row(axis, row, with_shortcuts=False)
    axis.text(
        13.35,
        row + 0.2,
        "block: conv3x3-BN-ReLU\n-conv3x3-BN-ReLU\n(shortcuts removed: x)",
        ha="center",
        va="center",
        fontsize=7,
        color=COLORS["removed"],
    )

    token_y = 3.45
    for index, (x, (name, _, channels, side)) in enumerate(zip(xs[1:], TAPS)):
        _arrow(
            axis,
            (x, row - 0.53),
            (x, token_y + 0.5),
            color=COLORS["tap"],
            linewidth=1.6,
        )
        axis.text(
            x + 0.08,
            row - 0.98,
            f"tap {name}",
            fontsize=7,
            color=COLORS["tap"],
            ha="left",
        )
        _box(
            axis,
            x,
            token_y,
            1.75,
            1.0,
            f"GAP -> {channels}\nDense({channels} -> d)\ntoken t{index} (d)",
            COLORS["token"],
            fontsize=7,
        )
    axis.text(
        0.9,
        token_y,
        "TapTokenizer\n(one Dense\nper tap)",
        ha="center",
        va="center",
        fontsize=8,
        weight="bold",
    )

    sequence_y = 2.05
    _box(
        axis,
        7.1,
        sequence_y,
        9.9,
        0.7,
        "depth tokens, shallow to deep: (batch, 5, d), d = 256;  + learned PE (1, 5, d)  |  none  |  RoPE on q, k",
        COLORS["token"],
        fontsize=8,
    )
    for x in xs[1:]:
        _arrow(axis, (x, token_y - 0.5), (x, sequence_y + 0.35))

    encoder_y = 0.85
    _box(
        axis,
        6.0,
        encoder_y,
        7.7,
        0.85,
        "DepthTokenEncoder: 3 post-LN layers, 8 heads, FFN 512, dropout 0.1\n"
        "x = LN(x + MHSA(x));  x = LN(x + FFN(x))   -> (batch, 5, d)",
        COLORS["encoder"],
        fontsize=8,
    )
    _arrow(axis, (6.0, sequence_y - 0.35), (6.0, encoder_y + 0.43))
    _box(
        axis,
        12.15,
        encoder_y,
        2.6,
        0.85,
        "mean over the 5 tokens\nDense(d -> K): logits",
        COLORS["head"],
        fontsize=8,
    )
    _arrow(axis, (9.85, encoder_y), (10.85, encoder_y))

    axis.text(
        0.2,
        0.1,
        "Shapes for a 32x32x3 input (28x28: taps 7, 7, 4, 2, 1). Gradient from the loss reaches every stage "
        "through its own token instead of through the shortcuts.",
        fontsize=7.5,
        color="#444444",
    )

    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    # No timestamp in the PNG: reruns give the same file.
    figure.savefig(output, dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(figure)
    return output


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--output",
        default=DEFAULT_OUTPUT,
        help="PNG to write (default: docs/images/architecture.png)",
    )
    args = parser.parse_args(argv)
    print(draw(args.output))
    return 0


if __name__ == "__main__":
    sys.exit(main())
