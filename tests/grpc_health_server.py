#!/usr/bin/env python3
"""A real gRPC health server for berth's tests: grpcio's own
grpc_health.v1.health.HealthServicer (PyPI grpcio + grpcio-health-checking),
nothing of berth's.

    grpc_health_server.py [--port N] [--require-auth TOKEN]

Listens on 127.0.0.1 (port 0: a free one) and prints `listening on PORT`
once it serves. Statuses: "" and "app.Ready" SERVING, "app.Down"
NOT_SERVING; any other service is unknown (NOT_FOUND). SIGUSR1 makes "" and
"app.Ready" NOT_SERVING, SIGUSR2 SERVING again (berth forwards both to its
app). With --require-auth, a call without the metadata
`authorization: Bearer TOKEN` fails with UNAUTHENTICATED. SIGTERM stops it.
"""

import argparse
import signal
import sys
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc


class RequireAuth(grpc.ServerInterceptor):
    def __init__(self, token):
        self.want = "Bearer " + token

    def intercept_service(self, continuation, details):
        metadata = dict(details.invocation_metadata)
        if metadata.get("authorization") == self.want:
            return continuation(details)

        def deny(request, context):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong authorization")

        return grpc.unary_unary_rpc_method_handler(deny)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--require-auth")
    args = parser.parse_args()

    interceptors = [RequireAuth(args.require_auth)] if args.require_auth else []
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), interceptors=interceptors)
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    status = health_pb2.HealthCheckResponse
    servicer.set("app.Down", status.NOT_SERVING)

    def serve(state):
        servicer.set("", state)
        servicer.set("app.Ready", state)

    serve(status.SERVING)
    port = server.add_insecure_port("127.0.0.1:%d" % args.port)
    server.start()

    signal.signal(signal.SIGUSR1, lambda *_: serve(status.NOT_SERVING))
    signal.signal(signal.SIGUSR2, lambda *_: serve(status.SERVING))
    signal.signal(signal.SIGTERM, lambda *_: (server.stop(0), sys.exit(0)))
    print("listening on %d" % port, flush=True)
    while True:
        signal.pause()


if __name__ == "__main__":
    main()
