"""A tiny MaskFormer (Cheng et al., 2021, "Per-Pixel Classification is Not All
You Need for Semantic Segmentation").

backbone (small ResNet-like CNN, features at strides 4/8/16/32)
  -> pixel decoder (FPN, top-down to stride 4) -> per-pixel embeddings (mask_dim)
  -> transformer decoder (DETR style, N learnable queries, cross-attention to
     the stride-32 backbone features + sine positional encodings)
  -> class head (K+1 logits, last = "no object") and 3-layer mask-embedding MLP
  -> mask logits = einsum("bqc,bchw->bqhw") at stride 4.

Everything is written so that torch.onnx.export traces a graph whose height,
width and batch are dynamic: no Python control flow on tensor sizes, the
positional encoding is computed from the runtime feature map, upsampling uses
a fixed scale factor of 2 (inputs are multiples of 32).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, asdict
from typing import Dict, List

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass
class ModelConfig:
    num_classes: int = 6
    num_queries: int = 16
    widths: tuple = (32, 48, 96, 128)   # backbone channels at strides 4, 8, 16, 32
    fpn_dim: int = 64
    mask_dim: int = 64
    d_model: int = 96
    nheads: int = 4
    dim_feedforward: int = 384
    dec_layers: int = 3
    dropout: float = 0.0
    # Channels of the stride-4 class features that are pooled under each query's (detached)
    # mask and fed to the class head together with the query embedding; 0 = class from the
    # query embedding alone (plain MaskFormer head, version 1 of this model).
    class_pool_dim: int = 64
    # Backbone strides whose features the queries cross-attend to, as one token sequence (each level
    # 1x1 projected, with its own sine positional encoding plus a learned level embedding when there
    # are several). (32,) = the stride-32 map alone (a 4x4 map for a 128x128 crop: too coarse to
    # tell two nearby things of one class apart); version 3 of this model uses (32, 16).
    memory_strides: tuple = (32,)
    # Mask2Former's masked attention from the second decoder layer on: a query cross-attends only to the
    # memory positions where the mask predicted from the previous layer's output has sigmoid >= 0.5 (all
    # positions when that leaves none), so each query reads the features of its own segment.
    masked_attention: bool = False
    # Sine positional encodings (1x1 projected) added to the stride-4 mask features, so that a query's mask
    # embedding can pick pixels by where they are and not only by what they look like: without it two
    # things of one class look the same to every query, and one query's mask covers both.
    mask_position: bool = False
    # Each query also predicts a centre (cx, cy) and a strength a >= 0, and its mask logits get
    # -a * squared distance to that centre (coordinates normalised to the stride-4 map): a query can keep
    # its mask near one thing, so two things of one class no longer share one query's mask.
    mask_locality: bool = False

    def to_dict(self) -> Dict:
        d = asdict(self)
        d["widths"] = list(self.widths)
        d["memory_strides"] = list(self.memory_strides)
        return d


def conv_bn_relu(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        idt = x if self.down is None else self.down(x)
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        y = self.bn2(self.conv2(y))
        return F.relu(y + idt, inplace=True)


class Backbone(nn.Module):
    """Tiny ResNet: stem to stride 4, then one or two basic blocks per stage."""

    def __init__(self, widths):
        super().__init__()
        c1, c2, c3, c4 = widths
        self.stem = nn.Sequential(conv_bn_relu(3, 24, 2), conv_bn_relu(24, c1, 2))     # stride 4
        self.res2 = BasicBlock(c1, c1, 1)
        self.res3 = nn.Sequential(BasicBlock(c1, c2, 2), BasicBlock(c2, c2, 1))         # stride 8
        self.res4 = nn.Sequential(BasicBlock(c2, c3, 2), BasicBlock(c3, c3, 1))         # stride 16
        self.res5 = BasicBlock(c3, c4, 2)                                               # stride 32

    def forward(self, x) -> List[torch.Tensor]:
        r2 = self.res2(self.stem(x))
        r3 = self.res3(r2)
        r4 = self.res4(r3)
        r5 = self.res5(r4)
        return [r2, r3, r4, r5]


class PixelDecoder(nn.Module):
    """FPN as in MaskFormer's BasePixelDecoder: lateral 1x1 + top-down + 3x3 output convs."""

    def __init__(self, widths, dim: int, mask_dim: int):
        super().__init__()
        self.layer4 = conv_bn_relu(widths[3], dim)
        self.lateral = nn.ModuleList([nn.Sequential(nn.Conv2d(c, dim, 1, bias=False), nn.BatchNorm2d(dim))
                                      for c in widths[:3]])
        self.output = nn.ModuleList([conv_bn_relu(dim, dim) for _ in widths[:3]])
        self.mask_features = nn.Conv2d(dim, mask_dim, 3, 1, 1)

    def forward(self, feats: List[torch.Tensor]):
        """Returns (mask features, FPN output), both at stride 4."""
        y = self.layer4(feats[3])
        for i in (2, 1, 0):
            y = self.lateral[i](feats[i]) + F.interpolate(y, scale_factor=2.0, mode="nearest")
            y = self.output[i](y)
        return self.mask_features(y), y


