//! Running `Effect`s: route and stream an answer, persist turns, load and manage
//! conversations, switch themes and local models, copy through OSC 52, and hand the terminal
//! to `$EDITOR`. Results come back to the app as `Msg`s.

use std::io::{Write, stdout};

use ratatui::Terminal;
use ratatui::backend::Backend;
use tokio_util::sync::CancellationToken;

use crate::backend::ChatRequest;
use crate::backend::local::Confidence;
use crate::chat::{Message, Role};
use crate::config::RouteMode;
use crate::router::{BudgetState, Target};
use crate::session::{self, ConversationId, TurnMeta};
use crate::tiers::RouteContext;
use crate::tui::app::App;
use crate::tui::background::{self, Judge};
use crate::tui::driver::Driver;
use crate::tui::msg::{ConvRow, Effect, LoadedTurn, Msg, ReqId, RouteRequest};
use crate::tui::theme::{self, Background};

impl Driver<'_> {
    pub(super) async fn run_effect<B: Backend>(
        &mut self,
        effect: Effect,
        term: &mut Terminal<B>,
        app: &App,
    ) -> anyhow::Result<()>
    where
        B::Error: Send + Sync + 'static,
    {
        match effect {
            Effect::Ask {
                req,
                conv,
                prompt,
                history,
                route,
                private,
                store_prompt,
                cloud_model,
            } => {
                let asked = Asked {
                    prompt,
                    history,
                    route,
                    private,
                    store_prompt,
                    cloud_model,
                };
                self.ask(req, conv, asked).await
            }
            Effect::SwitchLocal(name) => {
                let mut cfg = self.cfg.clone();
                cfg.local.model = name;
                background::spawn_local_start(
                    cfg,
                    self.tiers.clone(),
                    self.tx.clone(),
                    self.local_generation.clone(),
                    true,
                );
            }
            Effect::Cancel => {
                if let Some(c) = &self.cancel {
                    c.cancel();
                }
            }
            Effect::SavePartial { turn, text } => {
                let _ = self.store.save_partial(turn, &text);
            }
            Effect::FinishAnswer {
                turn,
                text,
                meta,
                interrupted,
            } => {
                if let Err(e) = self.store.finish_answer(turn, &text, &meta, interrupted) {
                    self.notice(format!("could not save the answer: {e}"));
                }
            }
            Effect::LoadConversation(id) => self.load(id),
            Effect::RefreshConversations => self.refresh_conversations(),
            Effect::Rename { conv, title } => {
                if let Err(e) = self.store.rename(conv, &title) {
                    self.notice(e.to_string());
                }
            }
            Effect::Delete(conv) => {
                if let Err(e) = self.store.delete(conv) {
                    self.notice(e.to_string());
                }
            }
            Effect::LoadTheme(name) => {
                let msg = match theme::load(&name, Some(&self.cfg.paths.themes_dir())) {
                    Ok(t) => {
                        let dark = t.background == Background::Dark;
                        self.theme = t;
                        Ok((name, dark))
                    }
                    Err(e) => Err(e.to_string()),
                };
                let _ = self.tx.send(Msg::ThemeLoaded(msg));
            }
            Effect::Copy(text) => {
                // OSC 52 asks the terminal itself to set the clipboard, which also works over ssh.
                let mut out = stdout();
                let _ = write!(out, "\x1b]52;c;{}\x07", base64(text.as_bytes()));
                let _ = out.flush();
            }
            Effect::OpenEditor(text) => {
                let result = self.edit(&text);
                crate::tui::enter_terminal()?;
                self.events = Some(crossterm::event::EventStream::new());
                term.clear()?;
                let _ = self.tx.send(Msg::EditorDone(result));
            }
            Effect::Quit => {
                if app.running.is_some()
                    && let Some(c) = &self.cancel
                {
                    c.cancel();
                }
                self.quit = true;
            }
        }
        Ok(())
    }

    fn notice(&self, text: String) {
        let _ = self.tx.send(Msg::Notice(text));
    }

    pub(super) fn refresh_conversations(&self) {
        let rows = self
            .store
            .list(500)
            .unwrap_or_default()
            .into_iter()
            .map(|s| ConvRow {
                id: s.conversation.id,
                title: s.conversation.title,
                updated_at: s.conversation.updated_at,
                local_answers: s.local_answers,
                cloud_answers: s.cloud_answers,
            })
            .collect();
        let _ = self.tx.send(Msg::Conversations(rows));
    }

    fn load(&self, id: ConversationId) {
        let conv = match self.store.conversation(id) {
            Ok(c) => c,
            Err(e) => return self.notice(e.to_string()),
        };
        let turns = self
            .store
            .turns(id)
            .unwrap_or_default()
            .into_iter()
            .map(|t| {
                let u = t.meta.usage.unwrap_or_default();
                LoadedTurn {
                    message: Message::new(t.role, t.content),
                    target: match t.meta.target.as_deref() {
                        Some("local") => Some(Target::Local),
                        Some("cloud") => Some(Target::Cloud),
                        _ => None,
                    },
                    model: t.meta.model,
                    ttft_ms: u.ttft_ms,
                    tokens_per_s: u.tokens_per_s,
                    cost_usd: t.meta.cost_usd,
                    interrupted: t.interrupted,
                }
            })
            .collect();
        let _ = self.tx.send(Msg::ConversationLoaded {
            id,
            title: conv.title,
            turns,
        });
    }

    async fn ask(&mut self, req: ReqId, conv: Option<ConversationId>, asked: Asked) {
        let Asked {
            prompt,
            history,
            route,
            private,
            store_prompt,
            cloud_model,
        } = asked;
        // The token exists before routing, so Esc works even while the store is written.
        let cancel = CancellationToken::new();
        self.cancel = Some(cancel.clone());
        let tiers = self.tiers.clone();
        let tiers = tiers.read().await;
        let (mode, force) = match route {
            RouteRequest::Mode(m) => (m, false),
            RouteRequest::Force(Target::Local) => (RouteMode::Local, true),
            RouteRequest::Force(Target::Cloud) => (RouteMode::Cloud, true),
        };
        let sticky_cloud = conv.is_some_and(|c| {
            self.store
                .turns(c)
                .unwrap_or_default()
                .iter()
                .rev()
                .find(|t| t.role == Role::Assistant)
                .is_some_and(|t| t.meta.target.as_deref() == Some("cloud"))
        });
        let ctx = RouteContext {
            mode,
            force,
            private,
            sticky_cloud,
            budget: self.budget(),
        };
        let decision = tiers.decide(&prompt, &history, &ctx);
        let stored = (|| -> Result<_, session::SessionError> {
            let conv = match conv {
                Some(c) => c,
                None => self
                    .store
                    .create_conversation(&title(&prompt), private, None)?,
            };
            if store_prompt {
                self.store
                    .add_turn(conv, Role::User, &prompt, &TurnMeta::default(), false)?;
            }
            let meta = TurnMeta {
                target: Some(decision.target.as_str().into()),
                reasons: serde_json::to_string(&decision.reasons).ok(),
                ..Default::default()
            };
            let turn = self.store.begin_answer(conv, &meta)?;
            let title = self.store.conversation(conv)?.title;
            Ok((conv, turn, title))
        })();
        let (conv, turn, title) = match stored {
            Ok((c, t, title)) => (c, Some(t), title),
            Err(e) => {
                self.notice(format!("history not saved: {e}"));
                (conv.unwrap_or(0), None, title(&prompt))
            }
        };
        let _ = self.tx.send(Msg::Routed {
            req,
            conv,
            title,
            turn,
            decision: decision.clone(),
            local_name: tiers.local_name.clone(),
        });
        let mut messages = history;
        messages.push(Message::user(prompt));
        let mut request = ChatRequest::new(messages);
        // A local answer is watched for escalation, as in one-shot mode.
        let judge = (decision.target == Target::Local).then(|| Judge {
            tiers: self.tiers.clone(),
            decision: decision.clone(),
            confidence: Confidence::default(),
        });
        if decision.target == Target::Cloud {
            request.model = cloud_model;
        }
        let stream = tiers.stream_watched(
            decision.target,
            request,
            cancel.clone(),
            judge.as_ref().map(|j| j.confidence.clone()),
        );
        // The stream is consumed off the event loop; each event comes back as a Msg.
        background::spawn_answer(req, stream, judge, cancel, self.tx.clone());
    }

    /// Spend today and this month (UTC), from the history's recorded costs.
    fn budget(&self) -> BudgetState {
        let now = session::now();
        let day_start = now - now.rem_euclid(86_400);
        BudgetState {
            daily_spent_usd: self.store.spent_since(day_start).unwrap_or(0.0),
            daily_cap_usd: self.cfg.budget.daily_usd,
            monthly_spent_usd: self.store.spent_since(month_start(now)).unwrap_or(0.0),
            monthly_cap_usd: self.cfg.budget.monthly_usd,
        }
    }

    /// Runs `$VISUAL`/`$EDITOR` (vi if unset) on a temp file holding `text`.
    fn edit(&mut self, text: &str) -> Result<String, String> {
        self.events = None;
        crate::tui::restore_terminal();
        let editor = std::env::var("VISUAL")
            .or_else(|_| std::env::var("EDITOR"))
            .unwrap_or_else(|_| "vi".into());
        let path = std::env::temp_dir().join(format!("tandem-prompt-{}.md", std::process::id()));
        std::fs::write(&path, text).map_err(|e| e.to_string())?;
        let mut parts = editor.split_whitespace();
        let prog = parts.next().unwrap_or("vi");
        // The screen is suspended, so blocking this task is what the user expects.
        let status = tokio::task::block_in_place(|| {
            std::process::Command::new(prog)
                .args(parts)
                .arg(&path)
                .status()
        });
        let out = match status {
            Ok(s) if s.success() => std::fs::read_to_string(&path).map_err(|e| e.to_string()),
            Ok(s) => Err(format!("{editor} exited with {s}")),
            Err(e) => Err(format!("{editor}: {e}")),
        };
        let _ = std::fs::remove_file(&path);
        out
    }
}

/// An `Effect::Ask` without its ids, as `ask` takes it.
struct Asked {
    prompt: String,
    history: Vec<Message>,
    route: RouteRequest,
    private: bool,
    store_prompt: bool,
    cloud_model: Option<String>,
}

fn title(prompt: &str) -> String {
    let line = prompt
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("untitled")
        .trim();
    let mut t: String = line.chars().take(60).collect();
    if line.chars().count() > 60 {
        t.push('…');
    }
    t
}

/// The unix time of the first second of `now`'s month (UTC), by the civil-from-days algorithm.
fn month_start(now: i64) -> i64 {
    let z = now.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5; // 0-based day of month
    (now.div_euclid(86_400) - day) * 86_400
}

fn base64(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(A[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
    }

    #[test]
    fn month_start_is_the_first_of_the_month() {
        // 2026-11-22 07:00 UTC -> 2026-11-01 00:00 UTC.
        assert_eq!(month_start(1_795_330_800), 1_793_491_200);
    }
}
