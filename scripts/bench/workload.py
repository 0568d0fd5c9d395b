"""The shared benchmark workload: the same prompts for tandem and llama.cpp.

Each case is a conversation history (short, ~500 tokens, ~1,500 tokens) followed by two user
turns; the first turn's time to first token is "cold" (nothing cached), the second's is "warm"
(the engine may reuse the first turn's KV cache).
"""
import json
import sys

PARAGRAPHS = [
    "The river town kept its old stone bridge, and every spring the water rose to touch the third arch.",
    "Merchants brought wool, salt and dried fish, and the market square smelled of smoke and rain.",
    "A clockmaker lived above the bakery and repaired watches for the farmers who came on Thursdays.",
    "The school had two rooms, one stove and a map of the world on which half the names had changed.",
    "In winter the children skated on the mill pond while their parents argued about the price of grain.",
    "The doctor rode a grey horse and carried a leather bag that had belonged to his grandfather.",
    "Letters arrived twice a week, and the postmistress read every postcard before she delivered it.",
    "On the hill above the town an observatory stood empty, its telescope pointed at the same star for years.",
]


def history(target_tokens):
    msgs, tokens, i = [], 0, 0
    while tokens < target_tokens:
        text = " ".join(PARAGRAPHS[(i + k) % len(PARAGRAPHS)] for k in range(4))
        msgs.append({"role": "user", "content": f"Tell me more about the town, part {i + 1}."})
        msgs.append({"role": "assistant", "content": text})
        tokens += len(text) // 4 + 12
        i += 1
    return msgs


CASES = {"short": 0, "hist500": 500, "hist1500": 1500}
Q1 = "Run {run}: in one sentence, what is the town known for?"
Q2 = "And what did the doctor ride?"


def case_messages(name, run):
    # The first line differs in every run, so no engine can reuse an earlier run's KV cache:
    # the first turn is cold for both, and only the second turn may hit a cache.
    system = {"role": "system", "content": f"Session {name}-{run}. You are a helpful assistant."}
    return [system] + history(CASES[name]) + [{"role": "user", "content": Q1.format(run=run)}]


if __name__ == "__main__":
    # Prints the workload as JSON for the Rust side: {case: [messages for run 0..n]}.
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 5
    print(json.dumps({"q2": Q2, "cases": {c: [case_messages(c, r) for r in range(runs)] for c in CASES}}))
