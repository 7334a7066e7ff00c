"""The Open Inference Protocol (KServe v2 REST, what Triton, KServe, OpenVINO Model Server and MLServer speak),
one module a job: ``types`` (its names, JSON models, the parsed request, its error), ``decoding`` (bytes
into an ``InferRequest``), ``encoding`` (results into bytes), ``metadata`` (the other routes' bodies),
and ``serving`` (the HTTP handlers, on the API's collaborators). All but ``serving`` know no HTTP
framework; none imports torch.

- `decoding.parse_infer_request(body, header_length, max_images=...)` reads `POST /v2/models/unet/infer` in
  either encoding the protocol allows: plain JSON tensors, or the binary tensor data extension (a JSON header of
  `Inference-Header-Content-Length` bytes, then each binary input's bytes in the order of `inputs`, each
  input saying its size in `parameters.binary_data_size`; a BYTES element is a 4-byte little-endian length,
  then that many bytes). Exactly one input is taken:
  * `image`, `BYTES` `[N]`: encoded photos (JPEG, PNG, BMP) -> `InferRequest.images: list[bytes]`;
  * `pixels`, `UINT8` `[N, H, W, 3]`: decoded RGB -> `InferRequest.pixels: np.ndarray` (uint8; a read-only
    view on the body when sent binary).
  Request `parameters` may carry `threshold` (a number in [0, 1]) and `binary_data_output` (bool); requested
  `outputs` name `mask`, `probability` or `nail_count`, each with an optional `parameters.binary_data`.
  With no `outputs`, the answer holds `mask` alone (`probability` and `nail_count` are returned only when
  asked for by name).
- `encoding.encode_infer_response(request, ...)` writes the answer: `mask` (`BYTES` `[N]` PNGs for `image`,
  `UINT8` `[N, H, W]` 0/1 for `pixels`), `probability` (`FP32` `[N, h, w]`), `nail_count` (`INT32` `[N]`); each as JSON
  `data` or as binary after the JSON header, as the request asked (an output's `binary_data`, else the
  request's `binary_data_output`, else JSON: tritonclient asks binary by default), with the
  `Inference-Header-Content-Length` header when any output is binary.
- `metadata.server_metadata`, `model_metadata`, `model_config` (Triton's model configuration, which
  perf_analyzer reads), and the small health bodies build the JSON of the other routes.
- Every malformed request raises `OipError` (an HTTP status and a message); `OipError.body()` is the
  protocol's error shape, `{"error": "..."}`.

Photos in JSON. In the protocol a `BYTES` element in JSON is a string, and a photo is not text (tritonclient
and KServe's SDK refuse to put non-UTF-8 bytes in JSON at all). So `image` in JSON is accepted only when the
input declares `"parameters": {"content_type": "base64"}` (MLServer's convention for base64 `BYTES`), each
element being one photo in standard base64; a JSON `image` without it is a 400 that says so. The binary
tensor data extension is the way meant for photos: no base64, and what tritonclient sends by default.
Symmetrically, a `mask` of PNGs returned as JSON is base64 text, and its output says
`"parameters": {"content_type": "base64"}`.

For the routes that use it:
- errors go out as `Content-Type: application/json` exactly (KServe's client compares the whole header
  before it reads `error`); `EncodedResponse.headers` gives an answer's Content-Type and header length;
- `EXTENSIONS` names `model_configuration`: serve `model_config` at `/v2/models/unet/config` and at
  `/v2/models/unet/versions/{v}/config` (perf_analyzer's `-x v` reads metadata and config there);
- KServe's client reads `{"live": ...}` and `{"ready": ...}` from the health routes (`live_body`,
  `ready_body`); tritonclient reads only the status.
"""
