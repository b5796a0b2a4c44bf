"""Browse the simulator's mDNS records with python-zeroconf on 127.0.0.1.

Run by channels_process_test.go inside a network namespace the test made
(lo up, multicast on). argv: the -http port of device 0, then the simulator's
command line. It starts the simulator, and prints JSON lines:
  browsed: every device under both types, resolved (port, host, TXT, IPv4)
  rebooted: device 0's goodbye and re-announcement after Shelly.Reboot
  stopped: every goodbye after SIGTERM, and the simulator's exit status
Every wait is bounded.
"""

import json
import signal
import subprocess
import sys
import threading
import time
import urllib.request

from zeroconf import IPVersion, ServiceBrowser, ServiceInfo, ServiceListener, Zeroconf

TYPES = ["_shelly._tcp.local.", "_http._tcp.local."]
port0 = int(sys.argv[1])
sim_cmd = sys.argv[2:]
cond = threading.Condition()
found = {t: set() for t in TYPES}
removed = {t: [] for t in TYPES}
added = {t: [] for t in TYPES}


class Listener(ServiceListener):
    def add_service(self, zc, type_, name):
        with cond:
            found[type_].add(name)
            added[type_].append(name)
            cond.notify_all()

    def remove_service(self, zc, type_, name):
        with cond:
            found[type_].discard(name)
            removed[type_].append(name)
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


sim = subprocess.Popen(sim_cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
out_lines = []
threading.Thread(target=lambda: out_lines.extend(sim.stdout), daemon=True).start()
want = 2
zc = Zeroconf(interfaces=["127.0.0.1"])
browser = ServiceBrowser(zc, TYPES, Listener())
start = time.monotonic()
complete = wait(lambda: all(len(found[t]) >= want for t in TYPES), 20)
res = {"complete": complete, "seconds": round(time.monotonic() - start, 2), "services": []}
for t in TYPES:
    for name in sorted(found[t]):
        info = ServiceInfo(t, name)
        resolved = info.request(zc, 3000)
        res["services"].append({
            "type": t, "name": name, "resolved": resolved, "port": info.port, "server": info.server,
            "ipv4": info.parsed_addresses(IPVersion.V4Only),
            "txt": {k.decode(): None if v is None else v.decode() for k, v in info.properties.items()},
        })
print("browsed: " + json.dumps(res), flush=True)

# Shelly.Reboot of device 0: a goodbye when it goes down, an announcement
# after its boot time.
names0 = [s["name"] for s in res["services"] if s["port"] == port0]
with cond:
    before = {t: len(added[t]) for t in TYPES}
try:
    urllib.request.urlopen("http://127.0.0.1:%d/rpc/Shelly.Reboot" % port0, timeout=5).read()
    asked = True
except Exception as e:  # noqa: BLE001 - reported in the JSON
    asked = str(e)
gone = wait(lambda: all(any(n in names0 for n in removed[t]) for t in TYPES), 10)
back = wait(lambda: all(any(n in names0 for n in added[t][before[t]:]) for t in TYPES), 15)
print("rebooted: " + json.dumps({"asked": asked, "goodbye": gone, "announced": back}), flush=True)

# SIGTERM: a goodbye for every device.
with cond:
    seen = {t: len(removed[t]) for t in TYPES}
sim.send_signal(signal.SIGTERM)
try:
    code = sim.wait(15)
except subprocess.TimeoutExpired:
    sim.kill()
    code = "timeout"
bye = wait(lambda: all(len(set(removed[t][seen[t]:])) >= want for t in TYPES), 10)
print("stopped: " + json.dumps({"exit": code, "goodbyes": bye, "output": "".join(out_lines)[-4000:]}), flush=True)
browser.cancel()
zc.close()
