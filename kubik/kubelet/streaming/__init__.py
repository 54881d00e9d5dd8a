"""The node's streaming: exec, attach and port-forward between kubectl and containerd.

containerd answers CRI Exec/Attach/PortForward with a one-shot URL on its own
streaming server, which speaks SPDY/3.1 and WebSocket `v4.channel.k8s.io`.
kubectl speaks SPDY (up to 1.29 for exec/attach, 1.30 for port-forward),
WebSocket `v5.channel.k8s.io` (exec/attach from 1.30) and SPDY tunnelled in
WebSocket (port-forward from 1.31). The API server relays the client's bytes
to the node unchanged; the node bridges what containerd cannot speak:

- `relay`: HTTP upgrade requests and byte pumping, for what needs no
  translation (SPDY, WebSocket v1–v4 straight to containerd);
- `websocket` / `spdy`: the two framings;
- `remotecommand`: WebSocket v5 (or v4) on one side, SPDY v4 on the other;
- `portforward`: SPDY frames carried in WebSocket messages, unwrapped.
"""
