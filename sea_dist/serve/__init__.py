"""The read-only registry HTTP API: one FastAPI app, run by uvicorn or deployed on Ray Serve.

- :mod:`~sea_dist.serve.app`: ``create_app(registry)``, the FastAPI app
  (OpenAPI at ``/openapi.json``).
- :mod:`~sea_dist.serve.guard`: the request limits and the JSON error document,
  an ASGI middleware, so they hold under any ASGI server.
- :mod:`~sea_dist.serve.server`: ``make_server`` and ``BackgroundServer`` on
  uvicorn (``sea-dist registry serve``), with the HTTP-level refusals answered in JSON too.
- :mod:`~sea_dist.serve.serve_deployment`: the same app as a Ray Serve
  deployment (``infra/ray/serve-registry.yaml``, whose application builder is
  :func:`sea_dist.cli.serve_app.build`).

Binds 127.0.0.1 by default. Only GET and HEAD; every answer but a file download is JSON.

Endpoints::

    GET /v1/health                                    {"status": "ok", "registry": url}
    GET /v1/names                                     {"names": [name, ...]}
    GET /v1/names/{name}/versions                     {"name", "versions": [summary, ...]}
          ?model_id=ID&dataset=FPR_PREFIX&after=ISO&before=ISO      (all optional)
    GET /v1/names/{name}/aliases                      {"name", "aliases": {alias: version}}
    GET /v1/names/{name}/aliases/{alias}/history      {"name", "alias", "history": [move, ...]}
    GET /v1/resolve/{ref}                             {"name", "version", "sha256", "ref"}
          ref: name | name@latest | name@alias | name@7 | sha256:<hex prefix> (URL-encoded)
    GET /v1/artifacts/{name}/{selector}/manifest      the manifest JSON (selector: 7, latest, alias)
    GET /v1/artifacts/{name}/{selector}/files/{file}  raw bytes of manifest.json or
                                                      projections.safetensors
    GET /v1/diff?a={ref}&b={ref}                      diff JSON (see sea_dist.registry.diff)
    GET /openapi.json                                 the OpenAPI document of the above

Downloads carry ``X-Content-SHA256`` (hex sha256 of the body, taken from the manifest for the
projections), ``ETag`` and ``X-Artifact-Ref``; clients verify the body against it.

Errors: ``{"error": {"status": N, "type": "...", "message": "..."}}`` with 400 (malformed name,
reference, parameter or path traversal attempt, malformed request), 404 (unknown path, name,
version, alias, or a file missing from a published version: type ``MissingArtifactFileError``),
405 (any method but GET/HEAD, unknown methods included), 413 (a request body), 414 (URL over
2048 characters, or a request line over 64 KiB), 431 (a header line over 64 KiB or more than 100
headers), 505 (an HTTP version other than 1.0 and 1.1), 500 (a damaged artifact, or an internal
error whose details go to the server log only). Requests the HTTP parser itself refuses get the
same JSON document under ``sea-dist registry serve``; behind Ray Serve's proxy those few (a
request that is not HTTP, a request head over Ray's parser limit) get the proxy's own answer.
"""
