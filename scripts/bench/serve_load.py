"""The load run behind scripts/bench-serve; stdlib only, so the client adds as little as it can.

Phases, all in one run against one llama.cpp server:
1. overhead: the same streamed request (temperature 0, 1 token, a prompt llama.cpp has cached)
   sent alternately straight to llama.cpp and through tandem/cloud, one at a time; tandem's
   overhead is the median of the paired differences.
2. load: REQUESTS requests at CONCURRENCY, alternating tandem/local and tandem/cloud, streamed.
3. SIGTERM while CONCURRENCY streams run: each must end with [DONE] or a clean close; exit 0.
"""

import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor

REQUESTS = int(sys.argv[1])
CONCURRENCY = int(sys.argv[2])
PAIRS = 60
MAX_TOKENS = 16
PROMPTS = [
    "Say hello.",
    "Name a colour.",
    "Give me a word that rhymes with cat.",
    "What is two plus two?",
    "Name a fruit.",
    "Say good morning in French.",
    "Name an animal that lives in the sea.",
    "Give one word for happy.",
]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def get(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        c.request("GET", path)
        r = c.getresponse()
        return r.status, r.read()
    except OSError:
        return 0, b""
    finally:
        c.close()


def stream(port, model, prompt, max_tokens, conn=None, on_first=None):
    """One streamed request; returns (status, seconds, ended_with_done)."""
    body = json.dumps({
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": True,
    })
    own = conn is None
    c = conn or http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    t0 = time.perf_counter()
    try:
        c.request("POST", "/v1/chat/completions", body, {"Content-Type": "application/json"})
        r = c.getresponse()
        done, first = False, True
        while True:
            line = r.readline()
            if not line:
                break
            if line.startswith(b"data: ") and first and on_first:
                first = False
                on_first()
            if line.strip() == b"data: [DONE]":
                done = True
        r.read()
        return r.status, time.perf_counter() - t0, done
    except (OSError, http.client.HTTPException):
        return 0, time.perf_counter() - t0, False
    finally:
        if own:
            c.close()


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main():
    venv = os.environ.get("TANDEM_TEST_VENV", os.path.expanduser("~/.cache/tandem-venv"))
    models = os.environ["TANDEM_MODELS_DIR"]
    model = os.path.join(models, "smollm2-135m.gguf")
    tmp = tempfile.mkdtemp()
    lport, tport = free_port(), free_port()
    llama = subprocess.Popen(
        [f"{venv}/bin/python", "-m", "llama_cpp.server", "--model", model, "--host", "127.0.0.1",
         "--port", str(lport), "--n_threads", "1", "--n_ctx", "2048",
         "--interrupt_requests", "False", "--model_alias", "smollm2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    cfg = os.path.join(tmp, "config/tandem")
    os.makedirs(cfg)
    with open(os.path.join(cfg, "config.toml"), "w") as f:
        f.write(f'[providers.llamacpp]\nbase_url = "http://127.0.0.1:{lport}/v1"\n'
                'models = [{ name = "smollm2", context_window = 2048, input_price = 0.15, output_price = 0.60 }]\n'
                '[local]\nthreads = 1\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("TANDEM_")}
    env.update({"TANDEM_MODELS_DIR": models, "HOME": tmp,
                "XDG_CONFIG_HOME": f"{tmp}/config", "XDG_DATA_HOME": f"{tmp}/data",
                "XDG_STATE_HOME": f"{tmp}/state", "XDG_CACHE_HOME": f"{tmp}/cache",
                "TANDEM_SERVE__GRACE_SECS": "2"})
    log = open(os.path.join(tmp, "serve.log"), "w")
    tandem = subprocess.Popen([os.environ["TANDEM_BIN"], "serve", "--port", str(tport), "--json"],
                              env=env, stdout=subprocess.DEVNULL, stderr=log)
    try:
        deadline = time.time() + 180
        def local_ready():
            status, body = get(tport, "/health")
            return status == 200 and json.loads(body)["local"]["state"] == "ready"

        while get(lport, "/v1/models")[0] != 200 or not local_ready():
            if time.time() > deadline:
                sys.exit("servers did not get ready")
            time.sleep(0.2)
        # Warm both paths (llama.cpp's prompt cache, tandem's connection pool).
        for _ in range(3):
            stream(lport, "smollm2", PROMPTS[0], 1)
            stream(tport, "tandem/cloud", PROMPTS[0], 1)
        rss_start = rss_mb(tandem.pid)

        # 1. paired overhead, one at a time over kept-alive connections on both sides.
        cd = http.client.HTTPConnection("127.0.0.1", lport, timeout=60)
        ct = http.client.HTTPConnection("127.0.0.1", tport, timeout=60)
        direct, through, diffs = [], [], []
        for _ in range(PAIRS):
            _, d, _ = stream(lport, "smollm2", PROMPTS[0], 1, conn=cd)
            _, t, _ = stream(tport, "tandem/cloud", PROMPTS[0], 1, conn=ct)
            direct.append(d)
            through.append(t)
            diffs.append(t - d)
        cd.close()
        ct.close()

        # 2. the load run.
        def one(i):
            model = "tandem/local" if i % 2 == 0 else "tandem/cloud"
            status, secs, done = stream(tport, model, PROMPTS[i % len(PROMPTS)], MAX_TOKENS)
            return model, status, secs, done

        t0 = time.perf_counter()
        with ThreadPoolExecutor(CONCURRENCY) as ex:
            results = list(ex.map(one, range(REQUESTS)))
        wall = time.perf_counter() - t0
        rss_end = rss_mb(tandem.pid)

        # 3. SIGTERM while streams run.
        started = threading.Semaphore(0)
        with ThreadPoolExecutor(CONCURRENCY) as ex:
            futs = [ex.submit(stream, tport, "tandem/local" if i % 2 == 0 else "tandem/cloud",
                              "Write a very long story about a dragon and a lighthouse.", 200,
                              None, started.release) for i in range(CONCURRENCY)]
            started.acquire(timeout=60)
            t_sig = time.perf_counter()
            tandem.send_signal(signal.SIGTERM)
            ends = [f.result() for f in futs]
        code = tandem.wait(timeout=30)
        stopped_in = time.perf_counter() - t_sig
    finally:
        for p in (tandem, llama):
            if p.poll() is None:
                p.kill()
                p.wait()

    ms = lambda x: x * 1000
    errors = [r for r in results if r[1] != 200 or not r[3]]
    print(f"## tandem serve load run ({REQUESTS} requests, concurrency {CONCURRENCY}, {MAX_TOKENS} tokens each)")
    print()
    print("| measure | value |")
    print("|---|---:|")
    print(f"| errors | {len(errors)} of {REQUESTS} |")
    for label, sel in [("all", results), ("tandem/local", [r for r in results if r[0] == "tandem/local"]),
                       ("tandem/cloud", [r for r in results if r[0] == "tandem/cloud"])]:
        lat = [r[2] for r in sel]
        print(f"| latency {label}: p50 / p99 | {ms(pct(lat, 50)):.0f} ms / {ms(pct(lat, 99)):.0f} ms |")
    print(f"| throughput | {REQUESTS / wall:.2f} requests/s ({wall:.1f} s wall) |")
    print(f"| direct to llama.cpp, 1 token, p50 ({PAIRS} pairs) | {ms(statistics.median(direct)):.2f} ms |")
    print(f"| through tandem/cloud, same request, p50 | {ms(statistics.median(through)):.2f} ms |")
    print(f"| tandem overhead per request, p50 of paired differences (goal < 2 ms) | {ms(statistics.median(diffs)):.2f} ms |")
    print(f"| tandem overhead, p90 of paired differences | {ms(pct(diffs, 90)):.2f} ms |")
    print(f"| tandem RSS at start / end of the load run | {rss_start:.0f} MB / {rss_end:.0f} MB |")
    clean = sum(1 for e in ends if e[2] or e[0] == 200)
    print(f"| SIGTERM with {CONCURRENCY} streams running | {sum(1 for e in ends if e[2])} ended with [DONE], "
          f"{clean - sum(1 for e in ends if e[2])} closed cleanly, exit {code}, stopped in {stopped_in:.1f} s |")
    if errors:
        print("errors:", errors[:5], file=sys.stderr)
    sys.exit(0 if not errors and code == 0 else 1)


if __name__ == "__main__":
    main()
