# count-rtp.sh WHO PORT FROM MIN [MIN_AFTER_REINVITE]
# Stops this host's capture (dumpcap, its pid in /tmp/capture.pid; already stopped on a
# later count) and counts in it: the RTP packets (PT 8, PCMA) that arrived on the media
# PORT from FROM (a display filter on the sender: the relay's address and ports), those
# of them after the re-INVITE (CSeq 2), the RTP this host sent from PORT, and the packets
# carrying the sprayer's marker. Exits 0 when at least MIN arrived, MIN_AFTER_REINVITE of
# them after the re-INVITE, and no marker.
who=$1 port=$2 from=$3 min=$4 min_after=${5:-0}
pid=$(cat /tmp/capture.pid)
kill "$pid" 2>/dev/null
while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
cap=/tmp/capture.pcapng
rtp="udp.dstport == $port && rtp.p_type == 8 && ($from)"
n() { tshark -r "$cap" -d "udp.port==$port,rtp" -Y "$1" 2>/dev/null | wc -l; }
got=$(n "$rtp")
sent=$(n "udp.srcport == $port && rtp.p_type == 8")
t=$(tshark -r "$cap" -Y 'sip.Method == "INVITE" && sip.CSeq.seq == 2' -T fields -e frame.time_relative 2>/dev/null | head -n 1)
after=0
[ -n "$t" ] && after=$(n "$rtp && frame.time_relative > $t")
marker=$(n 'frame contains "MALLORY"')
reinvite=
[ -n "$5" ] && reinvite=", $after of them after the re-INVITE"
echo "$who: sent $sent RTP packets; received $got from the relay$reinvite; sprayer's packets received: $marker"
[ "$got" -ge "$min" ] && [ "$after" -ge "$min_after" ] && [ "$marker" -eq 0 ]
