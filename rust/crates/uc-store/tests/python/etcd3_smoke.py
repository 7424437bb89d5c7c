"""python-etcd3 against uc-store: put/get, lease with keys, txn, watch,
prefix reads, revoke, delete, members and status. Usage:
etcd3_smoke.py HOST PORT MEMBERS"""
import sys
import threading
import time

import etcd3

host, port, members = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
c = etcd3.client(host=host, port=port, timeout=10)
c.put("/py/a", "1")
value, meta = c.get("/py/a")
assert value == b"1" and meta.version == 1, (value, meta.version)
lease = c.lease(30)
c.put("/py/leased", "x", lease=lease)
assert 25 <= lease.remaining_ttl <= 30, lease.remaining_ttl
assert list(lease.keys) == [b"/py/leased"], list(lease.keys)
ok, _ = c.transaction(
    compare=[c.transactions.value("/py/a") == "1"],
    success=[c.transactions.put("/py/a", "2")],
    failure=[],
)
assert ok
events = []
iterator, cancel = c.watch_prefix("/py/")


def watch():
    for event in iterator:
        events.append(event)
        break


thread = threading.Thread(target=watch)
thread.start()
time.sleep(0.5)
c.put("/py/b", "3")
thread.join(10)
cancel()
assert len(events) == 1 and isinstance(events[0], etcd3.events.PutEvent), events
assert events[0].key == b"/py/b" and events[0].value == b"3"
got = sorted((m.key, v) for v, m in c.get_prefix("/py/"))
assert got == [(b"/py/a", b"2"), (b"/py/b", b"3"), (b"/py/leased", b"x")], got
lease.revoke()
assert c.get("/py/leased")[0] is None
assert c.delete_prefix("/py/").deleted == 2
assert len(list(c.members)) == members
status = c.status()
assert status.version == "3.4.23" and status.leader is not None
print("python-etcd3 smoke: ok")
