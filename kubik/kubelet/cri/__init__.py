"""The Container Runtime Interface (CRI v1) as Python gRPC stubs, and a client.

`api.proto` is kubik's trimmed copy of Kubernetes' CRI definition (see its
header); `api_pb2` / `api_pb2_grpc` are generated from it by `generate.sh`
and checked in. Use `client.RuntimeClient` to talk to a runtime socket.
"""
