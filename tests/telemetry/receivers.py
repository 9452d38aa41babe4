"""OTLP trace receivers on loopback, decoding with the official ``opentelemetry-proto`` classes.

``HttpReceiver`` speaks OTLP/HTTP (protobuf, ``POST /v1/traces``, gzip or
not; any other path is a 404, as Phoenix and Jaeger answer ``/v1/metrics``);
``GrpcReceiver`` speaks OTLP/gRPC (``TraceService/Export``). Both keep every
decoded span, flattened, with its resource's and scope's names.
"""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span


@dataclass(frozen=True)
class Received:
    span: Span
    service: str
    scope: str

    @property
    def name(self) -> str:
        return self.span.name

    @property
    def span_id(self) -> bytes:
        return self.span.span_id

    @property
    def parent_id(self) -> bytes:
        return self.span.parent_span_id

    @property
    def attributes(self) -> dict[str, Any]:
        return attributes(self.span.attributes)


def value(v: AnyValue) -> Any:
    kind = v.WhichOneof("value")
    if kind == "array_value":
        return tuple(value(x) for x in v.array_value.values)
    return getattr(v, kind) if kind else None


def attributes(kvs: Any) -> dict[str, Any]:
    return {kv.key: value(kv.value) for kv in kvs if isinstance(kv, KeyValue)}


class _Store:
    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self.lock = threading.Lock()

    def add(self, req: trace_service_pb2.ExportTraceServiceRequest) -> None:
        with self.lock:
            self.requests.append(req)

    def spans(self) -> list[Received]:
        out = []
        with self.lock:
            for req in self.requests:
                for rs in req.resource_spans:
                    service = str(attributes(rs.resource.attributes).get("service.name"))
                    for ss in rs.scope_spans:
                        out.extend(Received(s, service, ss.scope.name) for s in ss.spans)
        return out


class HttpReceiver(_Store):
    """``with HttpReceiver() as rx: ... rx.url ... rx.spans()``."""

    def __init__(self) -> None:
        super().__init__()
        store = self
        self.paths: list[str] = []
        self.content_types: list[str] = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                store.paths.append(self.path)
                store.content_types.append(self.headers.get("Content-Type", ""))
                if self.path != "/v1/traces":  # no metrics or logs endpoint, as Phoenix and Jaeger
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                req = trace_service_pb2.ExportTraceServiceRequest()
                req.ParseFromString(body)
                store.add(req)
                reply = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> HttpReceiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


class GrpcReceiver(_Store):
    """``with GrpcReceiver() as rx: ... rx.url ... rx.spans()``."""

    def __init__(self) -> None:
        import grpc

        super().__init__()
        store = self

        class Servicer(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(
                self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
            ) -> trace_service_pb2.ExportTraceServiceResponse:
                store.add(request)
                return trace_service_pb2.ExportTraceServiceResponse()

        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Servicer(), self._server)
        self.port = self._server.add_insecure_port("127.0.0.1:0")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> GrpcReceiver:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop(grace=None).wait()


def walk(spans: list[Received], root: Received) -> Iterator[tuple[int, Received]]:
    """The tree under ``root``, depth first, with depths."""

    def rec(node: Received, depth: int) -> Iterator[tuple[int, Received]]:
        yield depth, node
        for kid in sorted(
            (s for s in spans if s.parent_id == node.span_id),
            key=lambda s: s.span.start_time_unix_nano,
        ):
            yield from rec(kid, depth + 1)

    return rec(root, 0)
