"""scripts/fit-router's checks on arena-bench's chat prompts (`--arena-bench DIR`): whether the
judgement weights hold on chat prompts judged like MT-Bench, for the same model pair and twelve
others, and what fitting those prompts instead would do to MT-Bench and the mmlu_dev folds.
docs/routing-eval.md ("Chat prompts (arena-bench)") explains the rules."""
import hashlib, os

import numpy as np

from routing_fit import (GRID_LENGTH, GRID_OPEN_ENDED, OPEN_ENDED_JUDGEMENT, PRIORS,
                         SEARCH_BOUNDS, Data, apgr, ascend, bounded_ridge, fixed_weights,
                         fold_margins, load, moved, route, spearman)

# Arena-bench's strong and weak model: the pair RouteLLM's outcomes in shared/data compare.
ARENA_PAIR = ("gpt-4-turbo", "Mixtral-8x7B-Instruct-v0.1")
# What `quality` must still send out for the 135M default ("only greetings, thanks and short
# rewrites stay local"): short creative asks, which MT-Bench and mmlu_dev do not have.
SHORT_CREATIVE_ASKS = [{"id": f"ask-{i}", "prompt": p} for i, p in enumerate([
    "Write a haiku about autumn", "Tell me a joke", "Write a short poem about the sea",
    "Suggest a name for my dog", "Write a story about a dragon"])]
OTHER_MOVES = {"code": (1.0, 2.0, 4.0, 6.0), "math": (0.0, 1.0, 2.0), "steps": (2.0, 4.0, 6.0),
               "quantities": (0.0, 4.0, 12.0), "output_length": (-1.0, 1.0), "brevity": (-1.0, 1.0)}


