"""Group commit, measured: N confluent-kafka producers send acks=all batches to one
partition of a running `strata serve`; the broker's /metrics counters say how many
produce requests and batches one fdatasync covered.

Usage: python benches/group_commit.py BOOTSTRAP ADMIN [--producers 8] [--messages 20000]
       [--in-flight 50] [--idempotent]
(use the test venv: .venv/bin/python, which has confluent-kafka)
"""
import argparse
import threading
import time
import urllib.request

from confluent_kafka import Producer


def metric(admin, prefix):
    text = urllib.request.urlopen(f"http://{admin}/metrics").read().decode()
    return sum(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith(prefix)
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bootstrap")
    ap.add_argument("admin")
    ap.add_argument("--topic", default="group-commit")
    ap.add_argument("--producers", type=int, default=8)
    ap.add_argument("--messages", type=int, default=20000, help="per producer")
    ap.add_argument("--in-flight", type=int, default=50)
    ap.add_argument("--idempotent", action="store_true")
    args = ap.parse_args()

    counters = ("strata_log_flushes_total", 'strata_kafka_requests_total{api="Produce"',
                "strata_produced_batches_appended_total")
    before = [metric(args.admin, c) for c in counters]
    acked = []

    def run():
        conf = {"bootstrap.servers": args.bootstrap, "acks": "all", "linger.ms": 0,
                "batch.num.messages": 10, "enable.idempotence": args.idempotent}
        if not args.idempotent:
            conf["max.in.flight"] = args.in_flight
        p = Producer(conf)
        done = [0]

        def cb(err, _msg):
            if err is None:
                done[0] += 1

        for _ in range(args.messages):
            while True:
                try:
                    p.produce(args.topic, value=b"x" * 100, partition=0, on_delivery=cb)
                    break
                except BufferError:
                    p.poll(0.001)
            p.poll(0)
        p.flush(60)
        acked.append(done[0])

    threads = [threading.Thread(target=run) for _ in range(args.producers)]
    start = time.time()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.time() - start
    flushes, requests, batches = (metric(args.admin, c) - b for c, b in zip(counters, before))
    print(f"{args.producers} producers, acks=all, idempotent={args.idempotent}: "
          f"{sum(acked)} acked in {wall:.2f}s; {requests:.0f} produce requests, "
          f"{batches:.0f} batches, {flushes:.0f} fdatasyncs -> "
          f"{batches / max(flushes, 1):.1f} batches per sync")


if __name__ == "__main__":
    main()
