//! `tandem route --stats FILE`: the share of a file's prompts each preset would keep local, and
//! how their scores spread, so a user can see what frugal, balanced and quality mean on their own
//! prompts. Reading and summing only: the scores are the router's, with the configured weights.

use std::io::{BufRead, Write};
use std::path::Path;

use anyhow::{Context, bail};
use serde_json::{Value, json};

use crate::config::{Preset, RouterConfig};
use crate::router::{self, Policy, policy::preset_threshold};

const PRESETS: [(Preset, &str); 3] = [
    (Preset::Frugal, "frugal"),
    (Preset::Balanced, "balanced"),
    (Preset::Quality, "quality"),
];
const QUANTILES: [(f64, &str); 7] = [
    (0.0, "min"),
    (0.1, "p10"),
    (0.25, "p25"),
    (0.5, "median"),
    (0.75, "p75"),
    (0.9, "p90"),
    (1.0, "max"),
];

/// Every prompt's score, sorted, with whether it held a secret: the privacy rule keeps those
/// local under any preset, so they count as local everywhere.
#[derive(Debug)]
pub struct Stats {
    scored: Vec<(f64, bool)>,
    /// "JSON lines" or "plain lines": how the input was read, so a surprise is visible.
    pub format: &'static str,
}

impl Stats {
    /// Reads prompts from `input`: JSON lines with a string "prompt" when the first non-empty
    /// line is such an object (the `--batch` format), otherwise one prompt per line.
    pub fn read(policy: &Policy, input: impl BufRead) -> anyhow::Result<Stats> {
        let mut scored = Vec::new();
        let mut json_lines = None;
        for (n, line) in input.split(b'\n').enumerate() {
            let line = line.context("reading the prompts")?;
            // Invalid UTF-8 is replaced rather than rejected, as in `--batch`.
            let text = String::from_utf8_lossy(&line);
            let text = text.trim_end_matches('\r');
            if text.trim().is_empty() {
                continue;
            }
            let object = serde_json::from_str::<Value>(text).ok();
            let prompt = object.as_ref().and_then(|o| o.get("prompt")?.as_str());
            let is_json = *json_lines.get_or_insert(prompt.is_some());
            let prompt = match (is_json, prompt) {
                (true, Some(p)) => p,
                (true, None) => bail!(
                    "line {}: expected a JSON object with a string \"prompt\", like the first line",
                    n + 1
                ),
                (false, _) => text,
            };
            let f = router::features(prompt, &[]);
            scored.push((policy.score(&f).0, f.has_secrets()));
        }
        if scored.is_empty() {
            bail!("no prompts: give JSON lines with \"prompt\", or one prompt per line");
        }
        scored.sort_by(|a, b| a.0.total_cmp(&b.0));
        let format = if json_lines == Some(true) {
            "JSON lines"
        } else {
            "plain lines"
        };
        Ok(Stats { scored, format })
    }

    pub fn len(&self) -> usize {
        self.scored.len()
    }

    pub fn is_empty(&self) -> bool {
        self.scored.is_empty()
    }

    pub fn secrets(&self) -> usize {
        self.scored.iter().filter(|s| s.1).count()
    }

    /// Prompts auto mode keeps local at `threshold` (with the cloud and the local model up).
    pub fn kept_local(&self, threshold: f64) -> usize {
        self.scored
            .iter()
            .filter(|(score, secret)| *score < threshold || *secret)
            .count()
    }

    /// The score at quantile `q` (nearest rank).
    pub fn quantile(&self, q: f64) -> f64 {
        let i = (q * (self.scored.len() - 1) as f64).round() as usize;
        self.scored[i].0
    }

    pub fn to_json(&self, configured: f64) -> Value {
        let n = self.len() as f64;
        let share = |t: f64| json!({"threshold": t, "local": self.kept_local(t), "local_share": self.kept_local(t) as f64 / n});
        let presets: Vec<Value> = PRESETS
            .iter()
            .map(|(p, name)| {
                let mut v = share(preset_threshold(*p));
                v["preset"] = json!(name);
                v
            })
            .collect();
        let quantiles: serde_json::Map<String, Value> = QUANTILES
            .iter()
            .map(|(q, name)| (name.to_string(), json!(self.quantile(*q))))
            .collect();
        json!({
            "prompts": self.len(),
            "format": self.format,
            "secrets": self.secrets(),
            "quantiles": quantiles,
            "presets": presets,
            "configured": share(configured),
        })
    }

