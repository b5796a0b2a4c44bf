"""Browse _shelly._tcp and _http._tcp with python-zeroconf on 127.0.0.1.

Run by netns_test.go inside a network namespace. Prints one JSON line once
every type shows the expected number of instances (argv[1]) and each is
resolved; then reads an instance name from stdin (the Go side has removed
it) and prints a second line once the goodbyes removed it from both types.
"""

import json
import sys
import threading
import time

from zeroconf import IPVersion, ServiceBrowser, ServiceInfo, ServiceListener, Zeroconf

TYPES = ["_shelly._tcp.local.", "_http._tcp.local."]
want = int(sys.argv[1])
cond = threading.Condition()
found = {t: set() for t in TYPES}
removed = {t: set() for t in TYPES}


class Listener(ServiceListener):
    def add_service(self, zc, type_, name):
        with cond:
            found[type_].add(name)
            cond.notify_all()

    def remove_service(self, zc, type_, name):
        with cond:
            removed[type_].add(name)
            cond.notify_all()

    def update_service(self, zc, type_, name):
        pass


def wait(pred, timeout):
    end = time.monotonic() + timeout
    with cond:
        while not pred():
            left = end - time.monotonic()
            if left <= 0:
                return False
            cond.wait(left)
    return True


zc = Zeroconf(interfaces=["127.0.0.1"])
browser = ServiceBrowser(zc, TYPES, Listener())
start = time.monotonic()
complete = wait(lambda: all(len(found[t]) >= want for t in TYPES), 20)
out = {"complete": complete, "seconds": round(time.monotonic() - start, 2), "services": []}
for t in TYPES:
    for name in sorted(found[t]):
        info = ServiceInfo(t, name)
        resolved = info.request(zc, 3000)
        out["services"].append({
            "type": t,
            "name": name,
            "resolved": resolved,
            "port": info.port,
            "server": info.server,
            "ipv4": info.parsed_addresses(IPVersion.V4Only),
            "txt": {k.decode(): None if v is None else v.decode() for k, v in info.properties.items()},
        })
print(json.dumps(out), flush=True)

gone = sys.stdin.readline().strip()
done = wait(lambda: all(any(n.startswith(gone + ".") for n in removed[t]) for t in TYPES), 10)
print(json.dumps({"removed_complete": done, "removed": {t: sorted(removed[t]) for t in TYPES}}), flush=True)
browser.cancel()
zc.close()
