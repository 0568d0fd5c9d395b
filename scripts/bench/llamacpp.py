"""llama.cpp (llama-cpp-python) side of scripts/bench-local: same workload, same threads.

Prints one JSON object with per-run samples, like examples/bench_local.rs.
"""
import json, resource, sys, time

from llama_cpp import Llama
from llama_cpp.llama_chat_format import Jinja2ChatFormatter

sys.path.insert(0, __file__.rsplit("/", 1)[0])
import workload  # noqa: E402

model, threads, runs, max_tokens = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])

t0 = time.perf_counter()
llm = Llama(model_path=model, n_threads=threads, n_threads_batch=threads, n_ctx=4096, verbose=False)
load_s = time.perf_counter() - t0
# The chat template as llama-cpp-python applies it, so prompt tokens count what is prefilled
# (template included), as tandem's usage does.
formatter = Jinja2ChatFormatter(llm.metadata["tokenizer.chat_template"], eos_token="", bos_token="")


def prompt_len(messages):
    prompt = formatter(messages=messages).prompt
    return len(llm.tokenize(prompt.encode(), add_bos=False, special=True))


def turn(messages):
    start = time.perf_counter()
    first = last = None
    text, n = "", 0
    for chunk in llm.create_chat_completion(messages=messages, max_tokens=max_tokens, temperature=0.0, stream=True):
        delta = chunk["choices"][0]["delta"].get("content")
        if delta:
            now = time.perf_counter()
            first = first or now
            last = now
            text += delta
            n += 1
    ttft = (first - start) if first else 0.0
    decode = (n - 1) / (last - first) if first and last and last > first else 0.0
    return text, ttft, decode, n


samples = {}
for case in workload.CASES if runs else []:
    rows = []
    for run in range(runs):
        msgs = workload.case_messages(case, run)
        llm.reset()  # cold: nothing of an earlier run is reused
        prompt_tokens = prompt_len(msgs)
        text, ttft_cold, decode, n = turn(msgs)
        msgs2 = msgs + [{"role": "assistant", "content": text}, {"role": "user", "content": workload.Q2}]
        _, ttft_warm, _, _ = turn(msgs2)
        rows.append({"ttft_cold": ttft_cold, "ttft_warm": ttft_warm, "decode_tps": decode,
                     "prompt_tokens": prompt_tokens, "prefill_tps": prompt_tokens / ttft_cold if ttft_cold else 0})
    samples[case] = rows

rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"engine": "llama.cpp", "load_s": load_s, "rss_mb": rss_mb, "samples": samples}))
