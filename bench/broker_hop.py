"""One hop through the broker: produce one record, time until a waiting consumer has it, per ``fetch_max_wait_ms``.

    .venv/bin/python -m bench.broker_hop [--waits 500,100,20] [--records 20]

A consumer that is waiting in a fetch gets a new record when the broker answers that fetch. Kafka answers as soon
as data arrives; the local broker (tansu) was seen to answer only when ``fetch_max_wait_ms`` has passed, so each
consumer hop costs on average half of it (aiokafka's default: 500 ms; faust's aiokafka driver hard-codes 1,500 ms)
whatever the load. This measures it on a
fresh tansu from ``infra/stack.py``: records produced one at a time, spaced, each awaited by ``getone``.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from services.cli.local import stack_module
from services.common.kafka import ensure_topics
from services.common.topics import TopicSpec


async def hop_ms(bootstrap: str, wait_ms: int, records: int) -> list[float]:
    topic = f"bench.hop.{uuid.uuid4().hex[:8]}"
    await ensure_topics(bootstrap, (TopicSpec(topic, 4, "any", "bench"),))
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=topic, auto_offset_reset="earliest", fetch_max_wait_ms=wait_ms
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await consumer.start()
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"warm-up", key=b"k")
        await consumer.getone()
        out = []
        for i in range(records):
            await asyncio.sleep(0.13)  # not in step with the fetch cycle
            started = time.perf_counter()
            await producer.send_and_wait(topic, b"x", key=str(i).encode())
            await consumer.getone()
            out.append((time.perf_counter() - started) * 1000)
        return sorted(out)
    finally:
        await consumer.stop()
        await producer.stop()


def measure(bootstrap: str, waits: list[int], records: int) -> dict[int, dict[str, float]]:
    result = {}
    for wait in waits:
        hops = asyncio.run(hop_ms(bootstrap, wait, records))
        result[wait] = {"median_ms": hops[len(hops) // 2], "max_ms": hops[-1]}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--waits", default="1500,500,100,20", help="fetch_max_wait_ms values to try")
    parser.add_argument("--records", type=int, default=20)
    args = parser.parse_args(argv)
    stack = stack_module()
    base = Path(tempfile.mkdtemp(prefix="rectify-bench-hop-"))
    base.chmod(0o755)
    env = stack.start(base)
    try:
        result = measure(env["KAFKA_BOOTSTRAP_SERVERS"], [int(w) for w in args.waits.split(",")], args.records)
    finally:
        stack.stop(base)
    print(
        "broker hop: "
        + ", ".join(
            f"fetch_max_wait_ms={w}: median {r['median_ms']:.0f} ms, max {r['max_ms']:.0f} ms"
            for w, r in result.items()
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
