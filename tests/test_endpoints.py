"""Each route's handler takes its route's model, bound by reference in one registry (nailseg/api/endpoints.py),
and BentoML's API method of a route is generated from that model (no field or default written twice)."""

from __future__ import annotations

import inspect
import typing
from pathlib import Path

from pydantic import BaseModel
from starlette.requests import Request

from nailseg.api import endpoints
from nailseg.api.deps import Call, Deps
from nailseg.api.routes import ROUTES


def _hints(handler) -> dict[str, object]:
    hints = typing.get_type_hints(handler)
    return {name: hints[name] for name in inspect.signature(handler).parameters}


def test_every_route_has_one_handler_by_reference():
    assert set(endpoints.HANDLERS) == set(ROUTES)
    assert all(inspect.iscoroutinefunction(h) for h in endpoints.HANDLERS.values())


def test_each_handler_takes_its_routes_model_and_nothing_else_from_the_request():
    for name, route in ROUTES.items():
        hints = _hints(endpoints.HANDLERS[name])
        assert next(iter(hints.values())) is Deps, name  # its collaborators first
        models = [h for h in hints.values() if isinstance(h, type) and (issubclass(h, BaseModel) or h is route.model)]
        if route.model is None:
            assert models == [], name
            assert list(hints.values())[1:] == [Request], name
            continue
        assert hints["request"] is route.model and models == [route.model], name
        assert hints["call"] is Call, name
        if route.form is not None:
            assert hints["image"] is Path, name


def test_the_api_methods_parameters_are_their_routes_models_fields():
    for route in endpoints.api_routes():
        method = endpoints.api_method(route)
        assert method.route == route.path and method.ctx_param == "ctx"
        fields = method.input_spec.model_fields
        photo = ["image"] if route.form is not None else []
        assert list(fields) == photo + list(route.model.model_fields), route.name
        for name, field in route.model.model_fields.items():
            if not field.is_required():
                assert fields[name].default == field.default, (route.name, name)
            assert fields[name].description == field.description, (route.name, name)
        assert method.input_spec.mime_type() == ("multipart/form-data" if photo else "application/json")


def test_the_service_serves_one_api_method_per_body_route():
    names = {r.name.replace("-", "_") for r in endpoints.api_routes()}
    assert names == {"segment", "segment_image", "mask", "tryon", "segment_batch", "initialize"}
