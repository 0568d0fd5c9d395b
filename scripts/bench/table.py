"""Turns two engines' samples into a markdown table of medians and ratios (first / second)."""
import json, statistics, sys

a, b = (json.load(open(p)) for p in sys.argv[1:3])
# Optional: per-process load samples (one JSON object per line), whose median replaces the
# single load inside the workload run.
for engine, path in zip((a, b), sys.argv[3:5]):
    loads = [json.loads(line)["load_s"] for line in open(path) if line.strip()]
    engine["load_s"] = statistics.median(loads)
med = lambda rows, k: statistics.median(r[k] for r in rows)
print(f"| case | metric | {a['engine']} | {b['engine']} | ratio |")
print("|---|---|---|---|---|")
for case in a["samples"]:
    for key, label, unit in [("decode_tps", "decode", "tok/s"), ("prefill_tps", "prefill", "tok/s"),
                             ("ttft_cold", "TTFT cold", "s"), ("ttft_warm", "TTFT warm (2nd turn)", "s")]:
        x, y = med(a["samples"][case], key), med(b["samples"][case], key)
        ratio = x / y if y else float("nan")
        print(f"| {case} | {label} | {x:.3f} {unit} | {y:.3f} {unit} | {ratio:.2f}x |")
print(f"| all | load | {a['load_s']:.2f} s | {b['load_s']:.2f} s | {a['load_s'] / b['load_s']:.2f}x |")
print(f"| all | peak RSS | {a['rss_mb']:.0f} MB | {b['rss_mb']:.0f} MB | {a['rss_mb'] / b['rss_mb']:.2f}x |")
