"""The stack's moderation service (`ferry moderator`): what the workers ask for labels."""

from __future__ import annotations

import asyncio
import io
import socket
from pathlib import Path

import httpx
import pytest
from PIL import Image, ImageDraw

from ferry.config import Settings
from ferry.consumers.bridge import Bridge
from ferry.consumers.tail import TopicFollower
from ferry.demo import stage_upload
from ferry.devstack import Stack
from ferry.media.analysis import Moderator, RemoteModerator, analysis_images
from ferry.media.errors import ModerationUnavailable
from ferry.media.limits import DEFAULT_LIMITS
from ferry.moderator import MAX_SIDE
from ferry.producers import EventPublisher
from ferry.storage import LocalStorage

UPLOADS = "ferry.uploads.v1"


def skin_on_noise(seed: int) -> Image.Image:
    """Noise with a skin-coloured oval on it: nudenet's model finds something in it."""
    image = Image.effect_noise((640, 480), 30 + 10 * seed).convert("RGB")
    draw = ImageDraw.Draw(image)
    draw.ellipse((200, 100, 440, 400), fill=(224, 172, 105))
    draw.ellipse((260, 200, 300, 240), fill="black")
    draw.ellipse((340, 200, 380, 240), fill="black")
    return image


@pytest.fixture(scope="module")
def remote(settings: Settings) -> RemoteModerator:
    assert settings.moderation_url, "the stack's env file names the moderation service"
    return RemoteModerator(settings.moderation_url)


def test_the_service_labels_as_the_model_does_in_process(remote: RemoteModerator) -> None:
    in_process = Moderator()
    images = [skin_on_noise(seed) for seed in (0, 3)] + [Image.new("RGB", (300, 200), "white")]

    answers = [remote.labels(image) for image in images]

    assert answers == [in_process.labels(image) for image in images]
    assert answers[0], "the model found something in the first image"
    assert remote.model_name == in_process.model_name == "nudenet-3.4.2/320n.onnx"


@pytest.mark.parametrize(
    ("query", "body", "refusal"),
    [
        ({"width": "4", "height": "4"}, b"\0" * 47, "47 bytes; an RGB image of 4x4 has 48"),
        ({"width": "4"}, b"\0" * 48, "`height` must be a whole number of pixels"),
        ({"width": "four", "height": "4"}, b"\0" * 48, "`width` must be a whole number"),
        ({"width": "0", "height": "4"}, b"", f"`width` must be between 1 and {MAX_SIDE}"),
        ({"width": str(MAX_SIDE + 1), "height": "1"}, b"", f"between 1 and {MAX_SIDE}"),
    ],
)
def test_a_body_that_is_not_the_announced_image_is_refused(
    settings: Settings, query: dict[str, str], body: bytes, refusal: str
) -> None:
    response = httpx.post(f"{settings.moderation_url}/labels", params=query, content=body)

    assert response.status_code == 400
    assert refusal in response.text


def test_the_health_check_names_the_loaded_model(settings: Settings) -> None:
    response = httpx.get(f"{settings.moderation_url}/health")

    assert response.status_code == 200
    assert response.json() == {"model": "nudenet-3.4.2/320n.onnx"}


def test_a_service_that_does_not_answer_is_an_error_to_retry() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    moderator = RemoteModerator(f"http://127.0.0.1:{port}")

    with pytest.raises(
        ModerationUnavailable, match=f"moderation service at http://127.0.0.1:{port}"
    ):
        moderator.labels(skin_on_noise(1))
    assert moderator.model_name is None


@pytest.mark.restarts_stack
async def test_uploads_are_labelled_by_the_service_and_go_on_without_it(
    stack: Stack,
    bridge: Bridge,
    publisher: EventPublisher,
    file_events: TopicFollower,
    local_storage: LocalStorage,
    settings: Settings,
    tenant: str,
    tmp_path: Path,
) -> None:
    def photo(seed: int) -> bytes:
        buffer = io.BytesIO()
        skin_on_noise(seed).save(buffer, "JPEG", quality=90)
        return buffer.getvalue()

    def labelled(data: bytes) -> dict[str, str]:
        """The labels the model gives in this process, as `file.processed` carries them."""
        (tmp_path / "photo.jpg").write_bytes(data)
        image, _ = analysis_images(tmp_path / "photo.jpg", "image/jpeg", DEFAULT_LIMITS)
        return {f"moderation.{name}": f"{score:.3f}" for name, score in Moderator().labels(image)}

    async def processed(name: str, data: bytes) -> dict[str, str]:
        event = await stage_upload(
            local_storage, settings.ingest_bucket, tenant, name, "image/jpeg", data
        )
        await publisher.publish(event, topic=UPLOADS)
        [outcome] = await file_events.wait_for(lambda e: e.get("file_id") == event["file_id"])
        assert outcome["event_type"] == "file.processed"
        analysis: dict[str, str] = outcome["analysis"]
        return analysis

    # The labels come from the service, as the model gives them in this process.
    first = photo(2)
    expected = labelled(first)
    assert expected, "the model finds something in the photo"
    analysis = await processed("photo.jpg", first)
    assert analysis["status"] == "ok"
    assert analysis.pop("moderation.model") == "nudenet-3.4.2/320n.onnx"
    assert {k: v for k, v in analysis.items() if k.startswith("moderation.")} == expected

    await asyncio.to_thread(stack.stop_service, "moderator")
    try:
        # Without the service the upload is still processed, its analysis failed and why.
        analysis = await processed("photo-again.jpg", photo(4))
        assert analysis["status"] == "failed"
        assert f"moderation service at {settings.moderation_url}" in analysis["detail"]
    finally:
        await asyncio.to_thread(stack.start_service, "moderator")
    last = photo(5)
    analysis = await processed("photo-once-more.jpg", last)
    assert analysis["status"] == "ok"
    assert analysis.pop("moderation.model") == "nudenet-3.4.2/320n.onnx"
    assert {k: v for k, v in analysis.items() if k.startswith("moderation.")} == labelled(last)
