"""The core of scripts/fit-router: route-eval's APGR, the router's features read from
`tandem route --batch --json`, the leave-subjects-out folds and the fit. The weights and the
rules that set them are explained in docs/routing-eval.md."""
import functools, json, os, shlex, subprocess, sys

import numpy as np


# What each feature is to the fit. Signs are decided before fitting, from what the feature
# means: multi-step and maths signals may only raise the score, recall only lower it.
FITTED = {"steps": "+", "quantities": "+"}
# Set on word problems (--word-problems): see the grid it prints.
WORD_PROBLEM_WEIGHTS = {"steps": 3.0, "quantities": 8.0}
GRID_STEPS = (2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0)
GRID_QUANTITIES = (0.0, 2.0, 4.0, 6.0, 8.0, 10.0, 12.0)
# Grid points whose rank correlations are this close count as tied; the smaller weights win.
WORD_PROBLEM_TIE = 0.001
# Checked on third-party chat prompts judged like MT-Bench (--arena-bench): the judgement value
# stays unless a move is surely better and keeps the presets' meaning for the 135M default.
OPEN_ENDED_JUDGEMENT = -2.0
GRID_OPEN_ENDED = (0.0, -1.0, -2.0, -3.0, -4.0, -5.0, -6.0, -7.0, -8.0)
# Length's weight moved alone (--word-problems, --arena-bench): what chat prompts would take.
GRID_LENGTH = (8.0, 6.0, 4.0, 2.0, 0.0)
# Length's weights the nested check (--nested-length) chooses among.
GRID_NESTED_LENGTH = (8.0, 7.0, 6.0, 5.0, 4.0, 3.0, 2.0)
# Where fit-router's joint search (--arena-bench with --word-problems) moves the judgement weights.
SEARCH_BOUNDS = {"code": (0.0, 8.0), "open_ended": (-8.0, 0.0), "math": (0.0, 4.0),
                 "steps": (0.0, 10.0), "quantities": (0.0, 12.0), "output_length": (-3.0, 3.0),
                 "brevity": (-3.0, 3.0)}
# Signals that were tried and left out (each is re-tested with --tried when the build has it).
TRIED = {"numbers": "+", "how_many": "+", "change": "+", "conditions": "+", "causal": "+",
         "structure": "+", "reasoning": "+", "recall": "-", "plain_wording": "+"}
# Fixed weights in logit units, not fitted on mmlu_dev. It has almost no code, no writing asks and
# little symbolic maths below college level, so code, open_ended and math are set by judgement
# (docs/routing-eval.md; --arena-bench checks them on chat prompts); the rest cannot be measured
# on single-turn English benchmarks.
PRIORS = {"code": 3.0, "open_ended": OPEN_ENDED_JUDGEMENT, "math": 0.5, "trivial": -4.0,
          "non_english": 1.0, "conversation_depth": 0.75, "output_length": 0.0, "brevity": 0.0,
          **WORD_PROBLEM_WEIGHTS}
# Length's weight in logit units: 10 to 1,000 words spans about 4.3 (length 0.29 -> 0.83).
W_LEN = 8.0
SIGNS = {**FITTED, **TRIED}
GROUPS = {
    "STEM": "abstract_algebra astronomy college_chemistry college_mathematics college_physics "
            "conceptual_physics electrical_engineering high_school_biology "
            "high_school_computer_science",
    "humanities": "formal_logic high_school_us_history international_law logical_fallacies "
                  "moral_disputes prehistory professional_law world_religions",
    "social sciences": "high_school_geography high_school_macroeconomics "
                       "high_school_microeconomics high_school_psychology "
                       "professional_psychology security_studies us_foreign_policy",
    "other": "clinical_knowledge human_aging management medical_genetics nutrition",
}


def apgr(scores, strong, weak):
    """route-eval's APGR: area under performance-gap-recovered vs share sent to the strong model;
    tied scores count as one step (a coin flip within the tie)."""
    scores, strong, weak = (np.asarray(a, float) for a in (scores, strong, weak))
    n = len(scores)
    order = np.argsort(-scores, kind="stable")
    gap = (strong.mean() - weak.mean()) or 1e-9
    s, d = scores[order], (strong - weak)[order]
    ends = np.append(np.flatnonzero(np.diff(s) != 0) + 1, n)
    x = np.concatenate([[0.0], ends / n])
    y = np.concatenate([[0.0], np.cumsum(d)[ends - 1] / n / gap])
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2))


