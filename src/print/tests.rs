//! Tests of one-shot rendering: closed pipes, the sanitizer on the answer, `-x`.

use futures::StreamExt;

use super::*;
use crate::router::{Escalation, EscalationReason, Target};
use crate::turn::{Answer, Badge, Done, SpendNow};

/// A pipe whose reader left after `room` bytes.
struct Closing {
    room: usize,
}

impl Write for Closing {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if buf.len() > self.room {
            return Err(std::io::ErrorKind::BrokenPipe.into());
        }
        self.room -= buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn answered(text: &str) -> TurnEvent {
    TurnEvent::Answered(Answer {
        text: text.into(),
        badge: Badge::routed(Target::Local, "m"),
        usage: Default::default(),
        interrupted: false,
    })
}

/// One answer of `text` that ends with `finish`, as the pipeline sends it.
fn answer_events(text: &str, finish: Finish) -> Vec<TurnEvent> {
    vec![
        TurnEvent::Delta(text.into()),
        answered(text),
        TurnEvent::Done(Done {
            finish,
            spend: SpendNow::default(),
        }),
    ]
}

/// What `render` prints to a pipe that stays open.
async fn rendered(events: Vec<TurnEvent>, opts: &PrintOptions) -> (Exit, String) {
    let mut out = Vec::new();
    let exit = render(
        futures::stream::iter(events).boxed(),
        CancellationToken::new(),
        opts,
        false,
        Report::default(),
        &mut out,
    )
    .await;
    (exit, String::from_utf8(out).unwrap())
}

/// The escalation seam used to be a `println!`, which panics on a closed pipe.
#[tokio::test]
async fn the_escalation_seam_on_a_closed_pipe_ends_quietly() {
    let events = vec![
        TurnEvent::Delta("weak answer\n".into()),
        answered("weak answer\n"),
        TurnEvent::Escalated(Escalation {
            reason: EscalationReason::RepetitionLoop,
            message: "loops".into(),
        }),
        TurnEvent::Done(Done {
            finish: Finish::Interrupted,
            spend: SpendNow::default(),
        }),
    ];
    let cancel = CancellationToken::new();
    let mut out = Closing { room: 12 };
    let exit = render(
        futures::stream::iter(events).boxed(),
        cancel.clone(),
        &PrintOptions::default(),
        false,
        Report::default(),
        &mut out,
    )
    .await;
    assert_eq!(exit, Exit::Ok);
    assert!(
        cancel.is_cancelled(),
        "the reader left, so the answer stops"
    );
}

#[tokio::test]
async fn escape_sequences_are_shown_not_written_raw() {
    let events = answer_events("a\x1b]52;c;aGk=\x07b", Finish::Answered);
    let (exit, out) = rendered(events, &PrintOptions::default()).await;
    assert_eq!(exit, Exit::Ok);
    assert_eq!(out, "a␛]52;c;aGk=␇b\n");
}

#[tokio::test]
async fn extract_waits_for_a_whole_answer() {
    let opts = PrintOptions {
        extract: true,
        ..PrintOptions::default()
    };
    let text = "Sure:\n```\n\n```\n```sh\nls -la\n```\n";
    let whole = rendered(answer_events(text, Finish::Answered), &opts).await;
    assert_eq!(whole, (Exit::Ok, "ls -la\n".into()));
    let (_, cut) = rendered(answer_events(text, Finish::Interrupted), &opts).await;
    assert_eq!(cut, "", "half a command is never printed");
    assert_eq!(
        extracted("ls -S\n```python"),
        "ls -S\n```python",
        "no block in it"
    );
}
