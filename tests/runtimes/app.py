# A WSGI app for gunicorn: the --runtime-limits tests count the workers
# gunicorn starts from WEB_CONCURRENCY and measure their memory.
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok\n"]
