"""ResNet-18 and the three GradAttn variants as plain `torch.nn` modules.

Written from the architecture of docs/architecture.md, in the habits of
torchvision's ResNet (`conv1`, `bn1`, `maxpool`, `layer1`..`layer4`,
`downsample`, `fc`) and of `nn.TransformerEncoderLayer`, so that nothing is
shared with the Keras implementation it checks. Images are NCHW.
"""

import torch
import torch.nn.functional as F
from torch import nn

PAPER_SIZES = {
    "stage_blocks": (2, 2, 2, 2),
    "stage_widths": (64, 128, 256, 512),
    "stem_width": 64,
    "token_dim": 256,
    "num_heads": 8,
    "intermediate_dim": 512,
    "num_layers": 3,
    "dropout": 0.1,
}
# The positional encoding of each GradAttn variant.
GRADATTN_VARIANTS = {"gradattn_nope": "none", "gradattn_learned_pe": "learned", "gradattn_rope": "rope"}
MODEL_NAMES = ("resnet18", *GRADATTN_VARIANTS)


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN, plus the shortcut when there is one, then ReLU."""

    def __init__(self, in_channels, channels, stride, use_shortcut):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.use_shortcut = use_shortcut
        self.downsample = None
        if use_shortcut and (stride != 1 or in_channels != channels):
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(channels),
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.use_shortcut:
            out = out + (x if self.downsample is None else self.downsample(x))
        return F.relu(out)


class ResNetBackbone(nn.Module):
    """The ImageNet stem and four stages; returns the five taps (after the
    stem's max-pool and after each stage), shallow to deep."""

    def __init__(self, in_channels, use_shortcuts, stage_blocks, stage_widths, stem_width):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, stem_width, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(stem_width)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        channels = stem_width
        for index, (num_blocks, width) in enumerate(zip(stage_blocks, stage_widths)):
            blocks = []
            for block_index in range(num_blocks):
                stride = 2 if index > 0 and block_index == 0 else 1
                blocks.append(BasicBlock(channels, width, stride, use_shortcuts))
                channels = width
            self.add_module(f"layer{index + 1}", nn.Sequential(*blocks))
        self.num_stages = len(stage_blocks)
        self.tap_channels = (stem_width, *stage_widths)

    def forward(self, images):
        x = self.maxpool(F.relu(self.bn1(self.conv1(images))))
        taps = [x]
        for index in range(self.num_stages):
            x = getattr(self, f"layer{index + 1}")(x)
            taps.append(x)
        return taps


class ResNet(nn.Module):
    """ResNet-18 (with shortcuts) or its plain twin: deepest tap, global
    average pool, linear classifier."""

    def __init__(self, num_classes, in_channels=3, use_shortcuts=True, stage_blocks=(2, 2, 2, 2),
                 stage_widths=(64, 128, 256, 512), stem_width=64):
        super().__init__()
        self.backbone = ResNetBackbone(in_channels, use_shortcuts, stage_blocks, stage_widths, stem_width)
        self.fc = nn.Linear(stage_widths[-1], num_classes)

    def forward(self, images):
        features = self.backbone(images)[-1]
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(features, 1), 1))


def rotate_half(x):
    first, second = x.chunk(2, dim=-1)
    return torch.cat((-second, first), dim=-1)