def sine_position_encoding(x: torch.Tensor, num_pos_feats: int, temperature: float = 10000.0) -> torch.Tensor:
    """DETR's PositionEmbeddingSine(normalize=True) computed from the runtime size of x [B,C,H,W]."""
    ones = torch.ones_like(x[:, 0])                       # B,H,W
    y_embed = ones.cumsum(1)
    x_embed = ones.cumsum(2)
    eps, scale = 1e-6, 2 * math.pi
    y_embed = (y_embed - 0.5) / (y_embed[:, -1:, :] + eps) * scale
    x_embed = (x_embed - 0.5) / (x_embed[:, :, -1:] + eps) * scale
    dim_t = torch.arange(num_pos_feats, dtype=torch.float32)
    dim_t = torch.pow(torch.full_like(dim_t, temperature), 2 * torch.div(dim_t, 2, rounding_mode="floor") / num_pos_feats)
    pos_x = x_embed[:, :, :, None] / dim_t
    pos_y = y_embed[:, :, :, None] / dim_t
    pos_x = torch.stack((pos_x[:, :, :, 0::2].sin(), pos_x[:, :, :, 1::2].cos()), dim=4).flatten(3)
    pos_y = torch.stack((pos_y[:, :, :, 0::2].sin(), pos_y[:, :, :, 1::2].cos()), dim=4).flatten(3)
    return torch.cat((pos_y, pos_x), dim=3).permute(0, 3, 1, 2)   # B, 2*num_pos_feats, H, W


class Attention(nn.Module):
    """Plain multi-head attention (batch first) written with matmuls so it exports cleanly."""

    def __init__(self, d: int, heads: int):
        super().__init__()
        self.h, self.dh = heads, d // heads
        self.q = nn.Linear(d, d)
        self.k = nn.Linear(d, d)
        self.v = nn.Linear(d, d)
        self.o = nn.Linear(d, d)

    def _split(self, x):  # B,L,D -> B,h,L,dh
        return x.reshape(x.shape[0], -1, self.h, self.dh).transpose(1, 2)

    def forward(self, q, k, v, bias=None):
        qh = self._split(self.q(q)) * (self.dh ** -0.5)
        kh = self._split(self.k(k))
        vh = self._split(self.v(v))
        logits = qh @ kh.transpose(-1, -2)
        if bias is not None:                       # B,1,Lq,Lk additive mask (0 or a large negative)
            logits = logits + bias
        attn = torch.softmax(logits, dim=-1)
        out = (attn @ vh).transpose(1, 2)
        out = out.reshape(out.shape[0], -1, self.h * self.dh)
        return self.o(out)


class DecoderLayer(nn.Module):
    """DETR post-norm decoder layer: self-attn, cross-attn, FFN."""

    def __init__(self, d: int, heads: int, ff: int, dropout: float):
        super().__init__()
        self.self_attn = Attention(d, heads)
        self.cross_attn = Attention(d, heads)
        self.ff = nn.Sequential(nn.Linear(d, ff), nn.ReLU(inplace=True), nn.Dropout(dropout), nn.Linear(ff, d))
        self.n1, self.n2, self.n3 = nn.LayerNorm(d), nn.LayerNorm(d), nn.LayerNorm(d)
        self.drop = nn.Dropout(dropout)

    def forward(self, tgt, memory, pos, query_pos, memory_bias=None):
        q = k = tgt + query_pos
        tgt = self.n1(tgt + self.drop(self.self_attn(q, k, tgt)))
        tgt = self.n2(tgt + self.drop(self.cross_attn(tgt + query_pos, memory + pos, memory, memory_bias)))
        tgt = self.n3(tgt + self.drop(self.ff(tgt)))
        return tgt


