#!/usr/bin/env python3
"""sd_notify_listen.py SOCKET LOG [FILE]: stands in for systemd's notify
socket (sd_notify(3)): binds an AF_UNIX datagram socket at SOCKET and appends
each message to LOG, one "field field ..." line per datagram.  When a message
carries READY=1 and FILE is given, the line also says whether FILE existed at
that moment ("file=yes"/"file=no"), so a test can tell readiness came after
the work, not before.  Runs until killed."""
import os, socket, sys

path, log = sys.argv[1], sys.argv[2]
check = sys.argv[3] if len(sys.argv) > 3 else None
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
os.chmod(path, 0o777)
print("ready", flush=True)
with open(log, "a", buffering=1) as out:
    while True:
        msg = s.recv(4096).decode(errors="replace").strip().replace("\n", " ")
        if check and "READY=1" in msg.split():
            msg += " file=" + ("yes" if os.path.exists(check) else "no")
        out.write(msg + "\n")