class RoPEEncoderLayer(nn.Module):
    """`nn.TransformerEncoderLayer` (post-LN, ReLU) with rotary embeddings on
    queries and keys: q/k/v projections without bias, output projection with."""

    def __init__(self, d_model, nhead, dim_feedforward, dropout, base=10000.0):
        super().__init__()
        self.nhead = nhead
        self.head_dim = d_model // nhead
        self.q_proj = nn.Linear(d_model, d_model, bias=False)
        self.k_proj = nn.Linear(d_model, d_model, bias=False)
        self.v_proj = nn.Linear(d_model, d_model, bias=False)
        self.out_proj = nn.Linear(d_model, d_model)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.attention_dropout = dropout
        self.dropout = nn.Dropout(dropout)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        inverse_frequencies = base ** (-torch.arange(0, self.head_dim, 2, dtype=torch.float32) / self.head_dim)
        self.register_buffer("inverse_frequencies", inverse_frequencies, persistent=False)

    def _rotate(self, x):
        # x: (batch, heads, tokens, head_dim); position = token index.
        positions = torch.arange(x.shape[2], device=x.device, dtype=torch.float32)
        angles = torch.outer(positions, self.inverse_frequencies)
        angles = torch.cat((angles, angles), dim=-1)
        return x * angles.cos() + rotate_half(x) * angles.sin()

    def _self_attention(self, x):
        batch, tokens, width = x.shape

        def heads(projection):
            return projection(x).view(batch, tokens, self.nhead, self.head_dim).transpose(1, 2)

        query, key, value = self._rotate(heads(self.q_proj)), self._rotate(heads(self.k_proj)), heads(self.v_proj)
        context = F.scaled_dot_product_attention(
            query, key, value, dropout_p=self.attention_dropout if self.training else 0.0
        )
        return self.out_proj(context.transpose(1, 2).reshape(batch, tokens, width))

    def forward(self, x):
        x = self.norm1(x + self.dropout1(self._self_attention(x)))
        feedforward = self.linear2(self.dropout(F.relu(self.linear1(x))))
        return self.norm2(x + self.dropout2(feedforward))


class GradAttn(nn.Module):
    """A shortcut-free ResNet-18 whose five taps are pooled and projected into
    depth tokens, attended by a post-LN transformer encoder, averaged and
    classified.

    Args:
        positional_encoding: "none", "learned" (a (1, 5, d) table, N(0, 1),
            added before the encoder) or "rope" (rotary on q and k).
    """

    def __init__(self, num_classes, in_channels=3, positional_encoding="learned", stage_blocks=(2, 2, 2, 2),
                 stage_widths=(64, 128, 256, 512), stem_width=64, token_dim=256, num_heads=8,
                 intermediate_dim=512, num_layers=3, dropout=0.1):
        super().__init__()
        if positional_encoding not in ("none", "learned", "rope"):
            raise ValueError(f"positional_encoding must be 'none', 'learned' or 'rope', got {positional_encoding!r}")
        self.backbone = ResNetBackbone(in_channels, False, stage_blocks, stage_widths, stem_width)
        self.tap_projections = nn.ModuleList(
            nn.Linear(channels, token_dim) for channels in self.backbone.tap_channels
        )
        num_tokens = len(self.backbone.tap_channels)
        self.pos_embedding = (
            nn.Parameter(torch.randn(1, num_tokens, token_dim)) if positional_encoding == "learned" else None
        )
        if positional_encoding == "rope":
            self.encoder = nn.Sequential(*(
                RoPEEncoderLayer(token_dim, num_heads, intermediate_dim, dropout) for _ in range(num_layers)
            ))  # fmt: skip
        else:
            layer = nn.TransformerEncoderLayer(
                token_dim, num_heads, intermediate_dim, dropout, activation="relu", batch_first=True
            )
            self.encoder = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.fc = nn.Linear(token_dim, num_classes)

    def forward(self, images):
        taps = self.backbone(images)
        tokens = torch.stack(
            [projection(tap.mean(dim=(2, 3))) for projection, tap in zip(self.tap_projections, taps)], dim=1
        )
        if self.pos_embedding is not None:
            tokens = tokens + self.pos_embedding
        return self.fc(self.encoder(tokens).mean(dim=1))


def create_plain_model(name, num_classes=10, in_channels=3, **sizes):
    """One of `MODEL_NAMES` with the paper's sizes (`PAPER_SIZES`), any of
    which `sizes` overrides; the ResNet takes the backbone sizes only."""
    unknown = sorted(set(sizes) - set(PAPER_SIZES))
    if unknown:
        raise ValueError(f"unknown sizes {unknown}; allowed: {sorted(PAPER_SIZES)}")
    sizes = {**PAPER_SIZES, **sizes}
    backbone = {key: sizes[key] for key in ("stage_blocks", "stage_widths", "stem_width")}
    if name == "resnet18":
        return ResNet(num_classes, in_channels, use_shortcuts=True, **backbone)
    if name in GRADATTN_VARIANTS:
        return GradAttn(num_classes, in_channels, positional_encoding=GRADATTN_VARIANTS[name], **sizes)
    raise ValueError(f"unknown model {name!r}; allowed: {', '.join(MODEL_NAMES)}")


def count_trainable_parameters(model):
    return sum(parameter.numel() for parameter in model.parameters() if parameter.requires_grad)

