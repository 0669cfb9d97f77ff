#!/usr/bin/env python3
"""tcp_forward.py — a plain TCP forwarder for the testbed (stdlib only).

    tcp_forward.py --listen ADDR:PORT --to ADDR:PORT [--pid-file FILE]

Accepts connections on --listen and relays each, both ways, to --to. The
testbed uses it so that a host in another network namespace reaches a
service that listens on the root namespace's loopback only (Prometheus):
lbtarget.sh runs it with --listen on the host side of the target's veth.
Prints "listening on ADDR:PORT" on stdout once bound; SIGTERM ends it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys


def address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected ADDR:PORT, got {text!r}")
    return host, int(port)


async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            if writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, OSError):
            pass


async def relay(target: tuple[str, int], client_r, client_w) -> None:
    try:
        upstream_r, upstream_w = await asyncio.wait_for(asyncio.open_connection(*target), 10)
    except (OSError, asyncio.TimeoutError):
        client_w.close()
        return
    await asyncio.gather(pump(client_r, upstream_w), pump(upstream_r, client_w))
    for writer in (client_w, upstream_w):
        writer.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=address, required=True)
    parser.add_argument("--to", type=address, required=True)
    parser.add_argument("--pid-file")
    args = parser.parse_args()

    server = await asyncio.start_server(
        lambda r, w: relay(args.to, r, w), args.listen[0], args.listen[1], reuse_address=True
    )
    if args.pid_file:
        with open(args.pid_file, "w", encoding="ascii") as handle:
            handle.write(f"{os.getpid()}\n")
    print(f"listening on {args.listen[0]}:{args.listen[1]}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except OSError as exc:
        print(f"tcp_forward: {exc}", file=sys.stderr)
        sys.exit(1)
