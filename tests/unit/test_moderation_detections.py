"""The moderation model's output read on whole arrays finds what nudenet's own
row-by-row `_postprocess` finds: the same classes, scores and order after its
non-maximum suppression, for outputs of the model's shape with many candidates."""

from __future__ import annotations

import numpy as np
import pytest
from nudenet import nudenet
from PIL import Image, ImageDraw

from ferry.media.analysis import INFERENCE_RESOLUTION, Moderator, detections


def model_output(rng: np.random.Generator) -> np.ndarray:
    """(1, 4 + 18 classes, 2100 rows) as `320n.onnx` gives: boxes in model pixels,
    scores in [0, 1), many rows over nudenet's cuts (0.2, then 0.25 in its suppression)."""
    output = rng.random((1, 22, 2100), dtype=np.float32)
    output[0, :4, :] *= INFERENCE_RESOLUTION
    output[0, 4:, :] *= np.float32(0.3 + 0.2 * rng.random())
    return output


@pytest.mark.parametrize("seed", range(40))
def test_the_detections_are_nudenets(seed: int) -> None:
    rng = np.random.default_rng(seed)
    output = model_output(rng)
    width, height = (int(side) for side in rng.integers(40, 700, size=2))
    side = max(width, height)
    x_pad, y_pad = side - width, side - height

    theirs = nudenet._postprocess(
        [output],
        x_pad,
        y_pad,
        side / width,
        side / height,
        width,
        height,
        INFERENCE_RESOLUTION,
        INFERENCE_RESOLUTION,
    )
    ours = detections(output, x_pad, y_pad, width, height, INFERENCE_RESOLUTION)

    assert theirs, "the output should hold detections to compare"
    assert ours == [(d["class"], d["score"]) for d in theirs]


def test_an_output_without_a_candidate_has_no_detections() -> None:
    output = np.zeros((1, 22, 2100), dtype=np.float32)
    output[0, 4:, :] = 0.1

    assert detections(output, 0, 80, 320, 240, INFERENCE_RESOLUTION) == []


def test_the_model_labels_an_image_through_the_same_steps() -> None:
    """The real model end to end: what `labels` reports is what nudenet's `detect`
    finds in the same pixels, best score per class (a drawn face, which it labels)."""
    grey = np.random.default_rng(0).normal(128, 40, (480, 640)).clip(0, 255).astype(np.uint8)
    image = Image.fromarray(grey, "L").convert("RGB")
    draw = ImageDraw.Draw(image)
    draw.ellipse((200, 100, 440, 400), fill=(224, 172, 105))
    draw.ellipse((260, 200, 300, 240), fill="black")
    draw.ellipse((340, 200, 380, 240), fill="black")
    moderator = Moderator()

    labels = moderator.labels(image)
    pixels = np.ascontiguousarray(np.asarray(image)[:, :, ::-1])
    best: dict[str, float] = {}
    for found in moderator._nude_detector().detect(pixels):
        best[found["class"]] = max(best.get(found["class"], 0.0), found["score"])

    assert labels
    assert labels == sorted(
        ((name, round(score, 4)) for name, score in best.items()), key=lambda item: -item[1]
    )
