"""AI analysis of content: moderation (nudenet), OCR (tesseract) and language (langdetect)."""

from __future__ import annotations

import importlib.util
import os
import threading
from importlib.metadata import version as package_version
from pathlib import Path
from typing import Any, Protocol

import httpx
import numpy as np
from langdetect import DetectorFactory, detect_langs
from langdetect.lang_detect_exception import LangDetectException
from PIL import Image

from ferry.media.documents import excerpt
from ferry.media.errors import ModelMissing, ModerationUnavailable
from ferry.media.images import decode_upright, fit
from ferry.media.limits import MediaLimits

# nudenet's classes that count towards `nsfw`. Covered parts, faces, feet, armpits,
# bellies and male chests are reported as labels but never make a file nsfw.
EXPOSED_CLASSES = frozenset(
    {
        "FEMALE_BREAST_EXPOSED",
        "FEMALE_GENITALIA_EXPOSED",
        "MALE_GENITALIA_EXPOSED",
        "BUTTOCKS_EXPOSED",
        "ANUS_EXPOSED",
    }
)

# Fewer samples than this off the background: nothing is written there.
MIN_INK_SAMPLES = 8

# langdetect keeps one global factory; its lazy loading is not thread-safe.
_LANGUAGE_LOCK = threading.Lock()


# The input size of nudenet's bundled model, `320n.onnx` (NudeDetector's default).
INFERENCE_RESOLUTION = 320


def packaged_model() -> Path:
    """The ONNX model inside the nudenet package (never downloaded)."""
    spec = importlib.util.find_spec("nudenet")
    if spec is None or spec.origin is None:
        raise ModelMissing("nudenet is not installed")
    return Path(spec.origin).resolve().parent / "320n.onnx"


def _rgb(image: Image.Image) -> Image.Image:
    """`image` in RGB, not copied when it is already (the analysis' images are)."""
    return image if image.mode == "RGB" else image.convert("RGB")


class Moderator:
    """nudenet's detector with the model that ships in its package, and tesseract's
    engines (`ocr_engines` at most), each loaded on first use."""

    def __init__(self, ocr_engines: int = 1) -> None:
        self._detector: Any = None
        self._lock = threading.Lock()
        self.model_name: str | None = None
        self._tesseract = Tesseract(ocr_engines)

    def _nude_detector(self) -> Any:
        """The NudeDetector, loaded once per instance on first use (thread-safe)."""
        if self._detector is None:
            with self._lock:
                if self._detector is None:
                    from nudenet import NudeDetector  # cv2 and onnxruntime: load on demand

                    path = packaged_model()
                    if not path.is_file():
                        raise ModelMissing(f"nudenet model missing at {path}")
                    self.model_name = f"nudenet-{package_version('nudenet')}/{path.name}"
                    # NudeDetector's own constructor loads a session of its own with ONNX
                    # Runtime's defaults (a thread pool per core, spinning): built here
                    # instead with ours, it holds one session, not two (about 40 MB less).
                    detector = NudeDetector.__new__(NudeDetector)
                    detector.onnx_session = moderation_session(path)
                    detector.input_width = detector.input_height = INFERENCE_RESOLUTION
                    detector.input_name = detector.onnx_session.get_inputs()[0].name
                    self._detector = detector
        return self._detector

    def labels(self, image: Image.Image) -> list[tuple[str, float]]:
        """(class, best score) of each class detected in `image`, highest score first."""
        from nudenet import nudenet

        detector = self._nude_detector()
        # nudenet expects what cv2.imread returns: an HxWx3 uint8 array in BGR order.
        array = np.ascontiguousarray(np.asarray(_rgb(image))[:, :, ::-1])
        # NudeDetector.detect's steps, its post-processing done on whole arrays.
        blob, _, _, x_pad, y_pad, width, height = nudenet._read_image(array, detector.input_width)
        output = detector.onnx_session.run(None, {detector.input_name: blob})
        scores: dict[str, float] = {}
        for name, score in detections(output[0], x_pad, y_pad, width, height, INFERENCE_RESOLUTION):
            scores[name] = max(score, scores.get(name, 0.0))
        return [
            (name, round(score, 4))
            for name, score in sorted(scores.items(), key=lambda item: -item[1])
        ]

    def text(self, image: Image.Image, language: str, timeout_seconds: float) -> str | None:
        """What tesseract reads in `image` (None: not within the timeout), in this process."""
        return self._tesseract.read(image, language, timeout_seconds)

    def close(self) -> None:
        """Let the model's session and the OCR engines go (they load again on the next use)."""
        with self._lock:
            self._detector = None
        self._tesseract.close()


