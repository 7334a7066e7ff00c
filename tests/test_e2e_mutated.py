"""End to end, against a real `bentoml serve` (the shared `server` fixture): a seeded corpus of damaged
images gets 200 or a clean 4xx, never a 5xx; the service's own OpenAPI is fuzzed with schemathesis; the
cost bounds (pixel budget of a batch, strict types) hold over HTTP."""

from __future__ import annotations

import collections
import concurrent.futures
import io

import httpx
import pytest
from support.mutated_images import expected, mutated_corpus, seed_files
from PIL import Image
from support.checks import assert_error, b64, png_array

from nailseg.api.routes import route_of
from nailseg.errors import ErrorCode

pytestmark = pytest.mark.e2e

CORPUS = mutated_corpus(300)
CORPUS_SEED_PHOTO = seed_files()["jpeg"][0]


def test_mutated_corpus_gets_200_or_a_clean_4xx_never_a_5xx(server):
    def send(i: int):
        _, raw = CORPUS[i]
        body = {"image_data": b64(raw), "return_contours": i % 2 == 0, "return_confidence": i % 3 == 0,
                "return_visualizations": i % 5 == 0}
        return i, httpx.post(server.url + "/api/unet/segment", json=body, headers={"X-Request-ID": f"mutant-{i}"},
                             timeout=120)

    outcomes = collections.Counter()
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        for i, resp in pool.map(send, range(len(CORPUS))):
            name = CORPUS[i][0]
            assert resp.status_code < 500, f"{name}: {resp.status_code} {resp.text[:300]}"
            body = resp.json()
            assert body["request_id"] == resp.headers["x-request-id"] == f"mutant-{i}", name
            want = expected(CORPUS[i][1])
            if resp.status_code == 200:
                assert png_array(body["mask_data"]).shape == want, name
                outcomes["200"] += 1
            else:
                assert body["success"] is False and body["error"]["code"] == want, f"{name}: {body}"
                assert resp.status_code == ErrorCode(want).status and "Traceback" not in resp.text
                outcomes[f"{resp.status_code} {want}"] += 1
    print(dict(outcomes))
    assert outcomes["200"] > 20 and len(outcomes) >= 3
    # batches of the same files: each bad entry fails alone
    batch = server.post("/api/unet/segment-batch", {"images": [{"image_data": b64(raw)} for _, raw in CORPUS[:4]]})
    assert batch.status_code == 200
    for (name, raw), result in zip(CORPUS[:4], batch.json()["results"]):
        want = expected(raw)
        assert (png_array(result["mask_data"]).shape == want if result["success"]
                else result["error"]["code"] == want), name
    health = server.get("/api/unet/health")
    assert health.status_code == 200 and health.json()["service_healthy"]
    assert "Traceback" not in server.log.read_text()


def _png(width: int, height: int) -> str:
    buf = io.BytesIO()
    Image.new("L", (width, height)).save(buf, format="PNG")
    return b64(buf.getvalue())