def load(path):
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def route(cmd, rows, env=None):
    """The build's routing of `rows`, one JSON object per row; `env` adds config overrides
    (TANDEM_ROUTER__...)."""
    feed = "".join(json.dumps({"id": r["id"], "prompt": r["prompt"]}) + "\n" for r in rows)
    p = subprocess.run(shlex.split(cmd), input=feed, capture_output=True, text=True,
                       env={**os.environ, **(env or {})})
    if p.returncode != 0:
        sys.exit(f"fit-router: `{cmd}` exited {p.returncode}: {p.stderr.strip()[-500:]}")
    out = {}
    for line in p.stdout.splitlines():
        o = json.loads(line)
        out[o["id"]] = o
    if "features" not in next(iter(out.values())):
        sys.exit("fit-router: no `features` in the output; the command needs --json")
    return [out[r["id"]] for r in rows]


class Data:
    def __init__(self, rows, routed, names):
        self.ids = [r["id"] for r in rows]
        self.strong = np.array([r["strong"] for r in rows], float)
        self.weak = np.array([r["weak"] for r in rows], float)
        self.gap = self.strong - self.weak
        self.subject = np.array([r["category"] for r in rows])
        self.words = np.array([len(r["prompt"].split()) for r in rows])
        self.score = np.array([o["score"] for o in routed])
        self.X = np.array([[o["features"][k] for k in names] for o in routed], float)

    def apgr(self, scores, mask=None):
        m = slice(None) if mask is None else mask
        return apgr(scores[m], self.strong[m], self.weak[m])

    @functools.cached_property
    def fold_baselines(self):
        """Each leave-subjects-out fold's name, mask and length alone's APGR on it: the same for
        every weight tried, so worked out once."""
        return [(g, m, self.apgr(self.words, m)) for g, m in folds(self)]


def bounded_ridge(Z, y, signs, alpha, sweeps=300):
    """min |y - Zb|^2 / n + alpha |b|^2 with b_i >= 0 ('+'), <= 0 ('-') or free (any other
    sign): coordinate descent."""
    n, k = Z.shape
    b = np.zeros(k)
    col = (Z * Z).sum(0) / n + alpha
    r = y.copy()
    for _ in range(sweeps):
        for j in range(k):
            if col[j] == alpha:
                continue
            r += Z[:, j] * b[j]
            v = (Z[:, j] @ r) / n / col[j]
            v = max(v, 0.0) if signs[j] == "+" else min(v, 0.0) if signs[j] == "-" else v
            b[j] = v
            r -= Z[:, j] * v
    return b


def fit(d, idx, names, fitted, lam, alpha):
    """Weights (logit units, in `names` order) fitted on rows `idx` of `d`."""
    w = np.zeros(len(names))
    li = names.index("length")
    w[li] = W_LEN
    for k, v in PRIORS.items():
        if k in names:
            w[names.index(k)] = v
    cols = [names.index(k) for k in fitted]
    if not cols or lam == 0:
        return w
    X, y, subj = d.X[idx][:, cols], d.gap[idx].astype(float), d.subject[idx]
    Xd, yd = X.copy(), y.copy()
    for u in np.unique(subj):  # remove each subject's mean: only within-subject effects remain
        m = subj == u
        Xd[m] -= Xd[m].mean(0)
        yd[m] -= yd[m].mean()
    sd = Xd.std(0)
    sd[sd == 0] = 1
    b = bounded_ridge(Xd / sd, yd, [SIGNS[k] for k in fitted], alpha)
    if np.abs(b).sum() == 0:
        return w
    # Scale: the fitted features together weigh lam times length, both in standard deviations
    # of the training prompts (raw, not demeaned, so the scale is the one the router sees).
    raw_sd = X.std(0)
    raw_sd[raw_sd == 0] = 1
    len_sd = d.X[idx][:, li].std()
    bz = b * raw_sd / sd  # per raw-sd effect
    w_fit = bz / np.abs(bz).sum() * lam * W_LEN * len_sd / raw_sd
    w[cols] = w_fit
    return w


