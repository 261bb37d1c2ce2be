# ng-ping.py [offer] HOST PORT [HOST PORT]...: send rtpengine's ng `ping` (bencode over
# UDP) to each control port and say whether `pong` came back within 1 s; with `offer`,
# send each an `offer` for a new call instead and print the reply's result and reason.
import os, socket, sys


def bencode(v):
    if isinstance(v, dict):
        return b"d" + b"".join(bencode(k) + bencode(v[k]) for k in sorted(v)) + b"e"
    if isinstance(v, list):
        return b"l" + b"".join(bencode(x) for x in v) + b"e"
    v = v.encode()
    return str(len(v)).encode() + b":" + v


def field(data, key):
    """The string value of `key` in a flat bencoded reply ("" when absent)."""
    k = f"{len(key)}:{key}".encode()
    if k not in data:
        return ""
    n, _, rest = data.split(k, 1)[1].partition(b":")
    return rest[: int(n)].decode(errors="replace") if n.isdigit() else ""


offer = sys.argv[1] == "offer"
args = sys.argv[2:] if offer else sys.argv[1:]
sdp = "v=0\r\no=probe 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 8\r\n"
for i in range(0, len(args) - 1, 2):
    host, port = args[i], int(args[i + 1])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1.0)
    cookie = f"{os.getpid()}-{i}"  # ng caches a reply per cookie: a fresh one for each request
    if offer:
        msg = {"command": "offer", "call-id": f"probe-{i}@ng-ping", "from-tag": "probe", "sdp": sdp}
    else:
        msg = {"command": "ping"}
    s.sendto(cookie.encode() + b" " + bencode(msg), (host, port))
    try:
        data, _ = s.recvfrom(65535)
    except (socket.timeout, ConnectionRefusedError):
        print(f"{host}:{port}: no answer")
        continue
    if not data.startswith(f"{cookie} ".encode()):
        print(f"{host}:{port}: answered another cookie: {data!r}")
    elif offer:
        print(f"{host}:{port}: offer {field(data, 'result')} {field(data, 'error-reason')}".rstrip())
    else:
        print(f"{host}:{port}: " + ("pong" if field(data, "result") == "pong" else f"answered {data!r}"))