class MLP(nn.Module):
    def __init__(self, din: int, dh: int, dout: int, layers: int = 3):
        super().__init__()
        dims = [din] + [dh] * (layers - 1) + [dout]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))

    def forward(self, x):
        for i, l in enumerate(self.layers):
            x = l(x)
            if i < len(self.layers) - 1:
                x = F.relu(x)
        return x


class MaskFormer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.backbone = Backbone(cfg.widths)
        self.pixel_decoder = PixelDecoder(cfg.widths, cfg.fpn_dim, cfg.mask_dim)
        strides = tuple(cfg.memory_strides)
        if not strides or strides[0] != 32 or any(st not in (4, 8, 16) for st in strides[1:]):
            raise ValueError(f"memory_strides must start with 32, then any of 16/8/4: {strides}")
        self.input_proj = nn.Conv2d(cfg.widths[3], cfg.d_model, 1)            # stride 32
        # further levels: backbone features at that stride (index 0..2 = stride 4/8/16)
        self.memory_levels = [{4: 0, 8: 1, 16: 2}[st] for st in strides[1:]]
        self.extra_proj = nn.ModuleList(nn.Conv2d(cfg.widths[i], cfg.d_model, 1) for i in self.memory_levels)
        self.level_embed = nn.Embedding(len(strides), cfg.d_model) if len(strides) > 1 else None
        self.mask_position = nn.Conv2d(cfg.mask_dim, cfg.mask_dim, 1) if cfg.mask_position else None
        self.query_embed = nn.Embedding(cfg.num_queries, cfg.d_model)
        self.layers = nn.ModuleList(DecoderLayer(cfg.d_model, cfg.nheads, cfg.dim_feedforward, cfg.dropout)
                                    for _ in range(cfg.dec_layers))
        self.decoder_norm = nn.LayerNorm(cfg.d_model)
        self.mask_embed = MLP(cfg.d_model, cfg.d_model, cfg.mask_dim, 3)
        if cfg.mask_locality:
            self.mask_locality = MLP(cfg.d_model, cfg.d_model, 3, 2)
            with torch.no_grad():   # centre 0.5, strength softplus(-3) * 10 ~ 0.5: a mild pull at first
                self.mask_locality.layers[-1].weight.zero_()
                self.mask_locality.layers[-1].bias.copy_(torch.tensor([0.0, 0.0, -3.0]))
        else:
            self.mask_locality = None
        if cfg.class_pool_dim:
            # Shape is what tells the thing classes apart, and the 4x4 stride-32 memory the queries
            # attend to barely resolves it; features pooled under the query's own mask do (the idea
            # of Mask2Former's masked attention, applied once at the head).
            self.class_features = nn.Sequential(conv_bn_relu(cfg.fpn_dim, cfg.class_pool_dim),
                                                nn.Conv2d(cfg.class_pool_dim, cfg.class_pool_dim, 1))
            self.class_embed = MLP(cfg.d_model + cfg.class_pool_dim, cfg.d_model, cfg.num_classes + 1, 2)
            # training only (not in the exported graph): per-pixel class logits from the class features,
            # supervised with the semantic map so the pooled features carry the class from the start
            # (without it the queries learn "query i = class c" from the embedding alone and stay there)
            self.semantic_aux = nn.Conv2d(cfg.class_pool_dim, cfg.num_classes, 1)
        else:
            self.class_features = None
            self.class_embed = nn.Linear(cfg.d_model, cfg.num_classes + 1)

    def forward(self, pixel_values: torch.Tensor, aux: bool = False):
        feats = self.backbone(pixel_values)
        mask_features, fpn = self.pixel_decoder(feats)               # B, mask_dim, H/4, W/4
        if self.mask_position is not None:
            mask_features = mask_features + self.mask_position(
                sine_position_encoding(mask_features, self.cfg.mask_dim // 2))
        class_features = self.class_features(fpn) if self.class_features is not None else None
        src = self.input_proj(feats[3])                              # B, d, H/32, W/32
        pos = sine_position_encoding(src, self.cfg.d_model // 2)
        memory = src.flatten(2).transpose(1, 2)                      # B, HW, d
        pos = pos.flatten(2).transpose(1, 2)
        if self.level_embed is not None:
            memories, poss = [memory], [pos + self.level_embed.weight[0]]
            for j, (i, proj) in enumerate(zip(self.memory_levels, self.extra_proj)):
                s = proj(feats[i])
                memories.append(s.flatten(2).transpose(1, 2))
                poss.append(sine_position_encoding(s, self.cfg.d_model // 2).flatten(2).transpose(1, 2)
                            + self.level_embed.weight[j + 1])
            memory = torch.cat(memories, 1)                          # B, sum of HW over levels, d
            pos = torch.cat(poss, 1)
        query_pos = self.query_embed.weight.unsqueeze(0).expand(pixel_values.shape[0], -1, -1)
        tgt = torch.zeros_like(query_pos)
        outs = []
        strides = self.cfg.memory_strides
        bias = None
        for li, layer in enumerate(self.layers):
            tgt = layer(tgt, memory, pos, query_pos, bias)
            last = li == len(self.layers) - 1
            if aux or (self.cfg.masked_attention and not last):
                head = self._heads(tgt, mask_features, class_features)
                if aux:
                    outs.append(head)
                if self.cfg.masked_attention and not last:
                    bias = self._attention_bias(head[1], strides)
        if aux:
            # outs[-1] = final prediction; per-pixel class logits at stride 4 (None without class features)
            return outs, (self.semantic_aux(class_features) if class_features is not None else None)
        return self._heads(tgt, mask_features, class_features)

    @staticmethod
    def _attention_bias(mask_logits, strides):
        """B,1,Q,L additive attention bias from stride-4 mask logits: -1e4 on the memory cells where the
        query's mask has sigmoid < 0.5 in all the stride-4 cells the memory cell covers (a max pool by a
        fixed factor, so the export keeps dynamic sizes, and a small thing keeps the cells it touches);
        a query masked everywhere attends everywhere."""
        levels = [F.max_pool2d(mask_logits.detach(), st // 4).flatten(2) for st in strides]
        logits = torch.cat(levels, 2)                                   # B,Q,L
        outside = logits < 0
        everywhere = outside.all(-1, keepdim=True)
        outside = outside & ~everywhere
        return (outside.to(logits.dtype) * -1e4).unsqueeze(1)

    def _heads(self, tgt, mask_features, class_features):
        h = self.decoder_norm(tgt)
        mask_emb = self.mask_embed(h)
        mask_logits = torch.einsum("bqc,bchw->bqhw", mask_emb, mask_features)
        if self.mask_locality is not None:
            loc = self.mask_locality(h)                                   # B,Q,3
            centre = loc[..., :2].sigmoid()
            strength = F.softplus(loc[..., 2]) * 10.0
            ones = torch.ones_like(mask_features[:, 0])                   # B,H,W (runtime size, exports)
            ys = (ones.cumsum(1) - 0.5) / ones.sum(1, keepdim=True)       # pixel centres in (0, 1)
            xs = (ones.cumsum(2) - 0.5) / ones.sum(2, keepdim=True)
            d2 = ((xs.unsqueeze(1) - centre[..., 0, None, None]) ** 2
                  + (ys.unsqueeze(1) - centre[..., 1, None, None]) ** 2)  # B,Q,H,W
            mask_logits = mask_logits - strength[..., None, None] * d2
        if class_features is None:
            return self.class_embed(h), mask_logits
        weights = mask_logits.detach().sigmoid()
        pooled = torch.einsum("bqhw,bchw->bqc", weights, class_features) / (weights.sum((2, 3)).unsqueeze(-1) + 1.0)
        return self.class_embed(torch.cat([h, pooled], -1)), mask_logits


def num_parameters(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())
