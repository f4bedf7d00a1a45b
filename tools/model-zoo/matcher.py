"""Hungarian matcher of detectron2's MaskFormer (HungarianMatcher).

cost = cost_class * (-p[target class]) + cost_mask * focal(mask) + cost_dice * dice(mask),
computed at the resolution of the predicted masks (targets resized with nearest).
"""
from __future__ import annotations

from typing import Dict, List, Tuple

import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment


def batch_dice_loss(inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    inputs = inputs.sigmoid().flatten(1)
    numerator = 2 * torch.einsum("nc,mc->nm", inputs, targets)
    denominator = inputs.sum(-1)[:, None] + targets.sum(-1)[None, :]
    return 1 - (numerator + 1) / (denominator + 1)


def batch_sigmoid_focal_loss(inputs: torch.Tensor, targets: torch.Tensor, alpha: float = 0.25,
                             gamma: float = 2.0) -> torch.Tensor:
    hw = inputs.shape[1]
    prob = inputs.sigmoid()
    focal_pos = ((1 - prob) ** gamma) * F.binary_cross_entropy_with_logits(
        inputs, torch.ones_like(inputs), reduction="none")
    focal_neg = (prob ** gamma) * F.binary_cross_entropy_with_logits(
        inputs, torch.zeros_like(inputs), reduction="none")
    focal_pos = focal_pos * alpha
    focal_neg = focal_neg * (1 - alpha)
    loss = torch.einsum("nc,mc->nm", focal_pos, targets) + torch.einsum("nc,mc->nm", focal_neg, 1 - targets)
    return loss / hw


class HungarianMatcher:
    def __init__(self, cost_class: float = 1.0, cost_mask: float = 20.0, cost_dice: float = 1.0):
        self.cost_class, self.cost_mask, self.cost_dice = cost_class, cost_mask, cost_dice

    @torch.no_grad()
    def __call__(self, class_logits: torch.Tensor, mask_logits: torch.Tensor,
                 targets: List[Dict[str, torch.Tensor]]) -> List[Tuple[torch.Tensor, torch.Tensor]]:
        indices = []
        for b, tgt in enumerate(targets):
            labels, masks = tgt["labels"], tgt["masks"]
            if labels.numel() == 0:
                indices.append((torch.empty(0, dtype=torch.int64), torch.empty(0, dtype=torch.int64)))
                continue
            prob = class_logits[b].softmax(-1)                      # Q, K+1
            cost_class = -prob[:, labels]
            out_mask = mask_logits[b]                               # Q, h, w
            tgt_mask = F.interpolate(masks[:, None].float(), size=out_mask.shape[-2:], mode="nearest")[:, 0]
            out_mask = out_mask.flatten(1)
            tgt_mask = tgt_mask.flatten(1)
            cost_mask = batch_sigmoid_focal_loss(out_mask, tgt_mask)
            cost_dice = batch_dice_loss(out_mask, tgt_mask)
            c = self.cost_mask * cost_mask + self.cost_class * cost_class + self.cost_dice * cost_dice
            qi, ti = linear_sum_assignment(c.numpy())
            indices.append((torch.as_tensor(qi, dtype=torch.int64), torch.as_tensor(ti, dtype=torch.int64)))
        return indices
