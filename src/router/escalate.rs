//! Escalation: after a close call went local, judge the finished local answer and say whether
//! to re-ask the cloud. Pure text checks; the token confidence is measured by the local backend.

use serde::Serialize;

use super::{RouteDecision, Target};

/// Below this mean token probability a small model is usually guessing.
pub const LOW_CONFIDENCE: f64 = 0.45;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EscalationReason {
    RepetitionLoop,
    Refusal,
    Unsure,
    LowConfidence,
    Empty,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Escalation {
    pub reason: EscalationReason,
    pub message: String,
}

const REFUSALS: &[&str] = &[
    "i can't help",
    "i cannot help",
    "i can't assist",
    "i cannot assist",
    "i can't provide",
    "i cannot provide",
    "i'm sorry, but i can't",
    "i'm sorry, but i cannot",
    "i am sorry, but i cannot",
    "i'm unable to",
    "i am unable to",
    "i'm not able to",
    "i am not able to",
    "as an ai language model",
    "as an ai, i",
];
const UNSURE: &[&str] = &[
    "i'm not sure",
    "i am not sure",
    "i'm not certain",
    "i am not certain",
    "i don't know",
    "i do not know",
    "i'm unsure",
    "i don't have enough information",
    "i do not have enough information",
    "it's unclear",
    "i cannot determine",
    "i can't determine",
];

/// Whether to re-ask the cloud after the local tier answered `answer`. Only close calls that
/// went local are escalated, and only when the policy allows it (`[router] escalate`).
pub fn should_escalate(
    escalate_enabled: bool,
    decision: &RouteDecision,
    answer: &str,
    mean_confidence: Option<f64>,
) -> Option<Escalation> {
    if !escalate_enabled || decision.target != Target::Local || !decision.near_threshold() {
        return None;
    }
    judge(answer, mean_confidence)
}

/// The checks themselves, usable on any answer.
pub fn judge(answer: &str, mean_confidence: Option<f64>) -> Option<Escalation> {
    let esc = |reason, message: String| Some(Escalation { reason, message });
    let text = answer.trim();
    if text.is_empty() {
        return esc(
            EscalationReason::Empty,
            "the local model gave no answer".into(),
        );
    }
    if let Some(unit) = repetition(text) {
        return esc(
            EscalationReason::RepetitionLoop,
            format!("the local answer repeats itself ({unit})"),
        );
    }
    // Refusals and hedges show up in the opening; a late "I'm not sure" inside a long answer is
    // usually a caveat, not a failure.
    let head: String = text
        .chars()
        .take(240)
        .collect::<String>()
        .to_lowercase()
        .replace('\u{2019}', "'");
    if let Some(p) = REFUSALS.iter().find(|p| head.contains(*p)) {
        return esc(
            EscalationReason::Refusal,
            format!("the local model declined (\"{p}\")"),
        );
    }
    if let Some(p) = UNSURE.iter().find(|p| head.contains(*p)) {
        return esc(
            EscalationReason::Unsure,
            format!("the local model was unsure (\"{p}\")"),
        );
    }
    if let Some(c) = mean_confidence.filter(|c| *c < LOW_CONFIDENCE) {
        return esc(
            EscalationReason::LowConfidence,
            format!("mean token confidence {c:.2} is below {LOW_CONFIDENCE:.2}"),
        );
    }
    None
}

/// Detects a loop: a line said three or more times, or word trigrams that are mostly repeats.
fn repetition(text: &str) -> Option<&'static str> {
    let mut lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| l.len() >= 12)
        .collect();
    let total_lines = lines.len();
    lines.sort_unstable();
    let mut run = 1;
    for w in lines.windows(2) {
        run = if w[0] == w[1] { run + 1 } else { 1 };
        if run >= 3 && total_lines >= 3 {
            return Some("the same line three times");
        }
    }
    let words: Vec<&str> = text.split_whitespace().collect();
    if words.len() < 24 {
        return None;
    }
    let mut grams: Vec<(&str, &str, &str)> = words.windows(3).map(|w| (w[0], w[1], w[2])).collect();
    let n = grams.len();
    grams.sort_unstable();
    grams.dedup();
    (grams.len() * 2 < n).then_some("most phrases are repeats")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judges_answers() {
        assert_eq!(judge("The answer is 42 because 6 * 7 = 42.", None), None);
        let looped = "I think that it is. ".repeat(20);
        assert_eq!(
            judge(&looped, None).unwrap().reason,
            EscalationReason::RepetitionLoop
        );
        assert_eq!(
            judge("I'm sorry, but I can't help with that.", None)
                .unwrap()
                .reason,
            EscalationReason::Refusal
        );
        assert_eq!(
            judge("I don't know the answer.", None).unwrap().reason,
            EscalationReason::Unsure
        );
        assert_eq!(
            judge("Paris.", Some(0.2)).unwrap().reason,
            EscalationReason::LowConfidence
        );
        assert_eq!(judge("Paris.", Some(0.9)), None);
    }
}
