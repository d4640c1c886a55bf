#!/usr/bin/env python3
"""Send-by-SMS + verify cycles against twofactor, with the SMS gateway stand-in in the same process.

wrk cannot chain a request on data from a third party (the code the service sent by SMS), so this
drives the cycle itself. One process, standard library only, plays both sides:

* the gateway sink: answers 202 to every request and keeps the last code per number in a dict; the
  service must be started with sms.url = http://127.0.0.1:SINK_PORT/send?to={recipient}&code={code}
  so the code arrives in the query string and no body needs parsing;
* the caller: LOOPS keep-alive connections to the service, each repeating send-authentication-code
  (SMS) then code-authentication with the code the sink just received; a cycle counts when the
  verify answers success. The service answers the send only after the gateway answered, so the
  code is in the dict by then: no polling, no extra request.

Both sides use asyncio Protocols with the least parsing that works (the status line and
Content-Length), not StreamReader, because this process must cost far less CPU than the service it
measures; it reports its own CPU so run.sh can show that it does.

Usage: cycle.py SERVICE_PORT SINK_PORT CUSTOMERS LOOPS SECONDS
Prints one line: cycles/s p50_ms p99_ms ok failed cpu_percent_of_one_core. Customer cN has phone
+447911 followed by N in six digits (run.sh seeds them so); loop i uses customers i, i+LOOPS, ...,
so no two loops ever share a customer or a number.
"""
import asyncio
import os
import sys
import time

ANSWER_202 = b"HTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n"
SUCCESS = b"<status>success</status>"


def content_length(head: bytes) -> int:
    """Content-Length of an HTTP head, 0 when absent (bodyless GET, or the service's empty answer)."""
    i = head.lower().find(b"\r\ncontent-length:")
    if i < 0:
        return 0
    end = head.find(b"\r\n", i + 2)
    return int(head[i + 17 : end if end > 0 else None])


class Sink(asyncio.Protocol):
    """One gateway connection from the service (reqwest keeps a few open and reuses them)."""

    codes = {}

    def connection_made(self, transport):
        self.transport = transport
        self.buf = b""

    def data_received(self, data):
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            size = end + 4 + content_length(self.buf[:end])
            if len(self.buf) < size:
                return
            # "POST /send?to=447911000123&code=123456 HTTP/1.1"
            query = self.buf[: self.buf.find(b"\r\n")].split(b" ")[1].partition(b"?")[2]
            fields = dict(f.split(b"=", 1) for f in query.split(b"&"))
            Sink.codes[fields[b"to"]] = fields[b"code"]
            self.buf = self.buf[size:]
            self.transport.write(ANSWER_202)


class Caller(asyncio.Protocol):
    """One keep-alive connection to the service running cycles back to back: send, then verify with
    the code the sink received, then the next customer. A state machine driven by data_received
    rather than a coroutine per loop, because waking a task for every answer would cost this process
    about twice the CPU."""

    def __init__(self, first, step, customers, deadline, latencies, failures, done):
        self.n, self.first, self.step, self.customers = first, first, step, customers
        self.deadline, self.latencies, self.failures, self.done = deadline, latencies, failures, done

    def connection_made(self, transport):
        self.transport = transport
        self.buf = b""
        self.send()

    def send(self):
        if time.monotonic() >= self.deadline:
            self.transport.close()
            return
        self.started = time.perf_counter()
        self.verifying = False
        self.transport.write(b"GET /v1/send-authentication-code?CustomerId=c%d&TwoFactorAuthSelectedMethod=SMS"
                             b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % self.n)

    def data_received(self, data):
        self.buf += data
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        size = end + 4 + content_length(self.buf[:end])
        if len(self.buf) < size:
            return
        ok = self.buf[9:12] == b"200" and SUCCESS in self.buf[end + 4 : size]
        answer = self.buf[:size]
        self.buf = self.buf[size:]
        n = self.n
        if not self.verifying:
            code = Sink.codes.pop(b"447911%06d" % n, None)
            if ok and code:
                self.verifying = True
                self.transport.write(b"GET /v1/code-authentication?CustomerId=c%d&authCode_nbest1=%s"
                                     b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % (n, code))
                return
            self.failures.append(f"send c{n}: code={code} {answer[-200:]!r}")
        elif ok:
            self.latencies.append(time.perf_counter() - self.started)
        else:
            self.failures.append(f"verify c{n}: {answer[-200:]!r}")
        self.n = n + self.step if n + self.step < self.customers else self.first
        self.send()

    def connection_lost(self, exc):
        if time.monotonic() < self.deadline:
            self.failures.append(f"the service closed a connection: {exc}")
        self.done.set_result(None)


async def main():
    service_port, sink_port, customers, loops, seconds = map(int, sys.argv[1:6])
    loop = asyncio.get_running_loop()
    sink = await loop.create_server(Sink, "127.0.0.1", sink_port, backlog=1024)
    latencies, failures, done = [], [], [loop.create_future() for _ in range(loops)]
    cpu0, t0 = os.times(), time.monotonic()
    for i in range(loops):
        await loop.create_connection(
            lambda i=i: Caller(i, loops, customers, t0 + seconds, latencies, failures, done[i]),
            "127.0.0.1", service_port)
    await asyncio.gather(*done)
    elapsed, cpu1 = time.monotonic() - t0, os.times()
    sink.close()
    cpu = (cpu1.user - cpu0.user + cpu1.system - cpu0.system) / elapsed * 100
    for f in failures[:5]:
        print("cycle failed:", f, file=sys.stderr)
    latencies.sort()
    pct = lambda p: latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else 0
    print(f"{len(latencies) / elapsed:.0f} {pct(0.50):.2f} {pct(0.99):.2f} {len(latencies)} {len(failures)} {cpu:.0f}")


if __name__ == "__main__":
    asyncio.run(main())
