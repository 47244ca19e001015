# A WSGI app for gunicorn: the --runtime-limits tests count the workers
# gunicorn starts from WEB_CONCURRENCY; bench/runtime-limits gives each
# worker a footprint of BALLAST_MIB (as a real app's imports and caches
# would) to measure what the worker count costs under a memory limit.
import os

_ballast = b"x" * (int(os.environ.get("BALLAST_MIB", "0")) << 20)


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok\n"]