def detections(
    output: Any, x_pad: int, y_pad: int, width: int, height: int, size: int
) -> list[tuple[str, float]]:
    """(class, score) of each detection the model's output holds, as nudenet's
    `_postprocess` finds them (the same arithmetic, in float32, and the same
    non-maximum suppression), computed on whole arrays instead of row by row.

    `output` is the model's first output, (1, 4 + classes, rows): each row a box's
    centre, size and one score per class; a row counts if its best score is at
    least 0.2. The box is scaled to the padded image and clipped to the image.
    """
    import cv2
    from nudenet import nudenet

    rows = np.transpose(np.squeeze(output))
    best = rows[:, 4:].max(axis=1)
    candidate = best >= 0.2
    kept, scores = rows[candidate], best[candidate]
    if not len(kept):
        return []
    classes = kept[:, 4:].argmax(axis=1)
    x = (kept[:, 0] - kept[:, 2] / 2) * (width + x_pad) / size
    y = (kept[:, 1] - kept[:, 3] / 2) * (height + y_pad) / size
    w = kept[:, 2] * (width + x_pad) / size
    h = kept[:, 3] * (height + y_pad) / size
    x = np.maximum(0, np.minimum(x, width))
    y = np.maximum(0, np.minimum(y, height))
    w, h = np.minimum(w, width - x), np.minimum(h, height - y)
    boxes = np.stack([x, y, w, h], axis=1).tolist()
    names = nudenet.__dict__["__labels"]
    found = cv2.dnn.NMSBoxes(boxes, scores.tolist(), 0.25, 0.45)
    return [(names[classes[i]], float(scores[i])) for i in found]


class Moderates(Protocol):
    """What moderates an image: in this process (`Moderator`) or in the moderation
    service's (`RemoteModerator`)."""

    model_name: str | None

    def labels(self, image: Image.Image) -> list[tuple[str, float]]: ...

    def text(self, image: Image.Image, language: str, timeout_seconds: float) -> str | None: ...

    def close(self) -> None: ...


