"""Stand-in for `bentoml serve TAG --host HOST --port PORT`: answers /readyz and /livez, and misbehaves on request.

Not BentoML: a standard-library HTTP server that serves in a second, so the local deploy target's
tests run in seconds. Like BentoML it can start a worker in a session of its own. Its environment
says how to misbehave:
  STANDIN_CRASH_ON_START=MESSAGE  print a traceback ending in "RuntimeError: MESSAGE" and exit 1 at once
  STANDIN_CRASH_AFTER=SECONDS     exit 1 that long after it started listening, with "RuntimeError: ..."
  STANDIN_CRASH_ONCE=FILE         with STANDIN_CRASH_AFTER: crash only when FILE exists, and remove it
  STANDIN_NEVER_READY=1           /readyz answers 503 forever
  STANDIN_STARTUP_FAILED=MESSAGE  log "RuntimeError: MESSAGE" and "Application startup failed", then live on,
                                  never ready (BentoML's server outliving a service that failed to start)
  STANDIN_WORKER=1                start a worker process in a session of its own, as BentoML does
  STANDIN_CHATTER=1               write log lines continuously (about 50 kB/s)
GET /info answers {"tag", "pid", "worker_pid", "env"}: what it serves, its processes and its environment.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


def crash(message: str) -> None:
    print("Traceback (most recent call last):", flush=True)
    print('  File "service.py", line 1, in <module>', flush=True)
    print(f"RuntimeError: {message}", flush=True)
    os._exit(1)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("tag")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    print(f'Starting the stand-in server for "{args.tag}"', flush=True)
    if message := os.environ.get("STANDIN_CRASH_ON_START"):
        crash(message)
    worker = None
    if os.environ.get("STANDIN_WORKER"):
        worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
    ready = not os.environ.get("STANDIN_NEVER_READY")
    if message := os.environ.get("STANDIN_STARTUP_FAILED"):
        print(f"Traceback (most recent call last):\nRuntimeError: {message}", flush=True)
        print("ERROR:    Application startup failed. Exiting.", flush=True)
        ready = False

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path == "/info":
                info = {
                    "tag": args.tag,
                    "pid": os.getpid(),
                    "worker_pid": worker and worker.pid,
                    "env": dict(os.environ),
                }
                self.answer(200, info)
            elif self.path == "/livez":
                self.answer(200, {})
            elif self.path == "/readyz":
                self.answer(200 if ready else 503, {})
            else:
                self.answer(404, {})

        def answer(self, status: int, body: object) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *values: object) -> None:
            pass

    server = ThreadingHTTPServer((args.host, args.port), Handler)
    print(f"listening on http://{args.host}:{args.port}", flush=True)
    if not ready:
        print("waiting for the model to load", flush=True)
    if seconds := os.environ.get("STANDIN_CRASH_AFTER"):
        once = os.environ.get("STANDIN_CRASH_ONCE")
        if not once or Path(once).exists():
            if once:
                Path(once).unlink()
            threading.Timer(float(seconds), crash, [f"crashed after {seconds} s"]).start()
    if os.environ.get("STANDIN_CHATTER"):

        def chatter() -> None:
            for number in range(10**9):
                print(f"line {number:09d} " + "x" * 80, flush=True)
                time.sleep(0.002)

        threading.Thread(target=chatter, daemon=True).start()
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
