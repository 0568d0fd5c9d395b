//! Behaviour the weights must keep whatever they are refitted to: the direction of each signal,
//! and what each preset means for the default 135M local model.

use super::features::{Feature, features};
use super::policy::{Policy, preset_threshold};
use crate::config::Preset;

fn score(prompt: &str) -> f64 {
    Policy::default().score(&features(prompt, &[])).0
}

/// Our own grade-school word problems (tests/data/word_problems.txt), tagged with their number of
/// steps. Not an accuracy set: they only check that more steps never score lower.
fn word_problems() -> Vec<(u32, f64)> {
    include_str!("../../tests/data/word_problems.txt")
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (steps, problem) = l.split_once('\t').expect("STEPS<TAB>problem");
            (steps.parse().unwrap(), score(problem))
        })
        .collect()
}

#[test]
fn longer_multi_step_word_problems_score_higher() {
    let problems = word_problems();
    let mut tiers: Vec<u32> = problems.iter().map(|p| p.0).collect();
    tiers.sort_unstable();
    tiers.dedup();
    let mean = |t: u32| {
        let s: Vec<f64> = problems.iter().filter(|p| p.0 == t).map(|p| p.1).collect();
        s.iter().sum::<f64>() / s.len() as f64
    };
    for w in tiers.windows(2) {
        assert!(
            mean(w[0]) < mean(w[1]),
            "{} steps: {:.3} vs {} steps: {:.3}",
            w[0],
            mean(w[0]),
            w[1],
            mean(w[1])
        );
    }
    let (first, last) = (tiers[0], *tiers.last().unwrap());
    let hardest_short = problems
        .iter()
        .filter(|p| p.0 == first)
        .map(|p| p.1)
        .fold(0.0, f64::max);
    let easiest_long = problems
        .iter()
        .filter(|p| p.0 == last)
        .map(|p| p.1)
        .fold(1.0, f64::min);
    assert!(
        hardest_short < easiest_long,
        "{hardest_short:.3} >= {easiest_long:.3}"
    );
}

#[test]
fn maths_and_multi_step_signals_only_push_up() {
    let short = "A pen costs $2. How much do 3 pens cost?";
    let longer = "A pen costs $2 and a notebook costs $5. Mia buys 3 pens and 2 notebooks, then pays \
                  with a $20 bill. How much change does she get?";
    assert!(score(short) < score(longer));
    // Adding a step never lowers the score, and neither does writing the maths out.
    assert!(score("Tom has 5 apples.") <= score("Tom has 5 apples, then eats 2 of them."));
    assert!(score("Find the roots.") <= score("Find the roots of x^2 - 5x + 6 = 0."));
    let p = Policy::default();
    for f in [
        Feature::Length,
        Feature::Steps,
        Feature::Math,
        Feature::Code,
    ] {
        assert!(p.weight(f) > 0.0, "{f} must raise the score");
    }
    assert!(p.weight(Feature::OpenEnded) < 0.0 && p.weight(Feature::Trivial) < 0.0);
}

#[test]
fn presets_mean_what_they_say_for_a_135m_local_model() {
    let (frugal, balanced, quality) = (
        preset_threshold(Preset::Frugal),
        preset_threshold(Preset::Balanced),
        preset_threshold(Preset::Quality),
    );
    let local = |prompt: &str, t: f64| score(prompt) < t;
    // Quality keeps only chit-chat and short rewrites local.
    for p in ["hi", "thanks!", "Fix the typo: teh cat sat on teh mat"] {
        assert!(local(p, quality), "{p:?} {:.3}", score(p));
    }
    assert!(!local("Write a haiku about autumn", quality));
    // Balanced also keeps short creative asks local, but a 135M model cannot answer questions,
    // even easy ones: they go to the cloud.
    assert!(local("Tell me a joke", balanced));
    for p in ["What is the capital of France?", "Who wrote Hamlet?"] {
        assert!(!local(p, balanced), "{p:?} {:.3}", score(p));
        assert!(local(p, frugal), "{p:?} {:.3}", score(p));
    }
    // Frugal sends only the clearly hard: code, and long multi-step problems.
    assert!(!local(
        "Implement quicksort in Rust and explain its worst case.",
        frugal
    ));
    let long_problem = "A bakery sells muffins for $3 each and cookies for $1.50 each. On Monday it \
        sells 40 muffins and twice as many cookies. On Tuesday it sells 25% fewer muffins than on \
        Monday and 10 more cookies than on Monday. Ingredients cost $1 per muffin and $0.50 per \
        cookie. What is the bakery's total profit over the two days?";
    assert!(!local(long_problem, frugal), "{:.3}", score(long_problem));
}