    pub fn write_text(
        &self,
        cfg: &RouterConfig,
        configured: f64,
        out: &mut impl Write,
    ) -> anyhow::Result<()> {
        let n = self.len();
        let noun = if n == 1 { "prompt" } else { "prompts" };
        writeln!(
            out,
            "{n} {noun} ({}), {} with secrets (kept local under any preset)",
            self.format,
            self.secrets()
        )?;
        let q: Vec<String> = QUANTILES
            .iter()
            .map(|(q, name)| format!("{name} {:.2}", self.quantile(*q)))
            .collect();
        writeln!(out, "score: {}", q.join("  "))?;
        writeln!(out, "kept local in auto mode:")?;
        let line = |out: &mut dyn Write, label: &str, t: f64| {
            let k = self.kept_local(t);
            writeln!(
                out,
                "  {label:<24} threshold {t:.2}  {:>5.1}%  ({k} of {n})",
                100.0 * k as f64 / n as f64
            )
        };
        for (p, name) in PRESETS {
            line(out, name, preset_threshold(p))?;
        }
        let yours = match cfg.threshold {
            Some(_) => "your threshold".to_string(),
            None => format!("your preset ({})", name_of(cfg.preset)),
        };
        line(out, &yours, configured)?;
        Ok(())
    }
}

fn name_of(preset: Preset) -> &'static str {
    PRESETS.iter().find(|p| p.0 == preset).map_or("?", |p| p.1)
}

/// `--stats FILE` (`-` is stdin), as text or, with `--json`, one JSON object.
pub fn run(
    path: &Path,
    policy: &Policy,
    cfg: &RouterConfig,
    json: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let stats = if path == Path::new("-") {
        Stats::read(policy, std::io::stdin().lock())
    } else {
        // A directory opens, then fails at the first read with "Is a directory (os error 21)".
        let file = std::fs::File::open(path)
            .and_then(|f| match f.metadata()?.is_dir() {
                true => Err(std::io::Error::from(std::io::ErrorKind::IsADirectory)),
                false => Ok(f),
            })
            .map_err(|e| crate::attach::unreadable(path, &e))?;
        Stats::read(policy, std::io::BufReader::new(file))
    }
    .with_context(|| format!("{}", path.display()))?;
    if json {
        writeln!(
            out,
            "{}",
            serde_json::to_string_pretty(&stats.to_json(policy.threshold()))?
        )?;
        Ok(())
    } else {
        stats.write_text(cfg, policy.threshold(), out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(input: &str) -> Stats {
        Stats::read(&Policy::default(), input.as_bytes()).unwrap()
    }

    #[test]
    fn reads_json_lines_or_plain_lines() {
        let j =
            stats("{\"id\":1,\"prompt\":\"hi\"}\n\n{\"prompt\":\"Implement quicksort in Rust\"}\n");
        assert_eq!((j.len(), j.format), (2, "JSON lines"));
        let p = stats("hi\r\nWhat is the capital of France?\n{not json\n");
        assert_eq!((p.len(), p.format), (3, "plain lines"));
        let err = Stats::read(&Policy::default(), "{\"prompt\":\"a\"}\nplain\n".as_bytes());
        assert!(err.unwrap_err().to_string().contains("line 2"));
        assert!(Stats::read(&Policy::default(), "\n \n".as_bytes()).is_err());
    }

    #[test]
    fn presets_keep_more_local_as_they_get_frugal() {
        let s = stats(
            "hi\nthanks\nTell me a joke\nWho wrote Hamlet?\nWhat is the capital of France?\n\
                       Implement quicksort in Rust and explain its worst case.\n",
        );
        let local = |p| s.kept_local(preset_threshold(p));
        assert!(local(Preset::Quality) <= local(Preset::Balanced));
        assert!(local(Preset::Balanced) <= local(Preset::Frugal));
        assert_eq!(local(Preset::Quality), 2, "greetings only");
        assert_eq!(local(Preset::Frugal), 5, "all but the code");
        assert!(s.quantile(0.0) <= s.quantile(0.5) && s.quantile(0.5) <= s.quantile(1.0));
        let v = s.to_json(0.5);
        assert_eq!(v["prompts"], 6);
        assert_eq!(v["presets"].as_array().unwrap().len(), 3);
        assert_eq!(v["configured"]["local"], local(Preset::Balanced));
    }

    #[test]
    fn secrets_count_as_local_everywhere() {
        let s = stats(
            "Implement quicksort in Rust with key sk-proj-abcdefghijklmnopqrstuvwxyz012345\n",
        );
        assert_eq!((s.secrets(), s.kept_local(0.0)), (1, 1));
    }

    #[test]
    fn text_names_each_preset_and_the_configured_one() {
        let s = stats("hi\nWhat is the capital of France?\n");
        let mut out = Vec::new();
        s.write_text(&RouterConfig::default(), 0.5, &mut out)
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        for want in [
            "2 prompts (plain lines)",
            "median",
            "frugal",
            "balanced",
            "quality",
            "your preset (balanced)",
        ] {
            assert!(text.contains(want), "{want:?} in {text}");
        }
    }

    #[test]
    fn one_prompt_is_counted_in_the_singular() {
        let mut out = Vec::new();
        stats("hi\n")
            .write_text(&RouterConfig::default(), 0.5, &mut out)
            .unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.starts_with("1 prompt (plain lines),"), "{text}");
    }
}
