# mallory: spray every port of the relay's range with RTP-looking packets (PT 8, a marker
# in the payload) and count what comes back; bounded in time and rate.
import socket, struct, sys, time
relay, first, last, secs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 0))
s.setblocking(False)
sent = received = seq = 0
end = time.monotonic() + secs
while time.monotonic() < end:
    for port in range(first, last + 1):
        head = struct.pack("!BBHII", 0x80, 8, seq & 0xFFFF, (seq * 160) & 0xFFFFFFFF, 0x4D414C4C)
        s.sendto(head + b"MALLORY" + b"\xd5" * 153, (relay, port))
        sent += 1
    seq += 1
    while True:
        try:
            s.recvfrom(2048)
            received += 1
        except (BlockingIOError, ConnectionRefusedError):
            break
    time.sleep(0.02)
print(f"mallory sent {sent} packets to ports {first}-{last}, received {received} back")
