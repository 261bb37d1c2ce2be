# ng-ping.py HOST PORT [HOST PORT]...: send rtpengine's ng `ping` (bencode over UDP) to each
# control port and say whether `pong` came back within 1 s.
import socket, sys
for i in range(1, len(sys.argv) - 1, 2):
    host, port = sys.argv[i], int(sys.argv[i + 1])
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1.0)
    cookie = f"ping{i}"
    s.sendto(f"{cookie} d7:command4:pinge".encode(), (host, port))
    try:
        data, _ = s.recvfrom(2048)
        pong = data.startswith(f"{cookie} ".encode()) and b"6:result4:pong" in data
        print(f"{host}:{port}: " + ("pong" if pong else f"answered {data!r}"))
    except (socket.timeout, ConnectionRefusedError):
        print(f"{host}:{port}: no answer")