class RemoteModerator:
    """The moderation model and tesseract in the moderation service's process (`ferry
    moderator`), the way clamd holds the signatures: the worker keeps neither the model
    nor ONNX Runtime, OpenCV or tesseract's engine in its memory. It sends the bounded
    pixels (RGB to label, greyscale to read), which the service handles with the same
    `Moderator`; an unanswered request is `ModerationUnavailable`, which the
    activity's retries wait out."""

    def __init__(self, url: str, timeout_seconds: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.model_name: str | None = None
        self._client = httpx.Client(base_url=self.url, timeout=timeout_seconds)

    def labels(self, image: Image.Image) -> list[tuple[str, float]]:
        rgb = _rgb(image)
        answer = self._post("/labels", rgb, {})
        self.model_name = str(answer["model"])
        return [(str(name), float(score)) for name, score in answer["labels"]]

    def text(self, image: Image.Image, language: str, timeout_seconds: float) -> str | None:
        grey = image if image.mode == "L" else image.convert("L")
        # The request waits out tesseract's own timeout, and a little more.
        answer = self._post(
            "/text", grey, {"language": language, "timeout": timeout_seconds}, timeout_seconds + 10
        )
        text = answer["text"]
        return None if text is None else str(text)

    def _post(
        self, path: str, image: Image.Image, params: dict[str, Any], wait: float | None = None
    ) -> Any:
        """The service's answer for `image`'s raw pixels; `ModerationUnavailable` if none."""
        try:
            response = self._client.post(
                path,
                params={"width": image.width, "height": image.height, **params},
                content=image.tobytes(),
                headers={"content-type": "application/octet-stream"},
                timeout=httpx.USE_CLIENT_DEFAULT if wait is None else wait,
            )
        except httpx.HTTPError as exc:
            raise ModerationUnavailable(f"moderation service at {self.url}: {exc}") from exc
        if response.status_code != 200:
            raise ModerationUnavailable(
                f"moderation service at {self.url} answered {response.status_code}:"
                f" {response.text[:200]}"
            )
        return response.json()

    def close(self) -> None:
        self._client.close()


def moderator(url: str | None) -> Moderates:
    """The moderation service's client when `url` names one, else the model in process."""
    return RemoteModerator(url) if url else Moderator()


def is_nsfw(labels: list[tuple[str, float]], threshold: float) -> bool:
    """Whether an `EXPOSED_CLASSES` label scores at or above `threshold`."""
    return any(name in EXPOSED_CLASSES and score >= threshold for name, score in labels)


def moderation_session(path: Path) -> Any:
    """The model's ONNX Runtime session: one thread per inference, and no spinning.

    Analyses run in parallel in their own threads already; ONNX Runtime's own
    pool would compete with them for the cores, and its threads spin between
    runs, which costs a third more CPU per image for no gain.
    """
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return onnxruntime.InferenceSession(
        str(path), sess_options=options, providers=["CPUExecutionProvider"]
    )


def analysis_images(
    path: Path, content_type: str, limits: MediaLimits
) -> tuple[Image.Image, Image.Image]:
    """An upright RGB image for moderation and a greyscale one for OCR, both bounded."""
    return analysis_images_of(
        decode_upright(path, content_type, limits, limits.ocr_max_side), limits
    )


def analysis_images_of(
    upright: Image.Image, limits: MediaLimits
) -> tuple[Image.Image, Image.Image]:
    """`analysis_images` of an image already decoded upright in sRGB (left as it is: the
    thumbnails may be made of it at the same time)."""
    if upright.mode == "RGBA":
        flat = Image.new("RGB", upright.size, (255, 255, 255))
        flat.paste(upright, mask=upright.getchannel("A"))
        upright = flat
    ocr_image = upright.convert("L")
    ocr_image.thumbnail((limits.ocr_max_side, limits.ocr_max_side), Image.Resampling.LANCZOS)
    # Mostly by a box reduction (an area average, as OpenCV's INTER_AREA that models'
    # inputs are usually shrunk with), bicubic for what is left under a whole factor:
    # 1600x1200 to the model's 320 px in 5 ms instead of 13 with Pillow's default gap.
    side = limits.moderation_max_side
    moderation = upright.resize(fit(upright.size, side), Image.Resampling.BICUBIC, reducing_gap=1.0)
    return moderation, ocr_image


def looks_like_text(image: Image.Image, background_share: float) -> bool:
    """A cheap guess: does one band of brightness cover `background_share` of the image,
    with something (ink) on it? A blank image is not worth an OCR run."""
    if background_share <= 0:
        return True
    # Point sampling: averaging would smooth noise into a false "background".
    sample = image.convert("L").resize((256, 256), Image.Resampling.NEAREST)
    histogram = sample.histogram()
    total = sum(histogram)
    window = max(sum(histogram[start : start + 16]) for start in range(0, 256 - 15))
    return total > 0 and window / total >= background_share and total - window >= MIN_INK_SAMPLES


# Where Debian and Ubuntu (tesseract-ocr-eng), Fedora and Alpine keep tesseract's data.
TESSDATA_DIRS = (
    "/usr/share/tesseract-ocr/5/tessdata",
    "/usr/share/tesseract-ocr/4.00/tessdata",
    "/usr/share/tesseract/tessdata",
    "/usr/share/tessdata",
)


def tessdata() -> str:
    """tesseract's data directory: `TESSDATA_PREFIX`, else the first of `TESSDATA_DIRS`."""
    found = os.environ.get("TESSDATA_PREFIX") or next(
        (d for d in TESSDATA_DIRS if Path(d, "eng.traineddata").is_file()), None
    )
    if found is None:
        raise ModelMissing(f"no tesseract data: set TESSDATA_PREFIX (looked in {TESSDATA_DIRS})")
    return found


class Tesseract:
    """tesseract's engines in this process, each used by one thread at a time.

    An engine loads its language model once (about four times the CPU of reading
    a page, which a `tesseract` run per image paid every time) and is kept for the
    next page. At most `limit` exist, about 15 MB each: one by default, as OCR runs
    on text-like images only and reads one in tens of milliseconds.
    """

    def __init__(self, limit: int = 1) -> None:
        self._slots = threading.BoundedSemaphore(limit)
        self._lock = threading.Lock()
        self._idle: dict[str, list[Any]] = {}

    def read(self, image: Image.Image, language: str, timeout_seconds: float) -> str | None:
        """The text of `image`; None when tesseract did not finish within the timeout."""
        import tesserocr

        with self._slots:
            with self._lock:
                idle = self._idle.setdefault(language, [])
                engine = idle.pop() if idle else None
            if engine is None:
                engine = tesserocr.PyTessBaseAPI(path=tessdata(), lang=language)
            try:
                engine.SetImage(image)
                done = engine.Recognize(timeout=int(timeout_seconds * 1000))
                text: str | None = engine.GetUTF8Text() if done else None
            finally:
                with self._lock:
                    idle.append(engine)
        return text

    def close(self) -> None:
        """End the idle engines; one in use is let go when its read ends."""
        with self._lock:
            engines = [engine for idle in self._idle.values() for engine in idle]
            self._idle.clear()
        for engine in engines:
            engine.End()


def ocr(image: Image.Image, limits: MediaLimits, reader: Moderates) -> str | None:
    """The text tesseract reads in `image`, one line per line; None when it looks like none.

    `reader` runs tesseract: in this process (`Moderator`) or the moderation service's.
    """
    if not looks_like_text(image, limits.ocr_background_share):
        return None
    text = reader.text(image, limits.ocr_language, limits.ocr_timeout_seconds)
    if text is None:  # timed out
        return None
    lines = (" ".join(line.split()) for line in str(text).splitlines())
    return excerpt("\n".join(line for line in lines if line), limits.ocr_text_chars)


def detect_language(text: str, min_letters: int) -> tuple[str | None, float | None]:
    """The most likely language (ISO 639-1) and its probability; None for too little text."""
    if sum(char.isalpha() for char in text) < min_letters:
        return None, None
    with _LANGUAGE_LOCK:
        DetectorFactory.seed = 0  # langdetect samples at random; seeded, it is repeatable
        try:
            languages = detect_langs(text)
        except LangDetectException:
            return None, None
    if not languages:
        return None, None
    return str(languages[0].lang), round(float(languages[0].prob), 4)