def test_a_batch_over_its_pixel_budget_is_refused_from_the_headers(server):
    limit = int(server.env["UNET_LIMITS_MAX_BATCH_PIXELS"])
    side = int((limit // 3) ** 0.5) + 1  # three of these pass the budget; each is under the image limit
    body = assert_error(server.post("/api/unet/segment-batch", {"images": [{"image_data": _png(side, side)}] * 3}),
                        413, "BATCH_PIXELS_TOO_LARGE")
    assert str(limit) in body["error"]["message"]
    ok = server.post("/api/unet/segment-batch", {"images": [{"image_data": _png(side, side)}, {"image_data": "eA=="}]})
    assert ok.status_code == 200 and [r["success"] for r in ok.json()["results"]] == [True, False]


@pytest.mark.parametrize("path, body", [
    ("/segment", {"image_data": "aGk=", "threshold": "0.5"}),
    ("/segment", {"image_data": "aGk=", "return_confidence": 1}),
    ("/segment", {"image_data": 12}),
    ("/segment-batch", {"images": [{"image_data": "aGk="}], "threshold": "1"}),
    ("/segment-batch", {"images": [{"image_data": "aGk="}], "return_contours": "false"}),
    ("/initialize", {"force_reload": "true"}),
    ("/initialize", {"warm_up": 0}),
])
def test_a_string_or_number_where_another_type_belongs_is_422(server, path, body):
    body = assert_error(server.post("/api/unet" + path, body), 422, "INVALID_REQUEST")
    assert body["error"]["details"]


def test_integer_threshold_is_a_number(server):
    photo = _png(64, 48)
    for t in (0, 1):
        resp = server.post("/api/unet/segment", {"image_data": photo, "threshold": t})
        assert resp.status_code == 200 and png_array(resp.json()["mask_data"]).shape == (48, 64)
    assert (png_array(server.post("/api/unet/segment", {"image_data": photo, "threshold": 0}).json()["mask_data"])
            == 255).all()


# ---- schemathesis against the service's own OpenAPI ------------------------------------------
# Checks, all strict: no 5xx ever; every answer's status is one the spec declares for its operation;
# every body, errors included, matches the schema the spec declares for that status; and an error
# body is in the service's error shape with the request id. Besides what schemathesis generates from the
# spec, each POST also gets what the generator never sends (`_off_spec_cases`): a body of the other media
# type (415) and a body over the size limit (413), so the spec must declare those answers too.

EXAMPLES = {"POST /api/unet/initialize": 8}  # each may reload the model: a few are enough
DEFAULT_EXAMPLES = 60


def _off_spec_cases(op, max_body_bytes: int):
    declared = [body.media_type for body in op.body]
    if not declared:
        return
    json_op = declared[0] == "application/json"
    params = {"path_parameters": {"version": "no-such-version"}} if "{version}" in op.path else {}
    yield op.Case(body={"image": b"x"} if json_op else {"image_data": "eA=="},
                  media_type="multipart/form-data" if json_op else "application/json", **params)
    filler = "A" * (max_body_bytes + 1)
    yield op.Case(body={"image_data": filler} if json_op else {"image": filler.encode()}, media_type=declared[0],
                  **params)


def _errors_in_the_error_shape(ctx, response, case):
    if response.status_code >= 400 and case.operation.path.startswith("/api/"):
        body = response.json()
        assert body["success"] is False and body["error"]["code"] and body["error"]["message"], body
        assert body["request_id"] == response.headers["x-request-id"][0], body
    return None


def test_openapi_fuzzing_with_every_check_finds_the_server_and_its_spec_agree(server):
    import schemathesis
    import schemathesis.specs.openapi.checks  # noqa: F401 (registers the OpenAPI checks)
    from hypothesis import HealthCheck, given, settings
    from schemathesis import GenerationMode
    from schemathesis.checks import CHECKS
    from schemathesis.config import SchemathesisConfig

    every = [*CHECKS.get_all(), _errors_in_the_error_shape]  # every check schemathesis has, and ours
    # A photo operation's schema-valid image is any string (or bytes): only decoding says whether it is a
    # photo, so "valid data" may be refused as an image (400, 413, 415); they get every check but positive
    # acceptance. Every other operation gets every check, positive acceptance with its default statuses.
    but_acceptance = [c for c in every if getattr(c, "__name__", "") != "positive_data_acceptance"]
    config = SchemathesisConfig.from_dict({"checks": {
        "negative_data_rejection": {"expected-statuses": ["400", "401", "403", "404", "405", "406", "409", "413",
                                                          "415", "422", "428", "429"]}}})
    schema = schemathesis.openapi.from_url(server.url + "/docs.json", config=config)
    photo = b64(CORPUS_SEED_PHOTO)
    max_body_bytes = int(server.env["UNET_LIMITS_MAX_BODY_MB"]) * 2**20
    good_bodies = {"/api/unet/segment": {"image_data": photo, "return_confidence": True, "return_contours": True,
                                         "return_visualizations": True},
                   "/api/unet/segment-batch": {"images": [{"image_data": photo}, {"image_data": "eA=="}],
                                               "return_contours": True}}
    failures, statuses = [], collections.defaultdict(set)
    for result in schema.get_all_operations():
        op = result.ok()
        route = route_of(op.path)
        checks = but_acceptance if route is not None and route.images else every

        # negative data for all but multipart forms: a form cannot carry a type (an empty array is no part at
        # all, a number is text), so "schema-violating" form data is often the same request as valid data;
        # the forms' own refusals are tested in test_e2e_service.py and by _off_spec_cases below
        multipart = any(b.media_type == "multipart/form-data" for b in op.body)
        strategy = op.as_strategy(GenerationMode.POSITIVE)
        if not multipart:
            strategy = strategy | op.as_strategy(GenerationMode.NEGATIVE)

        @given(case=strategy)
        @settings(max_examples=EXAMPLES.get(op.label, DEFAULT_EXAMPLES), deadline=None, database=None,
                  derandomize=True, suppress_health_check=list(HealthCheck))
        def fuzz(case):
            statuses[op.label].add(case.call_and_validate(checks=checks, timeout=120).status_code)

        try:
            fuzz()
            extra = list(_off_spec_cases(op, max_body_bytes))
            if op.path in good_bodies:  # a success, so that its schema is checked too
                extra.append(op.Case(body=good_bodies[op.path], media_type="application/json"))
            for case in extra:  # off the spec on purpose: no acceptance to check
                statuses[op.label].add(case.call_and_validate(checks=but_acceptance, timeout=120).status_code)
        except (Exception, BaseExceptionGroup) as e:  # schemathesis' failures are groups; report every operation
            failures.append(f"{op.label}: {str(e)[:2000]}")
    print({label: sorted(s) for label, s in statuses.items()})
    assert not failures, "\n\n".join(failures)
    assert {200, 422} <= statuses["POST /api/unet/segment"] and 200 in statuses["POST /api/unet/segment-batch"]
    for label, seen in statuses.items():
        # the protocol's infer reads its own framing from any media type: a multipart body is a 400 there
        assert not label.startswith("POST") or {413, 415 if "/v2/" not in label else 400} <= seen, (label, seen)
    assert server.get("/api/unet/health").json()["service_healthy"]


# ---- what already held and must keep holding ---------------------------------------------------

def test_a_chunked_body_over_the_limit_gets_413(server):
    def chunks():
        yield b'{"image_data": "'
        for _ in range(int(server.env["UNET_LIMITS_MAX_BODY_MB"]) * 16 + 1):
            yield b"A" * 65536
        yield b'"}'

    resp = httpx.post(server.url + "/api/unet/segment", content=chunks(), timeout=120,
                      headers={"content-type": "application/json"})
    assert "content-length" not in {k.lower() for k in resp.request.headers}  # really chunked
    assert_error(resp, 413, "BODY_TOO_LARGE")


@pytest.mark.parametrize("given", ["a b", "x" * 200, "<script>", "id\u00e9"])
def test_a_request_id_that_is_not_sane_is_replaced(server, given):
    resp = httpx.post(server.url + "/api/unet/segment", json={"image_data": "!!"},
                      headers={"X-Request-ID": given.encode("utf-8")}, timeout=60)
    rid = resp.json()["request_id"]
    assert resp.status_code == 400 and rid != given and rid == resp.headers["x-request-id"] and len(rid) == 36
