"""One consumer-group member as its own process, for the group tests (test_group*.py),
so a test can SIGKILL, SIGSTOP/SIGCONT or SIGTERM it like a real application.

It subscribes to a topic, consumes, and after each small batch commits the next offsets
synchronously. Everything it sees is appended to --out as JSON lines (one os.write per
line on an O_APPEND file, so what was written survives a SIGKILL):

  {"ev": "start", "pid": …}
  {"ev": "assign" | "revoke" | "lost", "parts": [...]}   rebalance callbacks (incremental
                                                         for cooperative-sticky)
  {"ev": "assignment", "parts": [...]}                   the full assignment, when it changes
  {"ev": "msg", "p": p, "o": offset, "v": value}          a consumed record
  {"ev": "commit", "offsets": {p: next}}                  a commit the broker accepted
  {"ev": "commit_err", "err": "...", "offsets": {...}}    a commit that failed
  {"ev": "closed"}                                       after a clean close (SIGTERM)

Every line also has "t": time.monotonic() (CLOCK_MONOTONIC, comparable across the
processes of one machine).

SIGTERM closes the consumer (librdkafka: a static member does not leave the group).
With --commit-on-cont, SIGCONT makes the loop commit its current positions at once (the
fencing test: a commit from a member whose session expired while it was stopped).

Usage: python group_member.py --client confluent|kafka-python --bootstrap B --group G
       --topic T --out FILE [--strategy range] [--session-ms 6000] [--heartbeat-ms 500]
       [--instance-id ID] [--delay-ms 0] [--batch 20] [--fetch-bytes N] [--commit-on-cont]

With MEMBER_DEBUG=1 in the environment, the client's debug log (kafka-python's
`logging`) goes to stderr, which the tests keep as member-NAME-N.stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time


class Log:
    def __init__(self, path: str):
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def __call__(self, ev: str, **fields) -> None:
        fields["ev"] = ev
        fields["t"] = time.monotonic()
        os.write(self.fd, (json.dumps(fields) + "\n").encode())


def parse_args():
    ap = argparse.ArgumentParser()
    ap.add_argument("--client", default="confluent", choices=["confluent", "kafka-python"])
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--group", required=True)
    ap.add_argument("--topic", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--strategy", default="range")
    ap.add_argument("--session-ms", type=int, default=6000)
    ap.add_argument("--heartbeat-ms", type=int, default=500)
    ap.add_argument("--max-poll-ms", type=int, default=30000)
    ap.add_argument("--instance-id", default=None)
    ap.add_argument("--pattern", default=None,
                    help="subscribe to this regex (confluent; it must match --topic alone)")
    ap.add_argument("--delay-ms", type=float, default=0.0, help="processing time per record")
    ap.add_argument("--batch", type=int, default=20, help="records per poll and commit")
    ap.add_argument("--fetch-bytes", type=int, default=0,
                    help="max bytes per partition per fetch (0: the client's default)")
    ap.add_argument("--commit-on-cont", action="store_true")
    return ap.parse_args()


class Flags:
    stopping = False
    continued = False


def install_signals():
    def term(_sig, _frame):
        Flags.stopping = True

    def cont(_sig, _frame):
        Flags.continued = True

    signal.signal(signal.SIGTERM, term)
    signal.signal(signal.SIGCONT, cont)


def run_confluent(args, log: Log) -> None:
    from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

    conf = {
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "client.id": f"member-{os.getpid()}",
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": args.strategy,
        "session.timeout.ms": args.session_ms,
        "heartbeat.interval.ms": args.heartbeat_ms,
        "max.poll.interval.ms": args.max_poll_ms,
        "reconnect.backoff.ms": 20,
        "reconnect.backoff.max.ms": 200,
        "error_cb": lambda err: log("client_error", err=str(err), code=err.code()),
    }
    if args.instance_id:
        conf["group.instance.id"] = args.instance_id
    if os.environ.get("GROUP_MEMBER_RDKAFKA_DEBUG"):
        # librdkafka's own log (e.g. "cgrp,fetch") on stderr, for diagnosing a failure.
        conf["debug"] = os.environ["GROUP_MEMBER_RDKAFKA_DEBUG"]
    if args.fetch_bytes:
        # Small fetches interleave the partitions, so commits land mid-partition.
        conf["max.partition.fetch.bytes"] = args.fetch_bytes
        conf["fetch.max.bytes"] = args.fetch_bytes * 8
        conf["message.max.bytes"] = args.fetch_bytes * 8
    c = Consumer(conf)
    cooperative = args.strategy == "cooperative-sticky"

    def parts(tps):
        return sorted(tp.partition for tp in tps)

    def on_assign(consumer, tps):
        log("assign", parts=parts(tps))
        if cooperative:
            consumer.incremental_assign(tps)
        else:
            consumer.assign(tps)

    def on_revoke(consumer, tps):
        log("revoke", parts=parts(tps))
        if cooperative:
            consumer.incremental_unassign(tps)
        else:
            consumer.unassign()

    def on_lost(consumer, tps):
        log("lost", parts=parts(tps))
        if cooperative:
            consumer.incremental_unassign(tps)
        else:
            consumer.unassign()

    subscription = args.pattern or args.topic
    c.subscribe([subscription], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost)
    positions: dict[int, int] = {}
    shown = None

    def commit(offsets: dict[int, int]) -> None:
        tps = [TopicPartition(args.topic, p, o) for p, o in sorted(offsets.items())]
        try:
            res = c.commit(offsets=tps, asynchronous=False)
        except KafkaException as e:
            log("commit_err", err=str(e.args[0]), code=e.args[0].code(), offsets=offsets)
            return
        bad = [(tp.partition, str(tp.error)) for tp in res or [] if tp.error is not None]
        if bad:
            log("commit_err", err=str(bad), code=None, offsets=offsets)
        else:
            log("commit", offsets=offsets)

    while not Flags.stopping:
        if Flags.continued:
            Flags.continued = False
            if args.commit_on_cont and positions:
                commit(dict(positions))
        msgs = c.consume(num_messages=args.batch, timeout=0.1)
        now = parts(c.assignment())
        if now != shown:
            shown = now
            log("assignment", parts=now)
        batch: dict[int, int] = {}
        for m in msgs:
            err = m.error()
            if err is not None:
                if err.code() != KafkaError._PARTITION_EOF:
                    log("consume_err", err=str(err), code=err.code())
                continue
            log("msg", p=m.partition(), o=m.offset(), v=(m.value() or b"").decode())
            if args.delay_ms:
                time.sleep(args.delay_ms / 1000.0)
            batch[m.partition()] = m.offset() + 1
        if batch:
            positions.update(batch)
            commit(batch)
    c.close()
    log("closed")


def run_kafka_python(args, log: Log) -> None:
    from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
    from kafka.errors import KafkaError
    from kafka.structs import OffsetAndMetadata

    kw = {}
    if args.instance_id:
        kw["group_instance_id"] = args.instance_id
    if args.fetch_bytes:
        kw["max_partition_fetch_bytes"] = args.fetch_bytes
        kw["fetch_max_bytes"] = args.fetch_bytes * 8
    c = KafkaConsumer(
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        client_id=f"member-{os.getpid()}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=args.session_ms,
        heartbeat_interval_ms=args.heartbeat_ms,
        max_poll_interval_ms=args.max_poll_ms,
        reconnect_backoff_ms=20,
        reconnect_backoff_max_ms=200,
        **kw,
    )

    class Listener(ConsumerRebalanceListener):
        def on_partitions_revoked(self, revoked):
            log("revoke", parts=sorted(tp.partition for tp in revoked))

        def on_partitions_assigned(self, assigned):
            log("assign", parts=sorted(tp.partition for tp in assigned))

    # Learn the topic's partitions before joining. kafka-python 3.0.12 (as leader)
    # otherwise assigns nothing at its first join, rejoins when the metadata arrives, and
    # if poll()'s timeout ends that rejoin between JoinGroup and SyncGroup, never
    # completes it: heartbeats stay off and the session expires for good.
    c.partitions_for_topic(args.topic)
    c.subscribe([args.topic], listener=Listener())
    positions: dict[int, int] = {}
    shown = None

    def commit(offsets: dict[int, int]) -> None:
        try:
            c.commit({TopicPartition(args.topic, p): OffsetAndMetadata(o, "", -1)
                      for p, o in offsets.items()})
        except KafkaError as e:
            log("commit_err", err=repr(e), code=getattr(e, "errno", None), offsets=offsets)
        else:
            log("commit", offsets=offsets)

    while not Flags.stopping:
        if Flags.continued:
            Flags.continued = False
            if args.commit_on_cont and positions:
                commit(dict(positions))
        try:
            got = c.poll(timeout_ms=100, max_records=args.batch)
        except KafkaError as e:
            log("consume_err", err=repr(e), code=getattr(e, "errno", None))
            continue
        now = sorted(tp.partition for tp in c.assignment())
        if now != shown:
            shown = now
            log("assignment", parts=now)
        batch: dict[int, int] = {}
        for tp, records in got.items():
            for r in records:
                log("msg", p=tp.partition, o=r.offset, v=(r.value or b"").decode())
                if args.delay_ms:
                    time.sleep(args.delay_ms / 1000.0)
                batch[tp.partition] = r.offset + 1
        if batch:
            positions.update(batch)
            commit(batch)
    c.close()
    log("closed")


def main() -> None:
    args = parse_args()
    if os.environ.get("MEMBER_DEBUG"):
        import logging
        logging.basicConfig(level=logging.DEBUG, stream=sys.stderr,
                            format="%(relativeCreated)d %(threadName)s %(name)s %(message)s")
    log = Log(args.out)
    install_signals()
    log("start", pid=os.getpid(), client=args.client, instance=args.instance_id)
    try:
        if args.client == "confluent":
            run_confluent(args, log)
        else:
            run_kafka_python(args, log)
    except BaseException as e:
        log("crash", err=repr(e))
        raise


if __name__ == "__main__":
    sys.exit(main())
