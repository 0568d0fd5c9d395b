//! `tandem stats [--day|--week|--month] [--json]`: from the spend ledger (so deleted chats
//! still count), turns per tier, spend, what local answers saved, and the median time to
//! first token per tier; a small bar chart of turns over the period when stdout is a terminal.
//! Days and months are UTC, as the budget caps are.

use std::io::{IsTerminal, Write};

use serde_json::json;

use crate::cli::StatsCmd;
use crate::config::Config;
use crate::session::{self, DAY, SpendRow, Store};

/// The span a report covers, and how it is cut into bars.
struct Period {
    name: &'static str,
    since: i64,
    until: i64,
    /// Seconds per bar: hours for a day, days otherwise.
    bucket: i64,
}

impl Period {
    fn of(args: &StatsCmd, now: i64) -> Period {
        let today = session::day_start(now);
        let (name, since, bucket) = if args.week {
            ("the last 7 days", today - 6 * DAY, DAY)
        } else if args.month {
            ("this month", session::month_start(now), DAY)
        } else {
            ("today", today, 3600)
        };
        let until = if bucket == DAY { today + DAY } else { now + 1 };
        Period {
            name,
            since,
            until,
            bucket,
        }
    }
}

/// One tier's figures.
#[derive(Debug, Default, PartialEq)]
struct Tally {
    turns: usize,
    spent_usd: f64,
    saved_usd: f64,
    median_ttft_ms: Option<u64>,
}

fn tally(rows: &[SpendRow], tier: &str) -> Tally {
    let mine: Vec<_> = rows.iter().filter(|r| r.spend.tier == tier).collect();
    let mut ttft: Vec<u64> = mine
        .iter()
        .map(|r| r.spend.usage.ttft_ms)
        .filter(|t| *t > 0)
        .collect();
    ttft.sort_unstable();
    Tally {
        turns: mine.len(),
        // A fold from +0.0: `sum` of nothing is -0.0, which would print as "$-0.0000".
        spent_usd: mine.iter().fold(0.0, |a, r| a + r.spend.cost_usd),
        saved_usd: mine.iter().fold(0.0, |a, r| a + r.spend.saved_usd),
        median_ttft_ms: (!ttft.is_empty()).then(|| ttft[ttft.len() / 2]),
    }
}

/// Turns per bar for one tier.
fn buckets(rows: &[SpendRow], tier: &str, p: &Period) -> Vec<usize> {
    let n = ((p.until - p.since) / p.bucket).max(1) as usize;
    let mut out = vec![0; n];
    for r in rows.iter().filter(|r| r.spend.tier == tier) {
        let i = ((r.at - p.since) / p.bucket).clamp(0, n as i64 - 1) as usize;
        out[i] += 1;
    }
    out
}

/// Unicode bars scaled to `max`; a space for none.
fn bars(counts: &[usize], max: usize) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    counts
        .iter()
        .map(|&c| match c {
            0 => ' ',
            c => BARS[((c * 8).div_ceil(max.max(1))).clamp(1, 8) - 1],
        })
        .collect()
}

pub fn run(args: &StatsCmd, cfg: &Config) -> anyhow::Result<()> {
    let store = Store::open(&cfg.paths.history_db())?;
    let p = Period::of(args, session::now());
    let rows = store.spend_rows(p.since, p.until)?;
    let (local, cloud) = (tally(&rows, "local"), tally(&rows, "cloud"));
    let mut out = std::io::stdout().lock();
    if args.json {
        let t = |t: &Tally| {
            json!({
                "turns": t.turns,
                "spent_usd": t.spent_usd,
                "saved_usd": t.saved_usd,
                "median_ttft_ms": t.median_ttft_ms,
            })
        };
        let v = json!({
            "period": p.name,
            "since": p.since,
            "until": p.until,
            "local": t(&local),
            "cloud": t(&cloud),
            "spent_usd": local.spent_usd + cloud.spent_usd,
            "saved_usd": local.saved_usd + cloud.saved_usd,
        });
        writeln!(out, "{v}")?;
        return Ok(());
    }
    writeln!(out, "{} (UTC, from {})", p.name, date(p.since))?;
    writeln!(
        out,
        "{:<6} {:>6} {:>12} {:>12} {:>12}",
        "tier", "turns", "spent", "saved", "median TTFT"
    )?;
    for (name, t) in [("local", &local), ("cloud", &cloud)] {
        let ttft = t
            .median_ttft_ms
            .map_or("-".to_string(), |ms| format!("{:.2} s", ms as f64 / 1000.0));
        writeln!(
            out,
            "{name:<6} {:>6} {:>12} {:>12} {ttft:>12}",
            t.turns,
            format!("${:.6}", t.spent_usd),
            format!("${:.6}", t.saved_usd),
        )?;
    }
    if std::io::stdout().is_terminal() && !rows.is_empty() {
        let per = if p.bucket == DAY { "day" } else { "hour" };
        let (l, c) = (buckets(&rows, "local", &p), buckets(&rows, "cloud", &p));
        let max = l.iter().chain(&c).copied().max().unwrap_or(1);
        writeln!(out, "\nturns per {per} (peak {max})")?;
        writeln!(out, "local  {}", bars(&l, max))?;
        writeln!(out, "cloud  {}", bars(&c, max))?;
    }
    Ok(())
}

/// `YYYY-MM-DD` of a Unix time (UTC), by Howard Hinnant's civil-from-days.
fn date(t: i64) -> String {
    let z = t.div_euclid(DAY) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::Spend;

    fn row(at: i64, tier: &str, ttft: u64, cost: f64) -> SpendRow {
        let mut spend = Spend {
            tier: tier.into(),
            cost_usd: cost,
            ..Default::default()
        };
        spend.usage.ttft_ms = ttft;
        SpendRow { at, spend }
    }

    #[test]
    fn tallies_medians_and_bars() {
        let rows = vec![
            row(0, "local", 300, 0.0),
            row(10, "local", 500, 0.0),
            row(3700, "local", 0, 0.0),
            row(20, "cloud", 900, 0.25),
        ];
        let l = tally(&rows, "local");
        assert_eq!((l.turns, l.median_ttft_ms), (3, Some(500)));
        assert_eq!(tally(&rows, "cloud").spent_usd, 0.25);
        let p = Period {
            name: "today",
            since: 0,
            until: 3 * 3600,
            bucket: 3600,
        };
        assert_eq!(buckets(&rows, "local", &p), vec![2, 1, 0]);
        assert_eq!(bars(&[2, 1, 0], 2), "█▄ ");
        assert_eq!(date(1_795_348_800), "2026-11-22");
    }
}
