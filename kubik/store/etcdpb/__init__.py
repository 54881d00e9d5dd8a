"""Python bindings for the part of etcd's v3 gRPC API that kubik uses.

`kv.proto` (package `mvccpb`) and `etcd.proto` (package `etcdserverpb`) are
kubik's own trimmed definitions: same package, service, method names and
field numbers as etcd, so they speak etcd's wire protocol, but without the
gogoproto and HTTP-gateway annotations and without the RPCs kubik never
calls. They live in two files because a proto package names the gRPC method
path (`/etcdserverpb.KV/Range`) and the message types (`mvccpb.KeyValue`).

The generated `*_pb2.py` / `etcd_pb2_grpc.py` files are checked in. After
editing a .proto, regenerate them from the repository root with:

    .venv/bin/python -m grpc_tools.protoc -I . --python_out=. --grpc_python_out=. \\
        kubik/store/etcdpb/kv.proto kubik/store/etcdpb/etcd.proto
    rm -f kubik/store/etcdpb/kv_pb2_grpc.py   # kv.proto has no services

Running protoc with `-I .` makes the generated imports absolute
(`from kubik.store.etcdpb import kv_pb2`), so nothing needs patching.
"""