def arena_bench(path, cmd, d, mt, names, mmlu_rows, mt_rows, wp=None):
    """Arena-bench-v1 (in lm-sys/arena-hard-auto's history, commit ac4ad9a): 300 hard prompts
    from Chatbot Arena, each answered by gpt-4-1106-preview and Mixtral-8x7B and graded 1-10 by
    GPT-4 against a reference answer, as MT-Bench is. The same pair as shared/data, on chat
    prompts that none of our data holds. It checks `open_ended` by one rule: among the grid
    points that beat length on every mmlu_dev fold by at least 0.001 and keep the `quality`
    preset's meaning for the 135M default (no MT-Bench or mmlu_dev prompt and none of
    SHORT_CREATIVE_ASKS kept local), the one whose gain over the judgement value has the highest
    lower bound (2.5th percentile of a paired bootstrap), so the weight moves only as far as the
    data surely supports. The other weights
    are moved one at a time to show whether any other move is surely better."""
    def judged(model):
        rows = load(os.path.join(path, "model_judgment", model + ".jsonl"))
        return {r["question_id"]: r["score"] for r in rows if r.get("score") is not None}

    seen = {r["prompt"] for r in mt_rows}
    questions = [{"id": q["question_id"], "prompt": q["turns"][0]}
                 for q in load(os.path.join(path, "question.jsonl")) if q["turns"][0] not in seen]
    routed = dict(zip((q["id"] for q in questions), route(cmd, questions)))
    strong = judged(ARENA_PAIR[0])

    def pair(weak_model):
        weak = judged(weak_model)
        rows = [{**q, "category": "arena", "strong": float(strong[q["id"]]),
                 "weak": float(weak[q["id"]])}
                for q in questions if q["id"] in strong and q["id"] in weak]
        return Data(rows, [routed[r["id"]] for r in rows], names)

    a = pair(ARENA_PAIR[1])
    n = len(a.gap)
    rng = np.random.default_rng(0)
    boots = [rng.integers(0, n, n) for _ in range(1000)]

    def paired(w, w0):
        s, s0 = a.X @ w, a.X @ w0
        g = np.array([apgr(s[b], a.strong[b], a.weak[b]) - apgr(s0[b], a.strong[b], a.weak[b])
                      for b in boots])
        return g.mean(), np.percentile(g, 2.5), np.percentile(g, 97.5)

    shipped = fixed_weights(d, names)
    spread = np.std([apgr((a.X @ shipped)[b], a.strong[b], a.weak[b]) for b in boots])
    print(f"\n## Arena-bench: {n} chat prompts, {ARENA_PAIR[0]} vs {ARENA_PAIR[1]}, GPT-4 graded\n")
    print(f"router {a.apgr(a.X @ shipped):.3f} (bootstrap sd {spread:.3f}); length alone "
          f"{a.apgr(a.words):.3f}; the build's own scores {a.apgr(a.score):.3f}\n")

    def quality_local(rows, open_ended):
        """The share of `rows` the build itself keeps local under `quality` with this weight."""
        env = {"TANDEM_ROUTER__PRESET": "quality",
               "TANDEM_ROUTER__WEIGHTS__OPEN_ENDED": str(open_ended)}
        return np.mean([any(r["code"] == "score_below_threshold" for r in o["reasons"])
                        for o in route(cmd, rows, env)])

    judgement = moved(shipped, names, open_ended=OPEN_ENDED_JUDGEMENT)
    print(f"| open_ended | arena-bench | gain over {OPEN_ENDED_JUDGEMENT} [95% interval] | "
          "worst mmlu_dev fold vs length | quality keeps local (MT-Bench, mmlu_dev, short asks) | "
          "MT-Bench |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    best = None
    for v in GRID_OPEN_ENDED:
        w = moved(shipped, names, open_ended=v)
        gain, lo, hi = paired(w, judgement)
        worst = min(fold_margins(d, w))
        kept = (quality_local(mt_rows, v), quality_local(mmlu_rows, v),
                quality_local(SHORT_CREATIVE_ASKS, v))
        print(f"| {v} | {a.apgr(a.X @ w):.3f} | {gain:+.4f} [{lo:+.4f}, {hi:+.4f}] | {worst:+.3f} | "
              f"{kept[0]:.1%}, {kept[1]:.1%}, {kept[2]:.0%} | {mt.apgr(mt.X @ w):.3f} |")
        if worst >= 0.001 and max(kept) == 0 and (best is None or lo > best[0]):
            best = (lo, v)
    if best:
        print(f"\nhighest lower bound with every fold won by 0.001 or more and `quality` keeping "
              f"nothing local: open_ended {best[1]}; shipped: {PRIORS['open_ended']}")
    print("\n| weight moved from the shipped value | to | gain [95% interval] |")
    print("| --- | ---: | ---: |")
    for k, grid in OTHER_MOVES.items():
        if k not in names:
            continue
        for v in grid:
            gain, lo, hi = paired(moved(shipped, names, **{k: v}), shipped)
            print(f"| {k} ({shipped[names.index(k)]:g}) | {v:g} | {gain:+.4f} [{lo:+.4f}, {hi:+.4f}] |")

    pairs = []
    print(f"\n## The same prompts against other weak models ({ARENA_PAIR[0]} stays the strong one)\n")
    open_ended_6 = moved(shipped, names, open_ended=-6.0)
    print("| weak model | prompts | its mean grade | length alone | router | difference | "
          "router, open_ended -6 |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for f in sorted(os.listdir(os.path.join(path, "model_judgment"))):
        m = f.removesuffix(".jsonl")
        if not f.endswith(".jsonl") or m == ARENA_PAIR[0] or "judge" in m or m.endswith("_single"):
            continue
        o = a if m == ARENA_PAIR[1] else pair(m)
        pairs.append(o)
        r, l = o.apgr(o.X @ shipped), o.apgr(o.words)
        print(f"| {m} | {len(o.gap)} | {o.weak.mean():.2f} | {l:.3f} | {r:.3f} | {r - l:+.3f} | "
              f"{o.apgr(o.X @ open_ended_6):.3f} |")
    chat_fit(d, mt, names, shipped, pairs)
    if wp is not None:
        chat_search(d, mt, names, shipped, pairs, wp)


def chat_fit(d, mt, names, shipped, pairs):
    """Whether chat prompts could set the weights MT-Bench needs: a ridge fit of the grade gap on
    the weighted features, pooled over every arena-bench pair, and length's weight moved alone.
    Reported, never shipped: MT-Bench stays unfitted, the folds and word problems judge."""
    def row(w):
        mean = np.mean([o.apgr(o.X @ w) for o in pairs])
        return f"{mean:.3f} | {min(fold_margins(d, w)):+.3f} | {mt.apgr(mt.X @ w):.3f} |"

    cols = [i for i, v in enumerate(shipped) if v != 0]
    X = np.vstack([o.X[:, cols] for o in pairs])
    y = np.concatenate([o.gap for o in pairs])
    X, y = X - X.mean(0), y - y.mean()  # centred: the intercept is not penalised
    print(f"\n## Weights fitted on the arena-bench pairs themselves ({len(pairs)} pooled, "
          f"{len(y):,} graded answers)\n")
    print("| ridge alpha | length's weight | arena-bench, mean over pairs (in-sample) | "
          "worst mmlu_dev fold vs length | MT-Bench |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for alpha in (1.0, 10.0, 100.0):
        w = np.zeros(len(names))
        w[cols] = bounded_ridge(X, y, [""] * len(cols), alpha / len(y), sweeps=2000)
        print(f"| {alpha:g} | {w[names.index('length')] / np.abs(w).sum():+.2f} of the total | {row(w)}")
    print("\n| length's weight (others shipped) | arena-bench, mean over pairs | "
          "worst mmlu_dev fold vs length | MT-Bench |")
    print("| ---: | ---: | ---: | ---: |")
    for v in GRID_LENGTH:
        print(f"| {v:g} | {row(moved(shipped, names, length=v))}")


def chat_search(d, mt, names, shipped, pairs, wp):
    """Whether chat prompts could set all the judgement weights at once: a coordinate search on
    a random half of arena-bench's prompts (mean APGR over the pairs), length fixed, under the
    rules the shipped weights keep (every mmlu_dev fold won by 0.001, word problems no worse),
    scored on the other half and on MT-Bench. Five random splits, each half fitted once; with
    `open_ended` held at its judgement value, then free. Reported, never shipped."""
    X, calcs = wp
    floor = spearman(X @ shipped, calcs)

    def mean_apgr(w, keep):
        return np.mean([o.apgr(o.X @ w, k) for o, k in zip(pairs, keep)])

    def allowed(w):
        return min(fold_margins(d, w)) >= 0.001 and spearman(X @ w, calcs) >= floor

    print("\n## All judgement weights searched on half the arena-bench prompts, scored on the other half\n")
    print("| open_ended | other half: gain over shipped, median (range) | searches improved | "
          "MT-Bench, median (range) |")
    print("| --- | ---: | ---: | ---: |")
    ids = set().union(*(o.ids for o in pairs))
    splits = []  # per seed, each pair's prompts marked 0 or 1
    for seed in range(5):
        half = {q: int(hashlib.md5(f"{seed}:{q}".encode()).hexdigest(), 16) % 2 for q in ids}
        splits.append([np.array([half[q] for q in o.ids]) for o in pairs])
    bounds = {k: v for k, v in SEARCH_BOUNDS.items() if k in names}
    free = bounds["open_ended"]
    for lo in (OPEN_ENDED_JUDGEMENT, free[0]):
        bounds["open_ended"] = (lo, free[1])
        gains, mts = [], []
        for halves in splits:
            for h in (0, 1):
                fit_on, other = [x == h for x in halves], [x != h for x in halves]
                w = ascend(shipped, names, bounds, lambda w: mean_apgr(w, fit_on), allowed)
                gains.append(mean_apgr(w, other) - mean_apgr(shipped, other))
                mts.append(mt.apgr(mt.X @ w))
        held = "held at " if lo == OPEN_ENDED_JUDGEMENT else "free from "
        print(f"| {held}{lo:g} | {np.median(gains):+.3f} ({min(gains):+.3f} to {max(gains):+.3f}) | "
              f"{sum(g > 0 for g in gains)} of {len(gains)} | {np.median(mts):.3f} "
              f"({min(mts):.3f} to {max(mts):.3f}) |")