def ranks(a):
    """Ranks with ties averaged, for Spearman's correlation."""
    a = np.asarray(a, float)
    r = np.empty(len(a))
    r[np.argsort(a, kind="stable")] = np.arange(len(a))
    _, inv, counts = np.unique(a, return_inverse=True, return_counts=True)
    return (np.bincount(inv, weights=r) / counts)[inv]


def spearman(a, b):
    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def folds(d):
    subjects = sorted(set(d.subject))
    out = []
    for g, members in GROUPS.items():
        out.append((g, np.isin(d.subject, members.split())))
    for i in range(6):
        out.append((f"every 6th from {subjects[i]}", np.isin(d.subject, subjects[i::6])))
    missing = set(subjects) - {s for m in GROUPS.values() for s in m.split()}
    if missing:
        sys.exit(f"fit-router: subjects in no group: {sorted(missing)}")
    return out


def moved(w, names, **weights):
    """A copy of weights `w` with the named features set to new values."""
    w = w.copy()
    for k, v in weights.items():
        w[names.index(k)] = v
    return w


def fixed_weights(d, names):
    """The shipped weights: length and the priors, nothing fitted."""
    return fit(d, np.arange(len(d.gap)), names, [], 1.0, 0.01)


def fold_margins(d, w):
    """Each mmlu_dev fold's APGR under weights `w` minus length alone's on the same fold."""
    s = d.X @ w
    return [d.apgr(s, m) - length for _, m, length in d.fold_baselines]


def cross_validate(d, names, fitted, lam, alpha):
    rows = []
    for g, m, length in d.fold_baselines:
        w = fit(d, np.flatnonzero(~m), names, fitted, lam, alpha)
        rows.append((g, int(m.sum()), d.apgr(d.X @ w, m), length))
    return rows


def ascend(w, names, bounds, objective, allowed, step=0.5, rounds=6):
    """Coordinate ascent of `objective(w)` over the features in `bounds` ({name: (lo, hi)}),
    each tried on a grid of `step`, keeping only weights for which `allowed(w)` holds."""
    w, best = w.copy(), objective(w)
    for _ in range(rounds):
        improved = False
        for k, (lo, hi) in bounds.items():
            for v in np.arange(lo, hi + 1e-9, step):
                w2 = moved(w, names, **{k: v})
                s = objective(w2)
                if s > best + 1e-4 and allowed(w2):
                    w, best, improved = w2, s, True
        if not improved:
            break
    return w


def nested_length(d, names):
    """Whether length's fixed weight is the one the data would choose, without spending the
    held-out folds on choosing it: for each fold, the weight from GRID_NESTED_LENGTH with the best
    mean APGR over the other folds (their subjects only, the held-out ones removed), scored on the
    held-out fold beside the fixed weight. Reported, never shipped."""
    base = fixed_weights(d, names)
    scores = {v: d.X @ moved(base, names, length=v) for v in GRID_NESTED_LENGTH}
    print("\n## Length's weight chosen by the other folds alone (nested), scored on each fold\n")
    print(f"| held-out subjects | chosen | margin over length, fixed {W_LEN:g} | margin, chosen |")
    print("| --- | ---: | ---: | ---: |")
    fixed, nested = [], []
    for g, m, length in d.fold_baselines:
        inner = [m2 & ~m for g2, m2, _ in d.fold_baselines if g2 != g and (m2 & ~m).sum() > 50]
        pick = max(GRID_NESTED_LENGTH,
                   key=lambda v: np.mean([d.apgr(scores[v], k) for k in inner]))
        fixed.append(d.apgr(scores[W_LEN], m) - length)
        nested.append(d.apgr(scores[pick], m) - length)
        print(f"| {g} | {pick:g} | {fixed[-1]:+.3f} | {nested[-1]:+.3f} |")
    better = sum(b > a for a, b in zip(fixed, nested))
    print(f"\nmean margin: fixed {np.mean(fixed):+.4f}, nested {np.mean(nested):+.4f} ({better} of "
          f"{len(fixed)} folds better); worst: fixed {min(fixed):+.3f}, nested {min(nested):+.3f}")
