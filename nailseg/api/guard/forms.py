"""Checking a multipart upload (POST /segment-image, /mask, /tryon) before BentoML parses it.

The form must hold one file part named ``image``; every other part is an option, read the way
BentoML reads form fields (JSON where it parses, else text) and checked against the route's
options model, which goes to the handler. A text field named ``image`` is refused: BentoML would take it for a URL to
download the file from, and this service fetches nothing on a client's behalf.
"""

from __future__ import annotations

import json

from pydantic import BaseModel, ValidationError
from starlette.datastructures import Headers, UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from nailseg.errors import ErrorCode

FILE_FIELD = "image"
MAX_PARTS = 32

Problem = tuple  # (ErrorCode, message[, details]), as the validation layer reports it


async def check_form(body: bytes, headers: list[tuple[bytes, bytes]], options: type[BaseModel]
                     ) -> tuple[Problem | None, BaseModel | None]:
    """(problem, the options validated): one of them is None."""
    async def stream():
        yield body

    try:
        form = await MultiPartParser(Headers(raw=headers), stream(), max_files=MAX_PARTS,
                                     max_fields=MAX_PARTS).parse()
    except MultiPartException as e:
        return (ErrorCode.INVALID_REQUEST, f"the multipart body cannot be read ({e.message})"), None
    try:
        files = form.getlist(FILE_FIELD)
        if not files or not isinstance(files[0], UploadFile):
            return (ErrorCode.INVALID_REQUEST, f"send the photo as a file part named '{FILE_FIELD}'", [
                {"field": FILE_FIELD, "problem": "a file part is required"}]), None
        if len(files) > 1:
            return (ErrorCode.INVALID_REQUEST, f"send one '{FILE_FIELD}' file", [
                {"field": FILE_FIELD, "problem": "more than one file"}]), None
        fields = {}
        for key, value in form.multi_items():
            if key == FILE_FIELD:
                continue
            if key in fields:  # BentoML would read a list where the model has one value
                return (ErrorCode.INVALID_REQUEST, f"{key}: sent more than once; send each option once", [
                    {"field": key, "problem": "sent more than once"}]), None
            if isinstance(value, UploadFile):
                value = (await value.read()).decode(errors="replace")
            try:
                fields[key] = json.loads(value)
            except ValueError:
                fields[key] = value
    finally:
        await form.close()
    try:
        return None, options.model_validate(fields)
    except ValidationError as e:
        details = [{"field": ".".join(str(p) for p in err["loc"]) or "form", "problem": err["msg"]}
                   for err in e.errors(include_url=False, include_input=False, include_context=False)]
        return (ErrorCode.INVALID_REQUEST, "; ".join(f"{d['field']}: {d['problem']}" for d in details[:3]),
                details), None
