"""Where deliveries come from: one webhook endpoint each."""

from __future__ import annotations

import enum


class Source(enum.StrEnum):
    PIPELINE = "pipeline"
    WANDB = "wandb"
    S3 = "s3"
