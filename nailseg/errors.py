"""Error codes the API returns: stable strings clients can branch on, each with its HTTP status."""

from __future__ import annotations

from enum import Enum


class ErrorCode(str, Enum):
    def __new__(cls, value: str, status: int):
        member = str.__new__(cls, value)
        member._value_ = value
        member.status = status
        return member

    # the request itself
    INVALID_JSON = ("INVALID_JSON", 400)  # body is not JSON, or not a JSON object
    INVALID_REQUEST = ("INVALID_REQUEST", 422)  # missing, unknown or wrongly typed fields, values out of range
    BODY_TOO_LARGE = ("BODY_TOO_LARGE", 413)
    UNSUPPORTED_MEDIA_TYPE = ("UNSUPPORTED_MEDIA_TYPE", 415)
    NOT_FOUND = ("NOT_FOUND", 404)
    METHOD_NOT_ALLOWED = ("METHOD_NOT_ALLOWED", 405)
    INVALID_TENSOR = ("INVALID_TENSOR", 400)  # an Open Inference Protocol request: a wrong tensor, datatype or shape
    # keys and limits
    UNAUTHORIZED = ("UNAUTHORIZED", 401)  # no API key, or one that is not configured
    FORBIDDEN = ("FORBIDDEN", 403)  # a valid key without the right (an API key on an admin endpoint)
    RATE_LIMITED = ("RATE_LIMITED", 429)  # over limits.rate_limit_per_minute (Retry-After)
    # an image
    INVALID_BASE64 = ("INVALID_BASE64", 400)
    EMPTY_IMAGE = ("EMPTY_IMAGE", 400)
    NOT_AN_IMAGE = ("NOT_AN_IMAGE", 400)
    UNSUPPORTED_FORMAT = ("UNSUPPORTED_FORMAT", 415)
    TRUNCATED_IMAGE = ("TRUNCATED_IMAGE", 400)
    IMAGE_TOO_LARGE = ("IMAGE_TOO_LARGE", 413)  # pixel limit: decompression bombs
    IMAGE_TOO_COMPLEX = ("IMAGE_TOO_COMPLEX", 413)  # too many JPEG scans or header segments: CPU bombs
    # batches and features
    EMPTY_BATCH = ("EMPTY_BATCH", 422)
    BATCH_TOO_LARGE = ("BATCH_TOO_LARGE", 413)
    BATCH_PIXELS_TOO_LARGE = ("BATCH_PIXELS_TOO_LARGE", 413)  # limits.max_batch_pixels, from the headers
    FEATURE_DISABLED = ("FEATURE_DISABLED", 403)  # batch processing or confidence turned off in config
    # the server
    MODEL_NOT_READY = ("MODEL_NOT_READY", 503)
    RUNNER_UNAVAILABLE = ("RUNNER_UNAVAILABLE", 503)
    OVERLOADED = ("OVERLOADED", 503)  # limits.max_inflight_images reached (Retry-After)
    INTERNAL_ERROR = ("INTERNAL_ERROR", 500)


class ApiError(Exception):
    def __init__(self, code: ErrorCode, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def status(self) -> int:
        return self.code.status
