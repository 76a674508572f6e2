"""Consumer groups, measured against a `strata serve` this script starts (release build
recommended) with the default group settings:

  * rebalance time for 3 -> 2 -> 3 members of one group on a 24-partition topic (eager
    `range`, librdkafka's default), each change at a random point of the heartbeat cycle: ms from
    the membership change (a member's close(), which sends LeaveGroup; a new member's
    subscribe()) until every remaining/added member has its new assignment (its
    on_assign callback ran with the final partitions); median of --rounds. Measured
    with librdkafka's default heartbeat.interval.ms (3000: members hear of a rebalance
    on their next heartbeat) and with 100 ms (closer to the broker's own cost);
  * OffsetCommit throughput: one confluent-kafka group member committing all 24
    partitions per commit, synchronously (one at a time) and asynchronously with a
    window of --commit-window commits in flight (librdkafka pipelines them on the
    coordinator connection; the broker answers a connection's requests in order), and
    --committers members of separate groups committing synchronously at once;
  * consume throughput of --records 100-byte records on 8 partitions through a
    subscribe() group consumer vs an assign() consumer (no group), median of --runs
    each, runs alternating; records/s counted from the first record to the last (the
    group's join time, which includes the 3 s initial rebalance delay, is reported
    apart).

Usage: .venv/bin/python benches/groups_bench.py --strata target/release/strata
       [--rounds 10] [--runs 5] [--records 1000000] [--committers 4] [--json-out FILE]
       [--only rebalance,commits,consume]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "python"))

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition  # noqa: E402

from harness import Broker, wait_until  # noqa: E402
from kclients import create_topic  # noqa: E402

REBALANCE_PARTITIONS = 24
CONSUME_PARTITIONS = 8


# --- rebalance --------------------------------------------------------------------------

class Member(threading.Thread):
    """A group member polling in its own thread; records when on_assign ran and with what."""

    def __init__(self, bootstrap: str, group: str, topic: str, heartbeat_ms: int):
        super().__init__(daemon=True)
        self.lock = threading.Lock()
        self.assigned: list[tuple[float, list[int]]] = []
        self.stop_at: float | None = None
        self.stopping = threading.Event()
        self.closed = threading.Event()
        self.error: BaseException | None = None
        self.conf = {"bootstrap.servers": bootstrap, "group.id": group,
                     "heartbeat.interval.ms": heartbeat_ms, "session.timeout.ms": 45000,
                     "enable.auto.commit": False}
        self.topic = topic
        self.subscribed_at: float | None = None

    def on_assign(self, c, tps):
        with self.lock:
            self.assigned.append((time.monotonic(), sorted(tp.partition for tp in tps)))
        c.assign(tps)

    def current(self) -> tuple[float, list[int]] | None:
        with self.lock:
            return self.assigned[-1] if self.assigned else None

    def run(self):
        try:
            c = Consumer(self.conf)
            self.subscribed_at = time.monotonic()
            c.subscribe([self.topic], on_assign=self.on_assign)
            while not self.stopping.is_set():
                c.poll(0.02)
            self.stop_at = time.monotonic()
            c.close()
        except BaseException as e:
            self.error = e
        finally:
            self.closed.set()


def wait_balanced(ms: list[Member], since: float, timeout: float = 60.0) -> float:
    """Waits until each member's last on_assign ran after `since` and the members'
    assignments split the topic evenly; the latest of those on_assign moments."""
    per = REBALANCE_PARTITIONS // len(ms)

    def ok():
        for m in ms:
            assert m.error is None, m.error
        cur = [m.current() for m in ms]
        if any(c is None or c[0] < since for c in cur):
            return False
        parts = sorted(p for _, ps in cur for p in ps)
        if parts != list(range(REBALANCE_PARTITIONS)) or any(len(ps) != per for _, ps in cur):
            return False
        return max(t for t, _ in cur)

    return wait_until(ok, timeout, f"{len(ms)} members with {per} partitions each", interval=0.005)


def bench_rebalance(bootstrap: str, rounds: int, heartbeat_ms: int) -> dict:
    topic = f"rebalance-{heartbeat_ms}"
    create_topic(bootstrap, topic, REBALANCE_PARTITIONS)
    group = f"rebalance-{heartbeat_ms}"
    ms = [Member(bootstrap, group, topic, heartbeat_ms) for _ in range(3)]
    for m in ms:
        m.start()
    wait_balanced(ms, 0.0)
    leave, join = [], []
    rng = random.Random(heartbeat_ms)
    for _ in range(rounds):
        # Changes land at a random point of the members' heartbeat cycle (right after a
        # rebalance every member's next heartbeat is a whole interval away).
        time.sleep(rng.uniform(0, heartbeat_ms / 1000))
        # 3 -> 2: the last member closes (LeaveGroup).
        gone = ms.pop()
        t0 = time.monotonic()
        gone.stopping.set()
        done = wait_balanced(ms, t0)
        leave.append((done - t0) * 1000)
        gone.closed.wait(30)
        time.sleep(rng.uniform(0, heartbeat_ms / 1000))
        # 2 -> 3: a new member subscribes.
        new = Member(bootstrap, group, topic, heartbeat_ms)
        t0 = time.monotonic()
        new.start()
        ms.append(new)
        done = wait_balanced(ms, t0)
        join.append((done - t0) * 1000)
    for m in ms:
        m.stopping.set()
    for m in ms:
        m.closed.wait(30)
    return {
        "heartbeat_interval_ms": heartbeat_ms,
        "leave_3_to_2_ms": summary(leave),
        "join_2_to_3_ms": summary(join),
    }


def summary(xs: list[float]) -> dict:
    return {"median": round(statistics.median(xs), 1), "min": round(min(xs), 1),
            "max": round(max(xs), 1), "n": len(xs)}


# --- OffsetCommit -----------------------------------------------------------------------

def bench_commits(bootstrap: str, seconds: float, window: int, parallel: int) -> dict:
    topic, group = "commits", "commits"
    create_topic(bootstrap, topic, REBALANCE_PARTITIONS)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "enable.auto.commit": False})
    c.subscribe([topic])
    wait_until(lambda: c.poll(0.05) is None and len(c.assignment()) == REBALANCE_PARTITIONS,
               60, "the committing member's assignment")

    def offsets(i):
        return [TopicPartition(topic, p, i) for p in range(REBALANCE_PARTITIONS)]

    # Synchronous: one commit in flight.
    n, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < seconds:
        n += 1
        res = c.commit(offsets=offsets(n), asynchronous=False)
        assert all(tp.error is None for tp in res), res
    sync_rate = n / (time.monotonic() - t0)

    # Asynchronous: up to `window` commits in flight, completions counted in the
    # on_commit callback (served by poll()).
    state = {"done": 0, "errors": 0}

    def on_commit(err, _parts):
        state["done"] += 1
        if err is not None:
            state["errors"] += 1

    c2 = Consumer({"bootstrap.servers": bootstrap, "group.id": group + "-async",
                   "enable.auto.commit": False, "on_commit": on_commit})
    c2.subscribe([topic])
    wait_until(lambda: c2.poll(0.05) is None and len(c2.assignment()) == REBALANCE_PARTITIONS,
               60, "the async committing member's assignment")
    sent, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < seconds:
        while sent - state["done"] < window:
            sent += 1
            c2.commit(offsets=offsets(sent), asynchronous=True)
        c2.poll(0.001)
    while state["done"] < sent:
        c2.poll(0.01)
    async_rate = state["done"] / (time.monotonic() - t0)
    assert state["errors"] == 0, f"{state['errors']} async commits failed"
    c.close()
    c2.close()

    # Several synchronous committers at once: one member in each of `parallel` groups,
    # each on its own connection (a broker serves one request per connection at a time,
    # so the async window above is serialized too).
    counts = [0] * parallel
    members = []
    for i in range(parallel):
        m = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{group}-par-{i}",
                      "enable.auto.commit": False})
        m.subscribe([topic])
        members.append(m)
    for m in members:
        wait_until(lambda: m.poll(0.05) is None and len(m.assignment()) == REBALANCE_PARTITIONS,
                   60, "a parallel committer's assignment")
    start = threading.Barrier(parallel + 1)

    def run(i):
        start.wait()
        t = time.monotonic()
        while time.monotonic() - t < seconds:
            counts[i] += 1
            res = members[i].commit(offsets=offsets(counts[i]), asynchronous=False)
            assert all(tp.error is None for tp in res), res

    threads = [threading.Thread(target=run, args=(i,)) for i in range(parallel)]
    for t in threads:
        t.start()
    start.wait()
    t0 = time.monotonic()
    for t in threads:
        t.join()
    parallel_rate = sum(counts) / (time.monotonic() - t0)
    for m in members:
        m.close()
    return {"partitions_per_commit": REBALANCE_PARTITIONS,
            "sync_commits_per_s": round(sync_rate, 1),
            "async_commits_per_s": round(async_rate, 1), "async_window": window,
            "parallel_sync_commits_per_s": round(parallel_rate, 1),
            "parallel_committers": parallel}


# --- consume throughput -----------------------------------------------------------------

def produce_records(bootstrap: str, topic: str, n: int) -> None:
    create_topic(bootstrap, topic, CONSUME_PARTITIONS)
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 20,
                  "batch.size": 1 << 20, "queue.buffering.max.messages": 500000})
    value = b"v" * 100
    errors = []

    def report(err, _msg):
        if err is not None:
            errors.append(err)

    for i in range(n):
        while True:
            try:
                p.produce(topic, value=value, partition=i % CONSUME_PARTITIONS,
                          on_delivery=report)
                break
            except BufferError:
                p.poll(0.01)
    assert p.flush(300) == 0
    assert not errors, errors[:5]


def consume_run(bootstrap: str, topic: str, n: int, group_mode: bool, run: int) -> dict:
    conf = {"bootstrap.servers": bootstrap, "auto.offset.reset": "earliest",
            "group.id": f"bench-{'group' if group_mode else 'assign'}-{run}",
            "enable.partition.eof": False}
    if not group_mode:
        conf["enable.auto.commit"] = False
    c = Consumer(conf)
    t_start = time.monotonic()
    if group_mode:
        c.subscribe([topic])
    else:
        c.assign([TopicPartition(topic, p, 0) for p in range(CONSUME_PARTITIONS)])
    got, t_first = 0, None
    deadline = time.monotonic() + 300
    while got < n:
        assert time.monotonic() < deadline, f"consumed only {got} of {n}"
        msgs = c.consume(num_messages=10000, timeout=1.0)
        for m in msgs:
            if m.error() is not None:
                raise KafkaException(m.error())
        if msgs and t_first is None:
            t_first = time.monotonic()
        got += len(msgs)
    t_end = time.monotonic()
    c.close()
    assert got == n, f"{got} records for {n}"
    return {"records_per_s": (n - 1) / (t_end - t_first) if t_end > t_first else 0.0,
            "join_s": t_first - t_start, "total_s": t_end - t_start}


def bench_consume(bootstrap: str, n: int, runs: int) -> dict:
    topic = "consume"
    t0 = time.monotonic()
    produce_records(bootstrap, topic, n)
    produce_s = time.monotonic() - t0
    rows = {"group": [], "assign": []}
    for run in range(runs):
        for mode in (("group", "assign") if run % 2 == 0 else ("assign", "group")):
            rows[mode].append(consume_run(bootstrap, topic, n, mode == "group", run))
    out = {"records": n, "value_bytes": 100, "partitions": CONSUME_PARTITIONS,
           "produce_s": round(produce_s, 1)}
    for mode, rs in rows.items():
        out[mode] = {
            "records_per_s_median": round(statistics.median(r["records_per_s"] for r in rs)),
            "records_per_s_runs": [round(r["records_per_s"]) for r in rs],
            "join_s_median": round(statistics.median(r["join_s"] for r in rs), 3),
            "total_s_median": round(statistics.median(r["total_s"] for r in rs), 2),
        }
    g, a = out["group"]["records_per_s_median"], out["assign"]["records_per_s_median"]
    out["group_vs_assign_pct"] = round((g - a) / a * 100, 1)
    return out


# --- main -------------------------------------------------------------------------------

def machine() -> dict:
    model = ""
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpus": os.cpu_count(), "cpu": model, "kernel": platform.release(),
            "python": platform.python_version(),
            "loadavg_at_start": [round(x, 2) for x in os.getloadavg()]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--strata", default=str(REPO / "target" / "release" / "strata"))
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--records", type=int, default=1_000_000)
    ap.add_argument("--commit-seconds", type=float, default=5.0)
    ap.add_argument("--commit-window", type=int, default=32)
    ap.add_argument("--committers", type=int, default=4)
    ap.add_argument("--json-out")
    ap.add_argument("--only", default="rebalance,commits,consume",
                    help="comma-separated subset of rebalance,commits,consume")
    args = ap.parse_args()
    only = set(args.only.split(","))
    os.environ["STRATA_BIN"] = str(Path(args.strata).resolve())
    import confluent_kafka

    with tempfile.TemporaryDirectory(prefix="groups-bench-") as tmp:
        broker = Broker(Path(tmp) / "data", Path(tmp) / "strata.stderr")
        broker.start()
        try:
            results = {
                "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "machine": machine(),
                "strata": args.strata,
                "client": f"confluent-kafka {confluent_kafka.version()[0]}, "
                          f"librdkafka {confluent_kafka.libversion()[0]}",
            }
            if "rebalance" in only:
                results["rebalance"] = [bench_rebalance(broker.bootstrap, args.rounds, hb)
                                        for hb in (3000, 100)]
            if "commits" in only:
                results["offset_commit"] = bench_commits(broker.bootstrap, args.commit_seconds,
                                                         args.commit_window, args.committers)
            if "consume" in only:
                results["consume"] = bench_consume(broker.bootstrap, args.records, args.runs)
        finally:
            broker.stop()
    # Other work on the machine skews every figure: say how busy it was.
    results["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]

    print(f"\nconsumer groups — {results['date']}, {results['machine']['cpus']} CPUs "
          f"({results['machine']['cpu']}), {results['client']}; load average "
          f"{results['machine']['loadavg_at_start'][0]} at start, "
          f"{results['machine']['loadavg_at_end'][0]} at end")
    print(f"{'measurement':58} {'median':>12} {'min':>10} {'max':>10}")
    for r in results.get("rebalance", []):
        for key, label in (("leave_3_to_2_ms", "3→2 (LeaveGroup)"), ("join_2_to_3_ms", "2→3 (new member)")):
            s = r[key]
            print(f"{'rebalance ' + label + ', 24 partitions, heartbeat ' + str(r['heartbeat_interval_ms']) + ' ms':58} "
                  f"{s['median']:>9.1f} ms {s['min']:>7.1f} ms {s['max']:>7.1f} ms")
    oc = results.get("offset_commit")
    if oc:
        print(f"{'OffsetCommit, 24 partitions/commit, synchronous':58} {oc['sync_commits_per_s']:>10.0f}/s")
        print(f"{'OffsetCommit, 24 partitions/commit, async window ' + str(oc['async_window']):58} "
              f"{oc['async_commits_per_s']:>10.0f}/s")
        print(f"{'OffsetCommit, 24 partitions/commit, ' + str(oc['parallel_committers']) + ' groups committing at once (sum)':58} "
              f"{oc['parallel_sync_commits_per_s']:>10.0f}/s")
    cs = results.get("consume")
    for mode in ("group", "assign") if cs else ():
        m = cs[mode]
        print(f"{'consume ' + format(cs['records'], ',') + ' x 100 B, 8 partitions, ' + mode:58} "
              f"{m['records_per_s_median']:>10,}/s  runs {m['records_per_s_runs']}, "
              f"join {m['join_s_median']:.2f} s")
    if cs:
        print(f"{'group vs assign':58} {cs['group_vs_assign_pct']:>+9.1f} %")
    print(json.dumps(results, indent=2))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
