"""The job service over the network: ``largegraph serve --http``, its bearer tokens, the remote CLI
and the status page.

The HTTP server is one more client of the workspace's job store: it queues jobs through the same
validation as ``submit`` and reads the same rows and run directories as ``status`` and ``logs``;
the daemon's claim/run/retry loop runs beside it, unchanged, in the same process.

Modules (above ``largegraph.jobs``, below its CLI front end):
    settings  what one server serves and how strictly (workspace, data roots, body cap); a store per request
    auth      tokens (created by the CLI, stored as digests), the bearer header, the page's cookie, CSRF
    replies   the API's request and reply models (each route's ``response_model``)
    api       the versioned JSON API under /v1
    pages     the status page: sign-in form, job list, job page (static files, no build step)
    app       assembles the ASGI app: routes, error handling, body-size cap, security headers
    run       ``serve --http``: bind checks, TLS, the uvicorn thread beside the daemon
    client    ``RemoteJobService``: the job service through the API (httpx)
    cli       ``token create|list|revoke``, the HTTP options of ``serve`` and ``--server``
"""
